//! The command line: [`Cli`], and the subcommands that work on the data directory directly,
//! whether or not `fleetd serve` is running: `fleetd user` ([`user`]), `fleetd device`
//! ([`device`]), `fleetd config` ([`config`]) and `fleetd audit` ([`audit`]); the changes they
//! make are recorded in the audit trail ([`audited`]). Holds what they share: the global
//! `--data-dir`, `--json`, printing, times, who runs them, the one duration parser, and opening
//! the registry and the fleet of a data directory. `serve`'s own options are in
//! [`crate::serve`].

pub mod audit;
pub mod config;
pub mod device;
pub mod duration;
pub mod update;
pub mod user;

pub use duration::parse_duration;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::data_dir::DataDir;
use crate::fleet::Fleet;
use crate::pki;
use crate::registry::Registry;
use crate::serve::ServeArgs;
use crate::store::Store;

/// telekiosk management server.
#[derive(Debug, Parser)]
#[command(name = "fleetd", version, about)]
pub struct Cli {
    /// Where fleetd keeps its CA, certificates, database and broker configuration.
    #[arg(long, global = true, env = "FLEETD_DATA_DIR", default_value = "fleetd-data")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTPS console, MQTT broker and visit signalling.
    Serve(Box<ServeArgs>),
    /// Manage console users.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Enrol, approve, list, revoke and command kiosks.
    Device {
        #[command(subcommand)]
        command: device::DeviceCommand,
    },
    /// Author, validate and roll out kiosk config.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// OS bundles and update rollouts (A/B, with rollback).
    Update {
        #[command(subcommand)]
        command: update::UpdateCommand,
    },
    /// Verify and export the audit trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
}

/// Options every `device` and `config` subcommand takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints `value` as JSON (`--json`, the API's types) or as text for people.
pub fn print<T: serde::Serialize>(json: bool, value: &T, text: impl Fn(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        text(value);
    }
    Ok(())
}

/// A Unix time as RFC 3339.
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The Unix user running the command, for the audit line.
pub fn unix_user() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// The fleet of the data directory.
pub fn open_fleet(dir: &DataDir) -> anyhow::Result<Fleet> {
    Ok(Fleet::new(Store::open(&dir.db())?))
}

/// The registry of the data directory, creating the CA and signing key if this is a fresh one.
/// An existing PKI is left as it is: the server certificate is `fleetd serve`'s to renew.
pub fn open_registry(dir: &DataDir) -> anyhow::Result<Registry> {
    let mut pki = dir.pki();
    if !pki.ca_cert.exists() || !pki.ca_key.exists() {
        let hostname = hostname::get().ok().and_then(|h| h.into_string().ok());
        pki = pki::ensure(dir.pki(), &hostname.unwrap_or_default())?;
    }
    let signing_key = pki::signing::ensure(&dir.signing_key())?;
    let store = Store::open(&dir.db())?;
    Registry::new(store, pki, signing_key).context("cannot read fleetd's CA")
}

/// Records in the data directory's audit trail what a CLI command did (or the class of why it
/// was refused), by `cli:OSUSER` from `cli`, and writes the head file; `result` is returned
/// as it was. A trail that cannot be written stops the command with an error.
pub fn audited<T, E: std::fmt::Debug>(
    dir: &DataDir,
    action: &'static str,
    object: &str,
    result: Result<T, E>,
) -> anyhow::Result<Result<T, E>> {
    let trail = crate::audit::Audit::open(dir)?;
    let actor = crate::audit::cli(&unix_user());
    let entry = crate::audit::Entry::new(&actor, action, object, "cli");
    trail.append(entry.outcome(&result, crate::audit::class_of))?;
    trail.write_head()?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_parses_serve_and_user_add() {
        let cli = Cli::try_parse_from(["fleetd", "serve", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(matches!(cli.command, Command::Serve(_)));
        let add = ["fleetd", "user", "add", "alice", "--role", "admin", "--password-stdin"];
        assert!(Cli::try_parse_from(add).is_ok());
        assert!(Cli::try_parse_from(["fleetd", "user", "add", "alice"]).is_err());
    }

    #[test]
    fn the_data_dir_is_taken_before_or_after_the_subcommand() {
        let after = ["fleetd", "device", "list", "--json", "--data-dir", "/x"];
        assert_eq!(Cli::try_parse_from(after).unwrap().data_dir, PathBuf::from("/x"));
        let before = ["fleetd", "--data-dir", "/y", "config", "status"];
        assert_eq!(Cli::try_parse_from(before).unwrap().data_dir, PathBuf::from("/y"));
    }

    #[test]
    fn the_cli_parses_device_commands_and_refuses_a_ttl_without_unit() {
        let token = ["fleetd", "device", "enrol-token", "--clinic", "North", "--room", "2"];
        assert!(Cli::try_parse_from(token).is_ok());
        let with_ttl = [&token[..], &["--ttl", "1s", "--json", "--data-dir", "/x"]].concat();
        assert!(Cli::try_parse_from(with_ttl).is_ok());
        assert!(Cli::try_parse_from([&token[..], &["--ttl", "24"]].concat()).is_err());
        assert!(Cli::try_parse_from([&token[..], &["--ttl", "31d"]].concat()).is_err());
        for cmd in [
            &["approve", "dev-a"][..],
            &["revoke", "dev-a"],
            &["list", "--json"],
            &["show", "dev-a"],
        ] {
            assert!(
                Cli::try_parse_from([&["fleetd", "device"][..], cmd].concat()).is_ok(),
                "{cmd:?}"
            );
        }
    }

    #[test]
    fn config_names_a_group_or_a_device_never_both_or_neither() {
        let show = |extra: &[&str]| {
            Cli::try_parse_from([&["fleetd", "config", "show"][..], extra].concat())
        };
        assert!(show(&["--group", "North"]).is_ok());
        assert!(show(&["--device", "dev-a"]).is_ok());
        assert!(show(&[]).is_err());
        assert!(show(&["--group", "North", "--device", "dev-a"]).is_err());
    }
}

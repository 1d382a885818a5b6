//! fleetd, the telekiosk management server. `ls src` shows its parts:
//!
//! - [`serve`]: the start-up and shut-down order of the server; [`cli`]: the command line.
//! - [`http`]: the HTTPS front (consoles, API, console WebSocket).
//! - [`signalling`]: visit signalling (pure router + the hub task that runs it).
//! - [`fleet`]: config layers, the rollout engine, commands and the driver that sends them.
//! - [`registry`]: enrolment tokens, devices, revocation; [`pki`]: the CA, server certificate
//!   and signing key; [`accounts`]: console users and sessions; [`access`]: roles, the
//!   permission table and clinic scope.
//! - [`mqtt`]: fleetd's MQTT client; [`broker`]: the mosquitto it runs; [`turn`]: ICE servers.
//! - [`store`]: the SQLite database; [`data_dir`]: every file of the data directory.
//! - [`audit`]: the hash-chained audit trail every part records through.
//!
//! This file only parses the command line, dispatches, and reports errors to the operator.

mod access;
mod accounts;
mod audit;
mod broker;
mod cli;
mod data_dir;
mod fleet;
mod http;
mod mqtt;
mod oidc;
mod pki;
mod registry;
mod serve;
mod signalling;
mod store;
mod supervise;
mod turn;
mod visit_codes;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // Everything fleetd creates (database, WAL, keys, broker files) is owner-only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let Cli { data_dir, command } = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttc=warn".into()),
        )
        .init();
    let result = match command {
        Command::Serve(args) => serve::run(&data_dir, *args),
        Command::User { command } => cli::user::run(command, &data_dir),
        Command::Device { command } => cli::device::run(command, &data_dir),
        Command::Config { command } => cli::config::run(command, &data_dir),
        Command::Update { command } => cli::update::run(command, &data_dir),
        Command::Audit { command } => cli::audit::run(command, &data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetd: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// One line an operator can act on: the error and its causes, each said once (our messages
/// often name their cause already), and no backtrace.
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            line += if line.is_empty() { "" } else { ": " };
            line += &cause;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_report_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = broker::BrokerError::Spawn { exe: "/x/mosquitto".into(), source: io };
        let line = report(&anyhow::Error::new(e).context("cannot start the broker"));
        assert_eq!(line.matches("no such file").count(), 1, "{line}");
        assert!(line.starts_with("cannot start the broker: cannot start /x/mosquitto"), "{line}");
    }
}

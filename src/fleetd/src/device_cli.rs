//! `fleetd device …`: enrolment tokens and device administration from the command line. Works
//! on the data directory directly, whether or not `fleetd serve` is running (a running server
//! notices revocations within a second; see [`crate::revocation`]). Prints for people, or
//! JSON (`--json`, the API's types) for scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use telekiosk_protocol::api::{DeviceInfo, EnrolToken, NewEnrolToken};

use crate::registry::{self, Registry};
use crate::store::{Store, unix_now};
use crate::{pki, signing};

/// `fleetd device` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeviceCommand {
    /// Make a one-time enrolment code for a kiosk (shown once; fleetd keeps only its hash).
    EnrolToken {
        /// Clinic the kiosk will stand in.
        #[arg(long)]
        clinic: String,
        /// Room the kiosk will stand in.
        #[arg(long)]
        room: String,
        /// How long the code works: e.g. 24h, 90m, 7d (at most 30d).
        #[arg(long, default_value = "24h", value_parser = registry::parse_ttl)]
        ttl: Duration,
        #[command(flatten)]
        common: Common,
    },
    /// Approve a pending device: fleetd's CA issues its certificate.
    Approve {
        /// Device id (`dev-…`, see `fleetd device list`).
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a device: its certificate joins the revocation list and it is cut off.
    Revoke {
        /// Device id (`dev-…`).
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// List every device.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show one device.
    Show {
        /// Device id (`dev-…`).
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Options every device subcommand takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// fleetd's data directory.
    #[arg(long, default_value = "fleetd-data")]
    data_dir: PathBuf,
}

/// Runs one `fleetd device` subcommand.
pub fn run(command: DeviceCommand) -> anyhow::Result<()> {
    let by = format!("cli:{}", unix_user());
    let now = unix_now();
    match command {
        DeviceCommand::EnrolToken { clinic, room, ttl, common } => {
            let req = NewEnrolToken { clinic, room, ttl_secs: Some(ttl.as_secs()) };
            let token = open(&common.data_dir)?.create_token(&req, &by, now)?;
            print(common.json, &token, print_token)
        }
        DeviceCommand::Approve { id, common } => {
            let device = open(&common.data_dir)?.approve(&id, &by, now)?;
            print(common.json, &device, |d| {
                print_device(d);
                println!("The kiosk receives its certificate the next time it asks.");
            })
        }
        DeviceCommand::Revoke { id, common } => {
            let device = open(&common.data_dir)?.revoke(&id, &by, now)?;
            print(common.json, &device, |d| {
                print_device(d);
                println!("A running fleetd closes its connection within seconds.");
            })
        }
        DeviceCommand::List { common } => {
            let devices = open(&common.data_dir)?.list()?;
            print(common.json, &devices, |devices| {
                if devices.is_empty() {
                    println!("No devices yet: make a code with `fleetd device enrol-token`.");
                }
                for d in devices {
                    let (id, status) = (&d.id, d.status.as_str());
                    let created = when(d.created_at);
                    println!("{id}  {status:<8}  {created}  {} / {}", d.clinic, d.room);
                }
            })
        }
        DeviceCommand::Show { id, common } => {
            let device = open(&common.data_dir)?.show(&id)?;
            print(common.json, &device, print_device)
        }
    }
}

/// The registry of the data directory, creating the CA and signing key if this is a fresh one.
/// An existing PKI is left as it is: the server certificate is `fleetd serve`'s to renew.
fn open(data_dir: &Path) -> anyhow::Result<Registry> {
    let dir = crate::prepare_data_dir(data_dir)?;
    let mut pki = pki::Pki::paths(&dir);
    if !pki.ca_cert.exists() || !pki.ca_key.exists() {
        let hostname = hostname::get().ok().and_then(|h| h.into_string().ok());
        pki = pki::ensure(&dir, &hostname.unwrap_or_default())?;
    }
    let signing_key = signing::ensure(&dir)?;
    let store = Store::open(&dir.join("fleetd.db"))?;
    Registry::new(store, pki, signing_key).context("cannot read fleetd's CA")
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: impl Fn(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        text(value);
    }
    Ok(())
}

fn print_token(t: &EnrolToken) {
    println!("Enrolment code: {}", t.token);
    println!("For:            {} / {}", t.clinic, t.room);
    println!("Valid until:    {}", when(t.expires_at));
    println!("Type it at the kiosk; it works once. fleetd cannot show it again.");
}

fn print_device(d: &DeviceInfo) {
    println!("Device:      {}", d.id);
    println!("Status:      {}", d.status.as_str());
    println!("Place:       {} / {}", d.clinic, d.room);
    println!("Enrolled:    {}", when(d.created_at));
    if let Some(t) = d.approved_at {
        println!("Approved:    {}", when(t));
    }
    if let Some(t) = d.revoked_at {
        println!("Revoked:     {}", when(t));
    }
    if let (Some(serial), Some(fingerprint)) = (&d.cert_serial, &d.cert_fingerprint) {
        println!("Certificate: serial {serial}");
        println!("             SHA-256 {fingerprint}");
    }
}

/// RFC 3339, UTC.
fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The Unix user running the command, for the audit line.
fn unix_user() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| format!("uid {uid}"), |u| u.name)
}

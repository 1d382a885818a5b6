//! `fleetd device …`: enrolment tokens, device administration and commands from the command
//! line. Works on the data directory directly, whether or not `fleetd serve` is running (a
//! running server notices revocations and queued commands within a second; see
//! [`crate::registry::revocation`], [`crate::fleet::driver`]). Prints for people, or JSON (`--json`, the API's
//! types) for scripts.

use std::path::Path;
use std::time::Duration;

use telekiosk_protocol::api::{
    CommandInfo, CommandStatus, DeviceDetail, DeviceInfo, EnrolToken, FleetDevice, NewEnrolToken,
};
use telekiosk_protocol::command::{Command, CommandOutcome};
use telekiosk_protocol::device::{Health, PartStatus, Presence};

use telekiosk_protocol::api::MAX_TOKEN_TTL_SECS;

use super::{Common, audited, open_fleet, open_registry, parse_duration, print, unix_user, when};
use crate::audit;
use crate::data_dir::DataDir;
use crate::store::unix_now;

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
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
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
    /// Show one device: state, health, config versions, latest commands.
    Show {
        /// Device id (`dev-…`).
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Send a signed command to a kiosk (the running fleetd signs and sends it).
    Cmd {
        /// Device id (`dev-…`).
        id: String,
        /// What to do.
        #[arg(value_enum)]
        command: CmdKind,
        /// For identify: how long to flash the screen, 1–60 seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Wait up to this many seconds for the kiosk's answer.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
}

/// Commands a kiosk takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CmdKind {
    /// Reboot the appliance (after a visit in progress).
    Reboot,
    /// Restart the kiosk program (after a visit in progress).
    RestartApp,
    /// Flash the screen so a technician can find the kiosk.
    Identify,
    /// Collect a PHI-free diagnostics bundle.
    Diagnostics,
    /// Probe the kiosk's hardware: encoders (5 s of 720p each), cameras, audio, TPM, displays.
    Probe,
}

/// Runs one `fleetd device` subcommand.
pub fn run(command: DeviceCommand, data_dir: &Path) -> anyhow::Result<()> {
    let dir = DataDir::prepare(data_dir)?;
    let by = format!("cli:{}", unix_user());
    let now = unix_now();
    match command {
        DeviceCommand::EnrolToken { clinic, room, ttl, common } => {
            let object = format!("{clinic} / {room}");
            let req = NewEnrolToken { clinic, room, ttl_secs: Some(ttl.as_secs()) };
            let token = open_registry(&dir)?.create_token(&req, &by, now);
            let token = audited(&dir, audit::ENROL_TOKEN, &object, token)??;
            print(common.json, &token, print_token)
        }
        DeviceCommand::Approve { id, common } => {
            let device = open_registry(&dir)?.approve(&id, &by, now);
            let device = audited(&dir, audit::APPROVE, &id, device)??;
            print(common.json, &device, |d| {
                print_device(d);
                println!("The kiosk receives its certificate the next time it asks.");
            })
        }
        DeviceCommand::Revoke { id, common } => {
            let device = open_registry(&dir)?.revoke(&id, &by, now);
            let device = audited(&dir, audit::REVOKE, &id, device)??;
            print(common.json, &device, |d| {
                print_device(d);
                println!("A running fleetd closes its connection within seconds.");
            })
        }
        DeviceCommand::List { common } => {
            let devices = open_fleet(&dir)?.fleet()?;
            print(common.json, &devices, |devices| {
                if devices.is_empty() {
                    println!("No devices yet: make a code with `fleetd device enrol-token`.");
                }
                for f in devices {
                    let d = &f.device;
                    let (id, status, online) = (&d.id, d.status.as_str(), presence(f));
                    let applied =
                        f.state.as_ref().map_or("-".into(), |s| s.config_version.to_string());
                    let health = f.state.as_ref().map_or("unknown".into(), |s| health(&s.health));
                    let key = &d.key_fingerprint;
                    println!(
                        "{id}  {status:<8}  {online:<7}  config {applied:<6}  {health:<20}  key {key}  \
                         {} / {}",
                        d.clinic, d.room
                    );
                }
            })
        }
        DeviceCommand::Show { id, common } => {
            let detail = open_fleet(&dir)?.device_detail(&id)?;
            print(common.json, &detail, print_detail)
        }
        DeviceCommand::Cmd { id, command, seconds, wait, common } => {
            let command = match command {
                CmdKind::Reboot => Command::Reboot,
                CmdKind::RestartApp => Command::RestartApp,
                CmdKind::Identify => Command::Identify { seconds },
                CmdKind::Diagnostics => Command::CollectDiagnostics,
                CmdKind::Probe => Command::ProbeHardware,
            };
            let fleet = open_fleet(&dir)?;
            let info = fleet.new_command(&id, command, &by, now);
            let mut info = audited(&dir, audit::COMMAND, &id, info)??;
            if let Some(secs) = wait {
                let deadline = std::time::Instant::now() + Duration::from_secs(secs);
                while info.status != CommandStatus::Answered && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(200));
                    info = fleet.command(&info.command_id)?.unwrap_or(info);
                }
            }
            print(common.json, &info, print_command)?;
            match (&info.result, wait) {
                (Some(r), _) if r.outcome == CommandOutcome::Refused => {
                    anyhow::bail!("{id} refused the command: {}", r.detail)
                }
                (None, Some(secs)) => anyhow::bail!(
                    "no answer from {id} within {secs} s (is fleetd serve running and the kiosk \
                     online?); see `fleetd device show {id}` later"
                ),
                _ => Ok(()),
            }
        }
    }
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
    println!("Key:         {} (the kiosk shows the same while it waits)", d.key_fingerprint);
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

/// `online`, `offline`, or `-` for a device never heard from.
pub fn presence(d: &FleetDevice) -> &'static str {
    match d.state.as_ref().map(|s| s.presence) {
        Some(Presence::Online) => "online",
        Some(Presence::Offline) => "offline",
        None => "-",
    }
}

/// `ok`, or the parts that are not, e.g. `camera missing, tpm failed`.
fn health(h: &Health) -> String {
    let parts =
        [("camera", h.camera), ("mic", h.microphone), ("speaker", h.speaker), ("tpm", h.tpm)];
    let bad: Vec<String> = parts
        .iter()
        .filter(|(_, s)| *s != PartStatus::Ok)
        .map(|(name, s)| format!("{name} {}", format!("{s:?}").to_lowercase()))
        .collect();
    if bad.is_empty() { "ok".into() } else { bad.join(", ") }
}

fn print_detail(d: &DeviceDetail) {
    print_device(&d.fleet.device);
    match (&d.fleet.state, d.fleet.last_seen) {
        (Some(s), Some(seen)) => {
            let presence = presence(&d.fleet);
            println!(
                "State:       {presence} (last report {}), software {}",
                when(seen),
                s.software
            );
            println!("Up:          {} s", s.uptime_secs);
            println!("Health:      {}", health(&s.health));
            if let Some(v) = &s.last_visit {
                println!("Last visit:  ended {}, {} s", when(v.ended_at), v.duration_secs);
            }
        }
        _ => println!("State:       never reported"),
    }
    let c = &d.config;
    let sent = c.published.as_ref().map_or("nothing".into(), |p| format!("version {}", p.version));
    let applied = c.applied_version.map_or("unknown".into(), |v| format!("version {v}"));
    println!("Config:      sent {sent}, applied {applied}");
    if let Some(r) = &c.refusal {
        println!("Refused:     version {}: {}", r.version, r.reason);
    }
    if d.commands.is_empty() {
        println!("Commands:    none");
    } else {
        println!("Commands (latest first):");
        d.commands.iter().for_each(|c| print!("  {}", command_line(c)));
    }
}

fn command_line(c: &CommandInfo) -> String {
    let name = crate::fleet::command_name(&c.command);
    let mut line =
        format!("{}  {name:<11}  {:<8}  {}", c.command_id, c.status.as_str(), when(c.created_at));
    if let Some(r) = &c.result {
        let outcome = format!("{:?}", r.outcome).to_lowercase();
        let detail: String = r.detail.chars().take(200).collect();
        line += &format!("  {outcome}: {detail}");
    }
    line + "\n"
}

fn print_command(c: &CommandInfo) {
    print!("{}", command_line(c));
}

/// How long an enrolment code works: a duration from 1 s to 30 days.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = parse_duration(s)?;
    if ttl.as_secs() > MAX_TOKEN_TTL_SECS {
        return Err(format!("{s:?} is out of range: a code lives from 1s to 30d"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_lifetimes_are_read_with_their_unit_and_bounded() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "24", "h", "24x", "-1h", "1.5h", "0s", "31d", "99999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}

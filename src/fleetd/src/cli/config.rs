//! `fleetd config …`: group bodies, device overrides, rollouts, from the command line. Works on
//! the data directory's database, like `fleetd device`; a running `fleetd serve` notices each
//! change within a second (the registry generation) and does the sending. Prints for people,
//! or JSON (`--json`, the API's types) for scripts. Validation errors are printed as they are.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use telekiosk_protocol::api::{
    DeviceConfig, FleetStatus, GroupConfig, NewRollout, RolloutInfo, RolloutProgress,
};

use super::device::presence;
use super::{Common, audited, open_fleet, parse_duration, print, unix_user, when};
use crate::audit;
use crate::data_dir::DataDir;
use crate::fleet::rollout::Control;
use crate::store::unix_now;

/// `fleetd config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check and store a group's config body, or a device's override (a partial object merged
    /// over its group's body; `{}` removes it). Nothing is sent until a rollout.
    Set {
        #[command(flatten)]
        target: ConfigTarget,
        /// JSON file with the body or override; `-` reads standard input.
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Print the hash of a technician's maintenance code, read from standard input (4–12
    /// digits), for the config's `maintenance_code_hash`. The code is never stored or printed.
    MaintenanceCode,
    /// Show a group's body, or a device's override, effective config and versions.
    Show {
        #[command(flatten)]
        target: ConfigTarget,
        #[command(flatten)]
        common: Common,
    },
    /// Roll the group's body out as a new version, in waves.
    Rollout {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Rollouts, and each device's sent and applied config versions.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Pause a running rollout: no new wave starts.
    Pause {
        /// Rollout id (see `fleetd config status`).
        rollout: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Resume a paused rollout (its wave time-out starts again).
    Resume {
        /// Rollout id.
        rollout: i64,
        /// Resume a rollout that halted itself on failures instead (e.g. a canary kiosk that
        /// falsely reports refusals): the failures so far are forgiven, later ones count against
        /// the threshold again. Audited as `rollout.override_halt`.
        #[arg(long)]
        override_halt: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Abort a rollout: nothing more is sent (devices keep what they applied).
    Abort {
        /// Rollout id.
        rollout: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Roll the group back: the body of its previous completed rollout, as a new version.
    Rollback {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        common: Common,
    },
}

/// What `config set` and `config show` work on: `--group NAME` or `--device ID`, exactly one
/// (a clap argument group, so the parser refuses both or neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    /// A group: the clinic name devices were enrolled for.
    Group(String),
    /// A device's override.
    Device(String),
}

impl clap::FromArgMatches for ConfigTarget {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        match (m.get_one::<String>("group"), m.get_one::<String>("device")) {
            (Some(group), None) => Ok(Self::Group(group.clone())),
            (None, Some(id)) => Ok(Self::Device(id.clone())),
            _ => Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "give either --group or --device",
            )),
        }
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for ConfigTarget {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new("group")
                .long("group")
                .value_name("GROUP")
                .help("Group: the clinic name devices were enrolled for"),
        )
        .arg(
            clap::Arg::new("device")
                .long("device")
                .value_name("DEVICE")
                .help("Device id (`dev-…`)"),
        )
        .group(clap::ArgGroup::new("target").args(["group", "device"]).required(true))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// How a rollout proceeds.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Group: the clinic name devices were enrolled for.
    #[arg(long)]
    group: String,
    /// First-wave devices, comma-separated (instead of a percentage).
    #[arg(long, value_delimiter = ',')]
    canary: Vec<String>,
    /// Share of the group in the first wave (at least one device).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
    first_wave_percent: u8,
    /// Halt once refusals and time-outs pass this share of the devices targeted so far.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=100))]
    failure_threshold_percent: u8,
    /// A device of a wave that has not acknowledged this long after the wave started has
    /// failed: e.g. 90s, 15m, 1h.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    wave_timeout: Duration,
}

impl PlanArgs {
    fn request(self) -> NewRollout {
        NewRollout {
            group: self.group,
            canary: self.canary,
            first_wave_percent: Some(self.first_wave_percent),
            failure_threshold_percent: Some(self.failure_threshold_percent),
            wave_timeout_secs: Some(self.wave_timeout.as_secs()),
        }
    }
}

fn read_document(file: &Path) -> anyhow::Result<serde_json::Value> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    let what = file.display().to_string();
    let map = crate::fleet::layers::parse_document(&what, &text)?;
    Ok(serde_json::Value::Object(map))
}

/// Runs one `fleetd config` subcommand.
pub fn run(command: ConfigCommand, data_dir: &Path) -> anyhow::Result<()> {
    // Needs no data directory: don't make one.
    if let ConfigCommand::MaintenanceCode = command {
        return print_maintenance_hash();
    }
    let dir = DataDir::prepare(data_dir)?;
    let by = format!("cli:{}", unix_user());
    let now = unix_now();
    match command {
        ConfigCommand::Set { target, file, common } => {
            let fleet = open_fleet(&dir)?;
            let body = read_document(&file)?;
            match target {
                ConfigTarget::Group(group) => {
                    let stored = fleet.set_group_config(&group, body, &by, now);
                    let stored = audited(&dir, audit::CONFIG_GROUP, &group, stored)??;
                    print(common.json, &stored, |g| {
                        print_group(g);
                        println!(
                            "Stored. Send it with `fleetd config rollout --group {:?}`.",
                            g.group
                        );
                    })
                }
                ConfigTarget::Device(id) => {
                    let stored = fleet.set_device_override(&id, body, &by, now);
                    let stored = audited(&dir, audit::CONFIG_DEVICE, &id, stored)??;
                    print(common.json, &stored, |d| {
                        print_device_config(d);
                        println!(
                            "Stored. It is sent with the next rollout of group {:?}.",
                            d.group
                        );
                    })
                }
            }
        }
        ConfigCommand::Show { target, common } => {
            let fleet = open_fleet(&dir)?;
            match target {
                ConfigTarget::Group(group) => {
                    print(common.json, &fleet.group_config(&group)?, print_group)
                }
                ConfigTarget::Device(id) => {
                    print(common.json, &fleet.device_config(&id)?, print_device_config)
                }
            }
        }
        ConfigCommand::Rollout { plan, common } => {
            let req = plan.request();
            let started = open_fleet(&dir)?.start_rollout(&req, &by, now);
            let started = audited(&dir, audit::ROLLOUT_START, &req.group, started)??;
            print(common.json, &started, |r| {
                print_rollout(r);
                println!("A running fleetd sends the first wave within a second.");
            })
        }
        ConfigCommand::Rollback { plan, common } => {
            let req = plan.request();
            let started = open_fleet(&dir)?.rollback(&req, &by, now);
            let started = audited(&dir, audit::ROLLBACK, &req.group, started)??;
            print(common.json, &started, print_rollout)
        }
        ConfigCommand::Status { common } => {
            print(common.json, &open_fleet(&dir)?.status()?, print_status)
        }
        ConfigCommand::Pause { rollout, common } => {
            change(&dir, rollout, Control::Pause, &by, common)
        }
        ConfigCommand::Resume { rollout, override_halt, common } => {
            let action = if override_halt { Control::OverrideHalt } else { Control::Resume };
            change(&dir, rollout, action, &by, common)
        }
        ConfigCommand::Abort { rollout, common } => {
            change(&dir, rollout, Control::Abort, &by, common)
        }
        ConfigCommand::MaintenanceCode => print_maintenance_hash(),
    }
}

/// Reads a maintenance code from standard input and prints its hash.
fn print_maintenance_hash() -> anyhow::Result<()> {
    let mut code = String::new();
    std::io::stdin().read_line(&mut code)?;
    let hash = crate::accounts::hash_maintenance_code(code.trim()).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

fn change(dir: &DataDir, id: i64, action: Control, by: &str, common: Common) -> anyhow::Result<()> {
    let name = match action {
        Control::Pause => audit::ROLLOUT_PAUSE,
        Control::Resume => audit::ROLLOUT_RESUME,
        Control::Abort => audit::ROLLOUT_ABORT,
        Control::OverrideHalt => audit::ROLLOUT_OVERRIDE_HALT,
    };
    let changed = open_fleet(dir)?.change_rollout(id, action, by, unix_now());
    let changed = audited(dir, name, &format!("rollout {id}"), changed)??;
    print(common.json, &changed, print_rollout)
}

fn print_group(g: &GroupConfig) {
    println!("Group:    {} ({} active devices)", g.group, g.devices);
    match (&g.updated_at, &g.updated_by) {
        (Some(at), Some(by)) => println!("Set:      {} by {by}", when(*at)),
        _ => println!("Set:      never (devices get the defaults)"),
    }
    println!("{}", serde_json::to_string_pretty(&g.body).unwrap_or_default());
}

fn print_device_config(d: &DeviceConfig) {
    println!("Device:   {} (group {})", d.device_id, d.group);
    match &d.override_body {
        Some(o) => println!("Override: {}", serde_json::to_string(o).unwrap_or_default()),
        None => println!("Override: none"),
    }
    match &d.published {
        Some(p) => println!(
            "Sent:     version {} (rollout {}) at {}",
            p.version,
            p.rollout_id,
            when(p.published_at)
        ),
        None => println!("Sent:     nothing yet"),
    }
    match d.applied_version {
        Some(v) => println!("Applied:  version {v}"),
        None => println!("Applied:  unknown (no state reported yet)"),
    }
    if let Some(r) = &d.refusal {
        println!("Refused:  version {}: {}", r.version, r.reason);
    }
    match (&d.effective, &d.error) {
        (Some(body), _) => {
            println!("Effective config (group body + override):");
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
        }
        (None, Some(e)) => println!("Effective config: none, {e}"),
        (None, None) => {}
    }
}

/// A rollout in a few lines.
pub fn print_rollout(r: &RolloutInfo) {
    let p = &r.progress;
    println!(
        "Rollout {}: version {} of group {:?} ({}), {}, wave {} of {}",
        r.id,
        r.version,
        r.group,
        r.kind,
        p.status.as_str(),
        p.current_wave,
        p.waves.len()
    );
    print_progress(p, "", "acked");
}

/// Who started a rollout (config or OS update) and when, its plan (`more`: what else the plan
/// says, after a "; "), its waves (`acked`: what an acknowledged device is called) and why it
/// halted.
pub fn print_progress(p: &RolloutProgress, more: &str, acked: &str) {
    let first = if p.canary.is_empty() {
        format!("first wave {} %", p.first_wave_percent)
    } else {
        format!("canary {}", p.canary.join(","))
    };
    println!(
        "  by {} at {}; {first}, halts past {} % failures, wave time-out {} s{}",
        p.created_by,
        when(p.created_at),
        p.failure_threshold_percent,
        p.wave_timeout_secs,
        if more.is_empty() { String::new() } else { format!("; {more}") }
    );
    for w in &p.waves {
        println!(
            "  wave {}: {:>5} devices {:>5} {acked} {:>5} pending {:>5} failed {:>5} not sent",
            w.wave, w.devices, w.acked, w.pending, w.failed, w.not_sent
        );
    }
    if let Some(reason) = &p.halt_reason {
        println!("  halted: {reason}");
    }
}

fn print_status(s: &FleetStatus) {
    if s.rollouts.is_empty() {
        println!("No rollouts yet.");
    }
    for r in s.rollouts.iter().take(10) {
        print_rollout(r);
    }
    println!();
    println!(
        "{:<14} {:<8} {:>6} {:>8}  {:<24} group",
        "device", "state", "sent", "applied", "refused"
    );
    for d in &s.devices {
        let presence = presence(d);
        let sent = d.published_version.map_or("-".into(), |v| v.to_string());
        let state = d.state.as_ref();
        let applied = state.map_or("-".into(), |s| s.config_version.to_string());
        let refused = state
            .and_then(|s| s.config_refusal.as_ref())
            .map_or("-".into(), |r| format!("v{}: {}", r.version, r.reason));
        let refused: String = refused.chars().take(24).collect();
        println!(
            "{:<14} {:<8} {:>6} {:>8}  {:<24} {}",
            d.device.id, presence, sent, applied, refused, d.device.clinic
        );
    }
}

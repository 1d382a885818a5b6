//! `fleetd update …`: OS bundles and update rollouts from the command line. Like `fleetd
//! config`, it works on the data directory; a running `fleetd serve` notices each change
//! within a second and sends the `install_update` commands of each wave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use telekiosk_protocol::api::{BundleInfo, NewUpdate, UpdateInfo};

use super::{Common, audited, open_fleet, parse_duration, print, unix_user, when};
use crate::audit;
use crate::data_dir::DataDir;
use crate::fleet::rollout::Control;
use crate::store::unix_now;

/// `fleetd update` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UpdateCommand {
    /// Add a signed RAUC bundle (made by image/bundle) as OS version VERSION. fleetd keeps a
    /// copy and hands it to kiosks over mutual TLS; each kiosk checks its signature.
    Add {
        /// The bundle file.
        file: PathBuf,
        /// The OS version it installs (its IMAGE_VERSION).
        #[arg(long)]
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// The bundles fleetd has.
    Bundles {
        #[command(flatten)]
        common: Common,
    },
    /// Roll OS version VERSION out to a group, in waves; halts past the failure threshold.
    Rollout {
        /// Group: the clinic name devices were enrolled for.
        #[arg(long)]
        group: String,
        /// A bundle's version (see `fleetd update bundles`).
        #[arg(long)]
        version: String,
        /// First-wave devices, comma-separated (instead of a percentage).
        #[arg(long, value_delimiter = ',')]
        canary: Vec<String>,
        /// Share of the group in the first wave (at least one device).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
        first_wave_percent: u8,
        /// Halt once failures and time-outs pass this share of the devices targeted so far.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=100))]
        failure_threshold_percent: u8,
        /// A device of a wave not running the version this long after the wave started has
        /// failed (download, the end of visits and opening hours, reboot, health check).
        #[arg(long, default_value = "6h", value_parser = parse_duration)]
        wave_timeout: Duration,
        /// Let kiosks reboot into the update inside opening hours too (never during a visit).
        #[arg(long)]
        reboot_in_opening_hours: bool,
        /// How long the new version has to report healthy after its first boot.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        health_timeout: Duration,
        #[command(flatten)]
        common: Common,
    },
    /// Update rollouts, or one with its devices.
    Status {
        /// Update rollout id.
        update: Option<i64>,
        #[command(flatten)]
        common: Common,
    },
    /// Pause a running update rollout: no new wave starts.
    Pause {
        update: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Resume a paused update rollout, or (--override-halt) one that halted on failures.
    Resume {
        update: i64,
        #[arg(long)]
        override_halt: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Abort an update rollout: no more devices are sent it (those that installed keep it).
    Abort {
        update: i64,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs one `fleetd update` subcommand.
pub fn run(command: UpdateCommand, data_dir: &Path) -> anyhow::Result<()> {
    let dir = DataDir::prepare(data_dir)?;
    let by = format!("cli:{}", unix_user());
    let now = unix_now();
    match command {
        UpdateCommand::Add { file, version, common } => {
            let added = open_fleet(&dir)?.add_bundle(&file, &version, &dir.bundles(), &by, now);
            let added = audited(&dir, audit::BUNDLE_ADD, &format!("bundle {version}"), added)??;
            print(common.json, &added, print_bundle)
        }
        UpdateCommand::Bundles { common } => {
            print(common.json, &open_fleet(&dir)?.bundles()?, |bundles: &Vec<BundleInfo>| {
                if bundles.is_empty() {
                    println!("No bundles yet: add one with `fleetd update add FILE --version V`.");
                }
                bundles.iter().for_each(print_bundle);
            })
        }
        UpdateCommand::Rollout {
            group,
            version,
            canary,
            first_wave_percent,
            failure_threshold_percent,
            wave_timeout,
            reboot_in_opening_hours,
            health_timeout,
            common,
        } => {
            let req = NewUpdate {
                group,
                version,
                canary,
                first_wave_percent: Some(first_wave_percent),
                failure_threshold_percent: Some(failure_threshold_percent),
                wave_timeout_secs: Some(wave_timeout.as_secs()),
                reboot_in_opening_hours,
                health_timeout_secs: Some(
                    u32::try_from(health_timeout.as_secs()).unwrap_or(u32::MAX),
                ),
            };
            let started = open_fleet(&dir)?.start_update(&req, &by, now);
            let started = audited(&dir, audit::UPDATE_START, &req.group, started)??;
            print(common.json, &started, |u| {
                print_update(u);
                println!("A running fleetd sends the first wave within a second.");
            })
        }
        UpdateCommand::Status { update: Some(id), common } => {
            print(common.json, &open_fleet(&dir)?.update(id)?, print_update)
        }
        UpdateCommand::Status { update: None, common } => {
            print(common.json, &open_fleet(&dir)?.updates(20)?, |all: &Vec<UpdateInfo>| {
                if all.is_empty() {
                    println!("No update rollouts yet.");
                }
                all.iter().for_each(print_update);
            })
        }
        UpdateCommand::Pause { update, common } => {
            change(&dir, update, Control::Pause, &by, common)
        }
        UpdateCommand::Resume { update, override_halt, common } => {
            let action = if override_halt { Control::OverrideHalt } else { Control::Resume };
            change(&dir, update, action, &by, common)
        }
        UpdateCommand::Abort { update, common } => {
            change(&dir, update, Control::Abort, &by, common)
        }
    }
}

fn change(dir: &DataDir, id: i64, action: Control, by: &str, common: Common) -> anyhow::Result<()> {
    let changed = open_fleet(dir)?.change_update(id, action, by, unix_now());
    let changed = audited(dir, audit::UPDATE_CHANGE, &format!("update {id} {action:?}"), changed)??;
    print(common.json, &changed, print_update)
}

fn print_bundle(b: &BundleInfo) {
    let mib = b.size as f64 / 1048576.0;
    println!(
        "{}  {mib:.1} MiB  sha256 {}  added {} by {}",
        b.version,
        b.sha256,
        when(b.added_at),
        b.added_by
    );
}

/// An update rollout for people: its plan, waves, and devices when listed.
pub fn print_update(u: &UpdateInfo) {
    let p = &u.progress;
    println!(
        "Update {}: OS {} to group {:?}, {}, wave {} of {}",
        u.id,
        u.version,
        u.group,
        p.status.as_str(),
        p.current_wave,
        p.waves.len()
    );
    let reboot =
        if u.reboot_in_opening_hours { "any time outside visits" } else { "outside opening hours" };
    let more = format!("reboots {reboot}; {} s to become healthy", u.health_timeout_secs);
    super::config::print_progress(p, &more, "updated");
    for d in &p.devices {
        let reason = d.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        println!("  {} (wave {}): {}{reason}", d.device_id, d.wave, d.outcome);
    }
}

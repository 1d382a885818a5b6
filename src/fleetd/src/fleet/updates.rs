//! OS updates: bundles fleetd hands out and update rollouts. An update rollout is the config
//! rollout engine ([`super::rollout`]) with another reading of what devices report: a device
//! has acknowledged once its state says it runs the bundle's version, and has failed once it
//! reports that version as failed (download, signature, install, or it did not become healthy
//! and went back). Each device of a wave is sent a signed `install_update` command (queued
//! here, signed and sent by [`Fleet::send_commands`]); one that never got it (the command
//! expired while the device was offline) is sent a new one while its wave is pending.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use rusqlite::Connection;
use telekiosk_protocol::api::{
    BundleInfo, NewUpdate, UPDATE_WAVE_TIMEOUT_DEFAULT_SECS, UpdateInfo,
};
use telekiosk_protocol::command::Command;
use telekiosk_protocol::update::{HEALTH_TIMEOUT_DEFAULT_SECS, UpdateOrder, os_version};

use super::rollout::{Control, Effect, Outcome, Plan, Rollout, Seen};
use super::view::{parse_state, progress};
use super::{Fleet, FleetError};
use crate::audit;
use crate::store::fleet::{self as fq, CommandRow};
use crate::store::updates::{self as q, BundleRow, UpdateRow};
use crate::store::{StoreError, bump};

/// Why an update operation was refused. Shown to the admin as it is.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("no bundle has version {0:?} (see `fleetd update bundles`)")]
    NoSuchBundle(String),
    #[error("a bundle of version {version:?} is already there ({sha256})")]
    VersionExists { version: String, sha256: String },
    #[error("this bundle is already there as version {version:?}")]
    SameBundle { version: String },
    #[error("there is no update rollout {0} (see `fleetd update status`)")]
    NoSuchUpdate(i64),
    #[error(
        "update rollout {id} of group {group:?} is still {status}: wait for it to end, or abort it \
         (`fleetd update abort {id}`)"
    )]
    Busy { id: i64, group: String, status: String },
    #[error("cannot read the bundle {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot store the bundle in {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the bundle is {0} bytes: an empty file or one over 4 GiB is not a bundle")]
    Size(u64),
    #[error(
        "{0} does not start like a RAUC bundle (a squashfs image): was it made by image/bundle?"
    )]
    NotABundle(String),
}

/// A bundle as admins see it.
pub fn bundle_info(b: &BundleRow) -> BundleInfo {
    BundleInfo {
        version: b.version.clone(),
        sha256: b.sha256.clone(),
        size: b.size,
        added_at: b.added_at,
        added_by: b.added_by.clone(),
    }
}

/// The plan of a new update rollout: the request's options over the update defaults.
fn plan_of(req: &NewUpdate) -> Plan {
    let d = Plan::default();
    Plan {
        canary: req.canary.clone(),
        first_wave_percent: req.first_wave_percent.unwrap_or(d.first_wave_percent),
        failure_threshold_percent: req
            .failure_threshold_percent
            .unwrap_or(d.failure_threshold_percent),
        wave_timeout_secs: req.wave_timeout_secs.unwrap_or(UPDATE_WAVE_TIMEOUT_DEFAULT_SECS),
    }
}

/// Copies `src` into `dir` as `{sha256}.raucb` (through a temporary file, synced, renamed),
/// hashing it on the way; returns the hash and size.
fn store_file(src: &Path, dir: &Path) -> Result<(String, u64), UpdateError> {
    let read_err = |e| UpdateError::Read { path: src.display().to_string(), source: e };
    let write_err = |e| UpdateError::Write { path: dir.display().to_string(), source: e };
    let mut input = fs::File::open(src).map_err(read_err)?;
    let mut head = [0u8; 4];
    let n = input.read(&mut head).map_err(read_err)?;
    // RAUC bundles are squashfs images ("hsqs"), whatever their format.
    if n < 4 || &head != b"hsqs" {
        return Err(UpdateError::NotABundle(src.display().to_string()));
    }
    fs::create_dir_all(dir).map_err(write_err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    hasher.update(&head);
    tmp.write_all(&head).map_err(write_err)?;
    let mut size = 4u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(write_err)?;
        size += n as u64;
    }
    if size > telekiosk_protocol::update::MAX_BUNDLE_BYTES {
        return Err(UpdateError::Size(size));
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    let sha256: String = hasher.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{sha256}.raucb"));
    tmp.persist(&path).map_err(|e| write_err(e.error))?;
    Ok((sha256, size))
}

impl Fleet {
    /// Adds a bundle file as OS version `version`: copied into `dir` under its SHA-256. The
    /// bundle's signature is not checked here (fleetd does not hold the operator's keyring):
    /// every kiosk checks it before installing.
    pub fn add_bundle(
        &self,
        src: &Path,
        version: &str,
        dir: &Path,
        by: &str,
        now: i64,
    ) -> Result<BundleInfo, FleetError> {
        os_version("version", version)?;
        if let Some(b) = self.store.read(|c| q::bundle_by_version(c, version))? {
            let (version, sha256) = (b.version, b.sha256);
            return Err(UpdateError::VersionExists { version, sha256 }.into());
        }
        let (sha256, size) = store_file(src, dir)?;
        let row = BundleRow {
            id: 0,
            version: version.into(),
            sha256: sha256.clone(),
            size,
            added_at: now,
            added_by: by.into(),
        };
        self.store.write(|c| {
            if let Some(b) = q::bundle_by_sha256(c, &sha256)? {
                return Err(UpdateError::SameBundle { version: b.version }.into());
            }
            q::insert_bundle(c, &row)?;
            Ok::<_, FleetError>(())
        })?;
        tracing::info!(by, version, sha256 = %row.sha256, size, "bundle added");
        Ok(bundle_info(&row))
    }

    /// Every bundle, newest first.
    pub fn bundles(&self) -> Result<Vec<BundleInfo>, FleetError> {
        Ok(self.store.read(q::bundles)?.iter().map(bundle_info).collect())
    }

    /// The bundle a kiosk asks for by its SHA-256, if fleetd has it.
    pub fn bundle_by_sha256(&self, sha256: &str) -> Result<Option<BundleRow>, StoreError> {
        self.store.read(|c| q::bundle_by_sha256(c, sha256))
    }

    /// Starts rolling a bundle's version out to a group's active devices.
    pub fn start_update(
        &self,
        req: &NewUpdate,
        by: &str,
        now: i64,
    ) -> Result<UpdateInfo, FleetError> {
        telekiosk_protocol::Validate::validate(req)?;
        let id = self.store.write(|c| {
            if let Some(u) = q::live_updates(c)?.into_iter().find(|u| u.group == req.group) {
                let (id, group, status) = (u.id, u.group, u.status);
                return Err(UpdateError::Busy { id, group, status }.into());
            }
            let bundle = q::bundle_by_version(c, &req.version)?
                .ok_or_else(|| UpdateError::NoSuchBundle(req.version.clone()))?;
            let devices = fq::active_devices_in(c, &req.group)?.into_iter().map(|d| d.id).collect();
            let engine = Rollout::new(&req.group, bundle.id as u64, devices, plan_of(req))?;
            let row = UpdateRow {
                id: 0,
                group: req.group.clone(),
                bundle_id: bundle.id,
                reboot_in_opening_hours: req.reboot_in_opening_hours,
                health_timeout_secs: req.health_timeout_secs.unwrap_or(HEALTH_TIMEOUT_DEFAULT_SECS),
                status: engine.status.as_str().into(),
                state: serde_json::to_string(&engine).expect("the engine state serialises"),
                created_at: now,
                created_by: by.into(),
                updated_at: now,
            };
            let id = q::insert_update(c, &row)?;
            bump(c)?;
            let devices = engine.targets.len();
            tracing::info!(by, group = %req.group, update = id, version = %req.version, devices, "update rollout started");
            Ok::<_, FleetError>(id)
        })?;
        self.update(id)
    }

    /// Pauses, resumes, aborts or overrides the halt of an update rollout.
    pub fn change_update(
        &self,
        id: i64,
        action: Control,
        by: &str,
        now: i64,
    ) -> Result<UpdateInfo, FleetError> {
        self.store.write(|c| {
            let row = q::update(c, id)?.ok_or(UpdateError::NoSuchUpdate(id))?;
            let mut engine = engine_of(&row)?;
            engine.admin(action, now).map_err(|source| FleetError::Change { id, source })?;
            let state = serde_json::to_string(&engine).expect("the engine state serialises");
            q::save_update(c, id, engine.status.as_str(), &state, now)?;
            bump(c)?;
            Ok::<_, FleetError>(())
        })?;
        tracing::info!(by, update = id, action = ?action, "update rollout changed");
        self.update(id)
    }

    /// One update rollout with its devices.
    pub fn update(&self, id: i64) -> Result<UpdateInfo, FleetError> {
        let (row, bundle) = self.store.read(|c| {
            let row = q::update(c, id)?;
            let bundle = match &row {
                Some(r) => q::bundle(c, r.bundle_id)?,
                None => None,
            };
            Ok((row, bundle))
        })?;
        let row = row.ok_or(UpdateError::NoSuchUpdate(id))?;
        update_info(&row, bundle.as_ref(), true)
    }

    /// Update rollouts, newest first.
    pub fn updates(&self, limit: u32) -> Result<Vec<UpdateInfo>, FleetError> {
        let (rows, bundles) = self.store.read(|c| Ok((q::updates(c, limit)?, q::bundles(c)?)))?;
        rows.iter()
            .map(|r| update_info(r, bundles.iter().find(|b| b.id == r.bundle_id), false))
            .collect()
    }

    /// How many update rollouts are running or paused.
    pub fn live_updates(&self) -> Result<usize, FleetError> {
        Ok(self.store.read(q::live_updates)?.len())
    }

    /// Steps every live update rollout: queues `install_update` commands for devices of a new
    /// wave (and again for a pending device whose command expired unsent or unanswered).
    /// [`Fleet::send_commands`] signs and sends them.
    pub fn step_updates(&self, now: i64) -> Result<(), FleetError> {
        for row in self.store.read(q::live_updates)? {
            self.store.write(|c| step_one(c, row.id, now))?;
        }
        Ok(())
    }
}

fn engine_of(row: &UpdateRow) -> Result<Rollout, FleetError> {
    super::engine_from(&format!("update rollout {}", row.id), &row.state)
}

/// What a device's latest state says about version `version`.
fn seen_of(
    c: &Connection,
    engine: &Rollout,
    version: &str,
) -> rusqlite::Result<Vec<(String, Seen)>> {
    let mut seen = Vec::new();
    for t in engine.targets.iter().filter(|t| t.outcome != Outcome::NotSent) {
        let Some((json, _)) = fq::state_of(c, &t.device_id)? else { continue };
        let Some(os) = parse_state(&t.device_id, &json).and_then(|s| s.os) else { continue };
        let refused = os.failed.filter(|f| f.version == version).map(|f| f.reason);
        seen.push((t.device_id.clone(), Seen { acked: os.version == version, refused }));
    }
    Ok(seen)
}

fn step_one(c: &Connection, id: i64, now: i64) -> Result<(), FleetError> {
    let Some(row) = q::update(c, id)? else { return Ok(()) };
    let bundle = q::bundle(c, row.bundle_id)?.ok_or_else(|| FleetError::Corrupt {
        what: format!("update rollout {id}"),
        reason: format!("its bundle {} is gone", row.bundle_id),
    })?;
    let mut engine = engine_of(&row)?;
    let seen = seen_of(c, &engine, &bundle.version)?;
    let effects = engine.step(|d| seen.iter().find(|(id, _)| id == d).map(|(_, s)| s.clone()), now);
    let (group, version) = (&row.group, &bundle.version);
    for effect in &effects {
        let detail = match effect {
            Effect::Publish { wave, devices } => {
                format!(
                    "update {id} version {version} wave {wave} sent to {} devices",
                    devices.len()
                )
            }
            Effect::TimedOut { wave, devices } => format!(
                "update {id} version {version} wave {wave}: devices did not update in time: {}",
                devices.join(",")
            ),
            Effect::Halted { reason } => format!("update {id} version {version} halted: {reason}"),
            Effect::Completed { acked, failed } => {
                format!("update {id} version {version} completed, {acked} updated, {failed} failed")
            }
        };
        audit::append_in(c, audit::system(audit::ROLLOUT_STEP, group, &detail))?;
    }
    if engine.status == telekiosk_protocol::api::RolloutStatus::Running {
        let order = UpdateOrder {
            version: bundle.version.clone(),
            sha256: bundle.sha256.clone(),
            size: bundle.size,
            reboot_in_opening_hours: row.reboot_in_opening_hours,
            health_timeout_secs: row.health_timeout_secs,
        };
        let pending = engine.targets.iter().filter(|t| t.outcome == Outcome::Pending);
        for t in pending {
            if !q::install_sent(c, &t.device_id, &bundle.sha256)? {
                queue_install(c, &t.device_id, &order, id, now)?;
            }
        }
    }
    let state = serde_json::to_string(&engine).expect("the engine state serialises");
    if state != row.state {
        q::save_update(c, id, engine.status.as_str(), &state, now)?;
    }
    Ok(())
}

fn queue_install(
    c: &Connection,
    device: &str,
    order: &UpdateOrder,
    update: i64,
    now: i64,
) -> Result<(), FleetError> {
    let row = CommandRow {
        command_id: super::commands::new_command_id().map_err(FleetError::Random)?,
        device_id: device.into(),
        command: serde_json::to_string(&Command::InstallUpdate(order.clone()))
            .expect("commands serialise"),
        status: "queued".into(),
        created_at: now,
        created_by: format!("update {update}"),
        issued_at: None,
        expires_at: None,
        result: None,
        result_at: None,
    };
    fq::insert_command(c, &row)?;
    Ok(())
}

/// An update rollout as admins see it.
fn update_info(
    row: &UpdateRow,
    bundle: Option<&BundleRow>,
    with_devices: bool,
) -> Result<UpdateInfo, FleetError> {
    let engine = engine_of(row)?;
    Ok(UpdateInfo {
        id: row.id,
        group: row.group.clone(),
        version: bundle.map(|b| b.version.clone()).unwrap_or_default(),
        sha256: bundle.map(|b| b.sha256.clone()).unwrap_or_default(),
        size: bundle.map_or(0, |b| b.size),
        reboot_in_opening_hours: row.reboot_in_opening_hours,
        health_timeout_secs: row.health_timeout_secs,
        progress: progress(&engine, row.created_at, &row.created_by, row.updated_at, with_devices),
    })
}

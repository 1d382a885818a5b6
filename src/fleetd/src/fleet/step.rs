//! The running server's half of fleet administration: advances live rollouts (signing and
//! recording the config each device of a new wave gets), signs and sends queued commands,
//! re-sends every device's retained config and unanswered commands after the broker
//! connection is made again (and a device's unanswered commands when it reports its state), and stores what kiosks report (a command's answer once: a later
//! result for an answered or expired command is ignored). Blocking (database); [`crate::fleet::driver`] runs it off the async
//! threads and does the MQTT side. Returns publishes rather than doing any I/O itself.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;
use serde_json::{Map, Value};
use telekiosk_protocol::command::{CommandOutcome, CommandPayload, CommandResult, SignedCommand};
use telekiosk_protocol::config::SignedConfig;
use telekiosk_protocol::{encode, topics};

use super::commands::{COMMAND_TTL_SECS, command_name};
use super::view::{merge_state, parse_state};
use super::{Fleet, FleetError, FromKiosk, Publish, engine_of, parse_stored};
use crate::audit::{self, Entry};
use crate::fleet::layers::{self, Place};
use crate::fleet::rollout::{Effect, Outcome, Rollout, Seen};
use crate::pki::signing::Signer;
use crate::store::fleet::{self as q, PublishedRow, RolloutRow};

/// An unanswered command is sent again to a device that reports its state (it is connected)
/// once it has been out this long: time enough for the kiosk to run it and answer.
pub const RESEND_AFTER_SECS: i64 = 30;

impl Fleet {
    /// Steps every running or paused rollout; returns the configs to publish (retained).
    pub fn step_rollouts(&self, signer: &Signer, now: i64) -> Result<Vec<Publish>, FleetError> {
        let live = self.store.read(q::live_rollouts)?;
        let mut out = Vec::new();
        for row in live {
            // A dry run first, without the write lock: most steps change nothing.
            let mut probe = engine_of(&row)?;
            let seen = self.store.read(|c| seen_of(c, &probe))?;
            let effects = probe.step(|d| seen.get(d).cloned(), now);
            if effects.is_empty() && serde_json::to_string(&probe).ok() == Some(row.state) {
                continue;
            }
            out.extend(self.store.write(|c| step_one(c, row.id, signer, now))?);
        }
        Ok(out)
    }

    /// How many rollouts are running or paused.
    pub fn live_rollouts(&self) -> Result<usize, FleetError> {
        Ok(self.store.read(q::live_rollouts)?.len())
    }

    /// The group's last completed config for devices that joined after it (see `catch_up`).
    pub fn catch_up(&self, signer: &Signer, now: i64) -> Result<Vec<Publish>, FleetError> {
        self.store.write(|c| catch_up(c, signer, now))
    }

    /// Signs and returns every queued command; expires those whose time is up. A command is
    /// marked sent here, before it is published: if fleetd stops or loses the broker before
    /// the publish is through, [`Fleet::resend_commands`] sends it again.
    pub fn send_commands(&self, signer: &Signer, now: i64) -> Result<Vec<Publish>, FleetError> {
        self.store.write(|c| {
            let expired = q::expire_commands(c, now - COMMAND_TTL_SECS, now)?;
            if expired > 0 {
                let detail = format!("{expired} commands expired unanswered");
                audit::append_in(c, audit::system(audit::COMMAND_SENT, "-", &detail))?;
            }
            let mut out = Vec::new();
            for row in q::commands_in(c, "queued")? {
                let expires_at = now + COMMAND_TTL_SECS;
                let (publish, command) = signed_command(&row, now, expires_at, signer)?;
                q::command_sent(c, &row.command_id, now, expires_at)?;
                let device = &row.device_id;
                let detail = format!("{command} {} signed and sent", row.command_id);
                audit::append_in(c, audit::system(audit::COMMAND_SENT, device, &detail))?;
                out.push(publish);
            }
            Ok(out)
        })
    }

    /// Every command sent but not yet answered nor expired, to publish again after a new broker
    /// connection (the first one included: fleetd may have stopped between marking a command
    /// sent and publishing it). Byte for byte the document sent before (same times, and
    /// Ed25519 signatures are deterministic), so a kiosk that already ran it refuses it as a
    /// replay, and that refusal does not replace the answer already recorded.
    pub fn resend_commands(&self, signer: &Signer, now: i64) -> Result<Vec<Publish>, FleetError> {
        self.resend(signer, now, |_| true)
    }

    /// The unanswered commands of `devices` (which just reported their state, so are connected
    /// and subscribed) sent at least [`RESEND_AFTER_SECS`] ago, to publish again: a kiosk that
    /// was offline when a command was sent never got it (kiosks keep no session). As for
    /// [`Fleet::resend_commands`], a kiosk that did get it refuses the copy as a replay.
    pub fn resend_commands_to(
        &self,
        devices: &HashSet<String>,
        signer: &Signer,
        now: i64,
    ) -> Result<Vec<Publish>, FleetError> {
        self.resend(signer, now, |row| {
            devices.contains(&row.device_id)
                && row.issued_at.is_some_and(|t| t <= now - RESEND_AFTER_SECS)
        })
    }

    fn resend(
        &self,
        signer: &Signer,
        now: i64,
        keep: impl Fn(&q::CommandRow) -> bool,
    ) -> Result<Vec<Publish>, FleetError> {
        let rows = self.store.read(|c| q::commands_in(c, "sent"))?;
        let mut out = Vec::new();
        for row in rows.iter().filter(|r| keep(r)) {
            let (Some(issued_at), Some(expires_at)) = (row.issued_at, row.expires_at) else {
                continue;
            };
            if expires_at < now {
                continue;
            }
            let (publish, command) = signed_command(row, issued_at, expires_at, signer)?;
            let device = &row.device_id;
            tracing::info!(device, command, command_id = %row.command_id, "unanswered command sent again");
            out.push(publish);
        }
        Ok(out)
    }

    /// Every active device's last published config, to publish (retained) again: a broker
    /// without persistence forgets retained messages when it restarts.
    pub fn republish_all(&self) -> Result<Vec<Publish>, FleetError> {
        let rows = self.store.read(q::published)?;
        Ok(rows.into_iter().map(|p| config_publish(&p)).collect())
    }

    /// Stores what kiosks reported; returns whether any state changed.
    pub fn ingest(&self, batch: Vec<FromKiosk>, now: i64) -> Result<bool, FleetError> {
        self.store.write(|c| {
            let mut states = false;
            for msg in batch {
                match msg {
                    FromKiosk::State { device_id, state: Ok(state) } => {
                        let previous = q::state_of(c, &device_id)?
                            .and_then(|(json, _)| parse_state(&device_id, &json));
                        let merged = merge_state(previous, state);
                        let json = serde_json::to_string(&merged).expect("states serialise");
                        q::upsert_state(c, &device_id, &json, now)?;
                        states = true;
                    }
                    // The signalling router already logged it.
                    FromKiosk::State { state: Err(_), .. } => {}
                    FromKiosk::Result { device_id, result: Ok(r) } => {
                        record(c, &device_id, &r, now)?
                    }
                    FromKiosk::Result { device_id, result: Err(e) } => {
                        let e = crate::signalling::redact(&e);
                        tracing::warn!(device = %device_id, "refused a command result: {e}");
                    }
                }
            }
            Ok(states)
        })
    }
}

/// Signs `row`'s command as issued at `issued_at`, valid until `expires_at`; and its name.
fn signed_command(
    row: &q::CommandRow,
    issued_at: i64,
    expires_at: i64,
    signer: &Signer,
) -> Result<(Publish, &'static str), FleetError> {
    let info = super::commands::command_info(row)?;
    let payload = CommandPayload {
        device_id: row.device_id.clone(),
        command_id: row.command_id.clone(),
        issued_at,
        expires_at,
        command: info.command,
    };
    let text = serde_json::to_string(&payload).expect("commands serialise");
    let signed = SignedCommand { signature: signer.sign(&text), payload: text };
    let publish =
        Publish { topic: topics::cmd(&row.device_id), payload: encode(&signed), retain: false };
    Ok((publish, command_name(&payload.command)))
}

fn record(c: &Connection, device: &str, r: &CommandResult, now: i64) -> Result<(), FleetError> {
    let outcome = format!("{:?}", r.outcome).to_lowercase();
    if r.command_id.is_empty() {
        let entry = Entry::new(&audit::device(device), audit::COMMAND_ANSWERED, device, device);
        audit::append_in(c, entry.refused("unreadable_command").detail(&outcome))?;
        return Ok(());
    }
    let json = serde_json::to_string(r).expect("results serialise");
    let is_final = r.outcome != CommandOutcome::Deferred;
    if q::record_result(c, device, &r.command_id, &json, is_final, now)? {
        let entry = Entry::new(&audit::device(device), audit::COMMAND_ANSWERED, device, device);
        audit::append_in(c, entry.detail(&format!("{} {outcome}", r.command_id)))?;
        return Ok(());
    }
    let command_id = &r.command_id;
    match q::command(c, command_id)? {
        Some(row) if row.device_id == device => {
            let status = row.status;
            tracing::warn!(device, %command_id, status, outcome, "ignored a result for a command no longer waiting for one");
        }
        _ => tracing::warn!(device, %command_id, "result for a command this device was never sent"),
    }
    Ok(())
}

fn config_publish(p: &PublishedRow) -> Publish {
    let signed = SignedConfig { payload: p.payload.clone(), signature: p.signature.clone() };
    Publish { topic: topics::config(&p.device_id), payload: encode(&signed), retain: true }
}

/// What the engine needs of the latest state of each device it has sent the version to.
fn seen_of(c: &Connection, engine: &Rollout) -> rusqlite::Result<HashMap<String, Seen>> {
    let mut seen = HashMap::new();
    for t in engine.targets.iter().filter(|t| t.outcome != Outcome::NotSent) {
        let Some((json, _)) = q::state_of(c, &t.device_id)? else { continue };
        let Some(s) = parse_state(&t.device_id, &json) else { continue };
        let refused = s.config_refusal.map(|r| (r.version, r.reason));
        seen.insert(t.device_id.clone(), Seen::config(engine.version, s.config_version, refused));
    }
    Ok(seen)
}

/// Steps one rollout inside a transaction (re-reading it: an admin may have just changed it).
fn step_one(
    c: &Connection,
    id: i64,
    signer: &Signer,
    now: i64,
) -> Result<Vec<Publish>, FleetError> {
    let Some(row) = q::rollout(c, id)? else { return Ok(Vec::new()) };
    let mut engine = engine_of(&row)?;
    let seen = seen_of(c, &engine)?;
    let effects = engine.step(|d| seen.get(d).cloned(), now);
    let mut out = Vec::new();
    let (group, rollout, version) = (&row.group, row.id, row.version);
    for effect in &effects {
        match effect {
            Effect::Publish { wave, devices } => {
                out.extend(render(c, &row, devices, signer, now)?);
                let n = devices.len();
                let detail =
                    format!("rollout {rollout} version {version} wave {wave} sent to {n} devices");
                audit::append_in(c, audit::system(audit::ROLLOUT_STEP, group, &detail))?;
            }
            Effect::TimedOut { wave, devices } => {
                let detail = format!(
                    "rollout {rollout} version {version} wave {wave}: devices did not acknowledge in time: {}",
                    devices.join(",")
                );
                audit::append_in(c, audit::system(audit::ROLLOUT_STEP, group, &detail))?;
            }
            Effect::Halted { reason } => {
                let detail =
                    format!("rollout {rollout} version {version}: rollout halted: {reason}");
                audit::append_in(c, audit::system(audit::ROLLOUT_STEP, group, &detail))?;
            }
            Effect::Completed { acked, failed } => {
                let detail = format!(
                    "rollout {rollout} version {version}: rollout completed, {acked} acknowledged, {failed} failed"
                );
                audit::append_in(c, audit::system(audit::ROLLOUT_STEP, group, &detail))?;
            }
        }
    }
    let state = serde_json::to_string(&engine).expect("the engine state serialises");
    if state != row.state {
        q::save_rollout(c, row.id, engine.status.as_str(), &state, now)?;
    }
    Ok(out)
}

/// Renders, signs and records version `row.version` for `devices`.
fn render(
    c: &Connection,
    row: &RolloutRow,
    devices: &[String],
    signer: &Signer,
    now: i64,
) -> Result<Vec<Publish>, FleetError> {
    let body = parse_stored("rollout body", &row.body)?;
    let overrides: HashMap<String, String> =
        serde_json::from_str(&row.overrides).map_err(|e| FleetError::Corrupt {
            what: format!("overrides of rollout {}", row.id),
            reason: e.to_string(),
        })?;
    let places: HashMap<String, q::Placed> =
        q::active_devices_in(c, &row.group)?.into_iter().map(|p| (p.id.clone(), p)).collect();
    let mut out = Vec::with_capacity(devices.len());
    for id in devices {
        let Some(place) = places.get(id) else {
            tracing::warn!(device = %id, rollout = row.id, "device is no longer active in the group: not sent");
            continue;
        };
        let over = overrides.get(id).map(|o| parse_stored("override", o)).transpose()?;
        out.extend(render_one(c, row, &body, place, over.as_ref(), signer, now)?);
    }
    Ok(out)
}

/// Renders, signs and records one device's config; `None` (logged) if the layers no longer
/// make a valid config (checked when the rollout started; only a changed name gets here).
fn render_one(
    c: &Connection,
    row: &RolloutRow,
    body: &Map<String, Value>,
    place: &q::Placed,
    over: Option<&Map<String, Value>>,
    signer: &Signer,
    now: i64,
) -> Result<Option<Publish>, FleetError> {
    let id = &place.id;
    let what = format!("device {id}");
    let layer = Place { clinic: &place.clinic, room: &place.room };
    let body = match layers::effective(&what, &layer, body, over) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(rollout = row.id, "{e}: not sent");
            return Ok(None);
        }
    };
    let payload = layers::render(id, &row.group, row.version, now, body);
    let published = PublishedRow {
        device_id: id.clone(),
        group: row.group.clone(),
        version: row.version,
        rollout_id: row.id,
        signature: signer.sign(&payload),
        payload,
        published_at: now,
    };
    q::upsert_published(c, &published)?;
    Ok(Some(config_publish(&published)))
}

/// Sends devices that joined their group after its last completed rollout that rollout's
/// config (with their own override, if any), so a new kiosk need not wait for the next one.
fn catch_up(c: &Connection, signer: &Signer, now: i64) -> Result<Vec<Publish>, FleetError> {
    let mut out = Vec::new();
    for (place, rollout) in q::late_joiners(c)? {
        let Some(row) = q::rollout(c, rollout)? else { continue };
        let body = parse_stored("rollout body", &row.body)?;
        let over = q::override_body(c, &place.id)?
            .map(|o| parse_stored("override", &o.body))
            .transpose()?;
        if let Some(p) = render_one(c, &row, &body, &place, over.as_ref(), signer, now)? {
            let (device, group, version) = (&place.id, &row.group, row.version);
            let detail = format!(
                "rollout {rollout} version {version} of {group}: config sent to a device that joined after the group's rollout"
            );
            audit::append_in(c, audit::system(audit::ROLLOUT_STEP, device, &detail))?;
            out.push(p);
        }
    }
    Ok(out)
}

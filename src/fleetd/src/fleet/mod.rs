//! The `fleet/` folder: config layers ([`layers`], pure), the rollout engine ([`rollout`],
//! pure), commands, views, the step between MQTT and the store, and the [`driver`] task that
//! signs and publishes. [`Fleet`] itself is fleet administration: group config bodies and per-device overrides (validated before they
//! are stored), rollouts (start, pause, resume, abort, roll back) and commands. The CLI and the
//! admin API both call it; it only writes the database and bumps the generation, and the
//! running server ([`crate::fleet::driver`]) signs and publishes. One audit line per admin action:
//! who, what, which group or device. It never logs config contents (they may hold TURN
//! credentials) or command results.

mod commands;
pub mod driver;
pub mod layers;
pub mod rollout;
pub mod step;
pub mod updates;
mod view;

pub use commands::command_name;

use std::collections::HashMap;

use rusqlite::Connection;
use serde_json::{Map, Value};
use telekiosk_protocol::DecodeError;
use telekiosk_protocol::api::{DeviceConfig, GroupConfig, NewRollout, RolloutInfo};
use telekiosk_protocol::command::CommandResult;
use telekiosk_protocol::config::ConfigBody;
use telekiosk_protocol::device::DeviceState;

use self::layers::{ConfigError, Place};
use crate::fleet::rollout::{Control, Plan, Rollout, RolloutError};
use crate::store::fleet::{self as q, RolloutRow};
use crate::store::{DeviceRecord, Store, StoreError, bump, devices};

// The port between the MQTT client and the driver: what the client hands the fleet side, and
// what the fleet side asks the client to publish.

/// One MQTT publish for fleetd's client to make (QoS 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What a kiosk sent that the fleet side keeps.
#[derive(Debug)]
pub enum FromKiosk {
    /// Its retained state (or its last will).
    State { device_id: String, state: Result<DeviceState, DecodeError> },
    /// A command result.
    Result { device_id: String, result: Result<CommandResult, DecodeError> },
}

/// Why an admin operation was refused. Messages are shown to the admin as they are.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A config document does not make a valid config.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A rollout could not be made or changed.
    #[error("{0}")]
    Rollout(#[from] RolloutError),
    /// A request broke a field limit.
    #[error("{0}")]
    Invalid(#[from] DecodeError),
    /// The rollout cannot be paused, resumed or aborted in its state.
    #[error("rollout {id}: {source}")]
    Change { id: i64, source: RolloutError },
    /// No rollout has that id.
    #[error("there is no rollout {0} (see `fleetd config status`)")]
    NoSuchRollout(i64),
    /// No command has that id.
    #[error("there is no command {0}")]
    NoSuchCommand(String),
    /// Rolling out a group that has no body yet.
    #[error("group {0:?} has no config yet: set one with `fleetd config set --group … --file …`")]
    NoBody(String),
    /// Another rollout of the group is still running or paused.
    #[error(
        "rollout {id} of group {group:?} is still {status}: wait for it to end, or abort it \
         (`fleetd config abort {id}`)"
    )]
    Busy { id: i64, group: String, status: String },
    /// Rolling back a group without an earlier completed rollout.
    #[error("group {0:?} has no earlier completed rollout to roll back to")]
    NoPrevious(String),
    /// A command for a device that is not active.
    #[error("device {id} is {status}: only an active device takes commands")]
    NotActive { id: String, status: String },
    /// The database failed, or the device does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something stored cannot be read back (a bug or a hand-edited database).
    #[error("the stored {what} cannot be read: {reason}")]
    Corrupt { what: String, reason: String },
    /// The system random source failed.
    #[error("no randomness for a command id: {0}")]
    Random(getrandom::Error),
    /// An OS update operation was refused.
    #[error("{0}")]
    Update(#[from] updates::UpdateError),
}

impl From<rusqlite::Error> for FleetError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sql(e))
    }
}

/// Fleet administration over fleetd's store.
#[derive(Debug)]
pub struct Fleet {
    store: Store,
}

/// What a new rollout starts from: the request's options over the defaults.
pub fn plan_of(req: &NewRollout) -> Plan {
    let d = Plan::default();
    Plan {
        canary: req.canary.clone(),
        first_wave_percent: req.first_wave_percent.unwrap_or(d.first_wave_percent),
        failure_threshold_percent: req
            .failure_threshold_percent
            .unwrap_or(d.failure_threshold_percent),
        wave_timeout_secs: req.wave_timeout_secs.unwrap_or(d.wave_timeout_secs),
    }
}

impl Fleet {
    /// Fleet administration using `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The device with this id.
    fn device(&self, id: &str) -> Result<DeviceRecord, StoreError> {
        self.store.read(|c| devices::device(c, id))?.ok_or_else(devices::no_such_device(id))
    }

    /// The store, for the server's driver.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checks and stores a group's body. Refused if it, or any of the group's devices with its
    /// override, is not a valid config.
    pub fn set_group_config(
        &self,
        group: &str,
        body: Value,
        by: &str,
        now: i64,
    ) -> Result<GroupConfig, FleetError> {
        check_group_name(group)?;
        let body = layers::into_object("the group config", body)?;
        layers::check_group_body(group, &body)?;
        let text = Value::Object(body.clone()).to_string();
        self.store.write(|c| {
            check_devices(c, group, &body, &q::overrides_in_group(c, group)?)?;
            q::set_group_body(c, group, &text, by, now)?;
            bump(c)?;
            Ok::<_, FleetError>(())
        })?;
        tracing::info!(by, group, "group config set");
        self.group_config(group)
    }

    /// Checks and stores a device's override (`{}` removes it).
    pub fn set_device_override(
        &self,
        id: &str,
        body: Value,
        by: &str,
        now: i64,
    ) -> Result<DeviceConfig, FleetError> {
        let device = self.device(id)?;
        let body = layers::into_object("the device override", body)?;
        self.store.write(|c| {
            let group_body = stored_group_body(c, &device.clinic)?.unwrap_or_default();
            let place = Place { clinic: &device.clinic, room: &device.room };
            let what = format!("device {id} with this override");
            layers::effective(&what, &place, &group_body, Some(&body))?;
            let text = (!body.is_empty()).then(|| Value::Object(body.clone()).to_string());
            q::set_override(c, id, text.as_deref(), by, now)?;
            bump(c)?;
            Ok::<_, FleetError>(())
        })?;
        let what = if body.is_empty() {
            "device config override removed"
        } else {
            "device config override set"
        };
        tracing::info!(by, device = id, group = %device.clinic, "{what}");
        self.device_config(id)
    }

    /// Starts a rollout of the group's current body as a new version. The running server sends
    /// the first wave within a second.
    pub fn start_rollout(
        &self,
        req: &NewRollout,
        by: &str,
        now: i64,
    ) -> Result<RolloutInfo, FleetError> {
        self.roll_out(req, |c, group, plan| {
            refuse_if_live(c, group)?;
            let body = q::group_body(c, group)?.ok_or_else(|| FleetError::NoBody(group.into()))?;
            new_rollout(c, group, &body.body, "rollout", plan, by, now)
        })
    }

    /// Rolls the group back: its latest rollout (if still live) is aborted, the body of the
    /// completed rollout before it becomes the group's body again and is rolled out as a new,
    /// higher version.
    pub fn rollback(
        &self,
        req: &NewRollout,
        by: &str,
        now: i64,
    ) -> Result<RolloutInfo, FleetError> {
        self.roll_out(req, |c, group, plan| {
            let latest = q::rollouts(c, Some(group), 1)?.pop();
            let latest = latest.ok_or_else(|| FleetError::NoPrevious(group.into()))?;
            let previous = q::completed_before(c, group, latest.id)?
                .ok_or_else(|| FleetError::NoPrevious(group.into()))?;
            if matches!(latest.status.as_str(), "running" | "paused") {
                change_rollout(c, &latest, Control::Abort, now)?;
                tracing::info!(
                    by,
                    group,
                    rollout = latest.id,
                    version = latest.version,
                    "rollout aborted for a rollback"
                );
            }
            q::set_group_body(c, group, &previous.body, by, now)?;
            tracing::info!(
                by,
                group,
                to_version = previous.version,
                "group config set back for a rollback"
            );
            new_rollout(c, group, &previous.body, "rollback", plan, by, now)
        })
    }

    /// What starting a rollout and rolling back share: the request checked, then `start` (which
    /// returns the new rollout's id) in one transaction with the group and the plan.
    fn roll_out(
        &self,
        req: &NewRollout,
        start: impl FnOnce(&Connection, &str, Plan) -> Result<i64, FleetError>,
    ) -> Result<RolloutInfo, FleetError> {
        telekiosk_protocol::Validate::validate(req)?;
        let plan = plan_of(req);
        let id = self.store.write(|c| start(c, &req.group, plan))?;
        self.rollout(id)
    }

    /// Pauses, resumes or aborts a rollout.
    pub fn change_rollout(
        &self,
        id: i64,
        action: Control,
        by: &str,
        now: i64,
    ) -> Result<RolloutInfo, FleetError> {
        let row = self.store.write(|c| {
            let row = q::rollout(c, id)?.ok_or(FleetError::NoSuchRollout(id))?;
            change_rollout(c, &row, action, now)?;
            bump(c)?;
            Ok::<_, FleetError>(row)
        })?;
        let what = match action {
            Control::Pause => "rollout paused",
            Control::Resume => "rollout resumed",
            Control::Abort => "rollout aborted",
            Control::OverrideHalt => "rollout resumed past its halt by an admin",
        };
        tracing::info!(by, group = %row.group, rollout = id, version = row.version, "{what}");
        self.rollout(id)
    }
}

/// A group name is a clinic's display name: 1–128 bytes, no control characters.
fn check_group_name(group: &str) -> Result<(), FleetError> {
    let probe = telekiosk_protocol::api::NewRollout { group: group.into(), ..Default::default() };
    telekiosk_protocol::Validate::validate(&probe)?;
    if group.trim().is_empty() {
        let reason = "must not be empty".into();
        return Err(DecodeError::Invalid { field: "group", reason }.into());
    }
    Ok(())
}

/// The group's body as an object, if one was set.
fn stored_group_body(
    c: &Connection,
    group: &str,
) -> Result<Option<Map<String, Value>>, FleetError> {
    q::group_body(c, group)?.map(|a| parse_stored("group body", &a.body)).transpose()
}

fn parse_stored(what: &str, text: &str) -> Result<Map<String, Value>, FleetError> {
    layers::parse_document(what, text)
        .map_err(|e| FleetError::Corrupt { what: what.into(), reason: e.to_string() })
}

/// Checks that every active device of the group gets a valid config from `body` and its
/// override; returns each device's config.
fn check_devices(
    c: &Connection,
    group: &str,
    body: &Map<String, Value>,
    overrides: &HashMap<String, String>,
) -> Result<Vec<(String, ConfigBody)>, FleetError> {
    let mut bodies = Vec::new();
    for d in q::active_devices_in(c, group)? {
        let over = overrides.get(&d.id).map(|o| parse_stored("override", o)).transpose()?;
        let place = Place { clinic: &d.clinic, room: &d.room };
        let what = format!("device {} (group body with its override)", d.id);
        bodies.push((d.id.clone(), layers::effective(&what, &place, body, over.as_ref())?));
    }
    Ok(bodies)
}

fn refuse_if_live(c: &Connection, group: &str) -> Result<(), FleetError> {
    match q::rollouts(c, Some(group), 1)?.pop() {
        Some(r) if matches!(r.status.as_str(), "running" | "paused") => {
            Err(FleetError::Busy { id: r.id, group: group.into(), status: r.status })
        }
        _ => Ok(()),
    }
}

/// Checks the group's devices, takes a version, and stores a running rollout of `body`.
fn new_rollout(
    c: &Connection,
    group: &str,
    body: &str,
    kind: &str,
    plan: Plan,
    by: &str,
    now: i64,
) -> Result<i64, FleetError> {
    let parsed = parse_stored("group body", body)?;
    let overrides = q::overrides_in_group(c, group)?;
    let devices = check_devices(c, group, &parsed, &overrides)?;
    let ids = devices.into_iter().map(|(id, _)| id).collect();
    let version = q::next_config_version(c)?;
    let engine = Rollout::new(group, version, ids, plan)?;
    let row = RolloutRow {
        id: 0,
        group: group.into(),
        version,
        kind: kind.into(),
        body: body.into(),
        overrides: serde_json::to_string(&overrides).expect("a map of strings serialises"),
        status: engine.status.as_str().into(),
        state: serde_json::to_string(&engine).expect("the engine state serialises"),
        created_at: now,
        created_by: by.into(),
        updated_at: now,
    };
    let id = q::insert_rollout(c, &row)?;
    bump(c)?;
    let devices = engine.targets.len();
    tracing::info!(by, group, rollout = id, version, kind, devices, "rollout started");
    Ok(id)
}

/// The engine state of a stored rollout.
fn engine_of(row: &RolloutRow) -> Result<Rollout, FleetError> {
    engine_from(&format!("rollout {}", row.id), &row.state)
}

/// The engine state stored for `what` (a config or update rollout) as JSON.
fn engine_from(what: &str, state: &str) -> Result<Rollout, FleetError> {
    serde_json::from_str(state).map_err(|e| FleetError::Corrupt {
        what: format!("state of {what}"),
        reason: e.to_string(),
    })
}

fn change_rollout(
    c: &Connection,
    row: &RolloutRow,
    action: Control,
    now: i64,
) -> Result<(), FleetError> {
    let mut engine = engine_of(row)?;
    let change = |source| FleetError::Change { id: row.id, source };
    if action == Control::OverrideHalt
        && let Some(latest) = q::rollouts(c, Some(&row.group), 1)?.pop()
        && latest.id != row.id
    {
        return Err(change(RolloutError::Superseded { newer: latest.id }));
    }
    engine.admin(action, now).map_err(change)?;
    let state = serde_json::to_string(&engine).expect("the engine state serialises");
    q::save_rollout(c, row.id, engine.status.as_str(), &state, now)?;
    Ok(())
}

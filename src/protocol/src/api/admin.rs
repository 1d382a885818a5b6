//! Bodies of the fleet administration API (`/api/admin/…`) and of
//! `fleetd … --json`: group config, per-device overrides, rollouts, device state and commands.
//! Admin-only; PHI-free like the rest (ids, places, versions, times, health).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DeviceInfo;
use crate::command::{Command, CommandResult};
use crate::config::ConfigBody;
use crate::decode::{DecodeError, Validate, ident, invalid, text};
use crate::device::{ConfigRefusal, DeviceState};

/// `PUT /api/admin/config/groups/{group}` and `…/devices/{id}`: a config document to store.
/// For a group, the body (fields left out take their defaults; `clinic_name` and `room_name`
/// default to each device's enrolled place); for a device, a partial object merged over its
/// group's body (RFC 7386: objects merge, `null` removes a field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDraft {
    pub body: Value,
}

impl Validate for ConfigDraft {
    fn validate(&self) -> Result<(), DecodeError> {
        if !self.body.is_object() {
            return Err(invalid("body", "must be a JSON object {\"field\": value, …}".into()));
        }
        Ok(())
    }
}

/// A group's (clinic's) config as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    pub group: String,
    /// The body as authored (`{}` when none was set yet).
    pub body: Value,
    /// Whether an admin has set a body for this group.
    pub is_set: bool,
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
    /// Active devices in the group.
    pub devices: u32,
    /// The schema's defaults, for an editor to start from.
    pub defaults: ConfigBody,
}

/// The config version a device was last sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedConfig {
    pub version: u64,
    pub rollout_id: i64,
    /// Unix seconds.
    pub published_at: i64,
}

/// One device's config: its override, what the group body plus the override make, what was
/// sent and what it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    pub device_id: String,
    pub group: String,
    /// The device's override (partial object), if any.
    #[serde(rename = "override")]
    pub override_body: Option<Value>,
    /// Group body + override, checked; `None` with `error` set when they do not combine.
    pub effective: Option<ConfigBody>,
    pub error: Option<String>,
    pub published: Option<PublishedConfig>,
    /// The version the device reports in force.
    pub applied_version: Option<u64>,
    pub refusal: Option<ConfigRefusal>,
}

/// `POST /api/admin/rollouts`: roll the group's current body out as a new version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRollout {
    pub group: String,
    /// Devices of the first wave; when empty, the first wave is a percentage of the group.
    #[serde(default)]
    pub canary: Vec<String>,
    /// 1–100, default 10.
    #[serde(default)]
    pub first_wave_percent: Option<u8>,
    /// 0–100, default 20: halt once failures pass this share of the devices targeted so far.
    #[serde(default)]
    pub failure_threshold_percent: Option<u8>,
    /// 10 s – 1 day, default 900: a device of a wave that has not acknowledged by then failed.
    #[serde(default)]
    pub wave_timeout_secs: Option<u64>,
}

impl Validate for NewRollout {
    fn validate(&self) -> Result<(), DecodeError> {
        text("group", &self.group, crate::visit::MAX_NAME_BYTES)?;
        check_plan(&self.canary, self.first_wave_percent, self.failure_threshold_percent)?;
        if let Some(t) = self.wave_timeout_secs
            && !(10..=86_400).contains(&t)
        {
            return Err(invalid("wave_timeout_secs", format!("{t} is outside 10–86400")));
        }
        Ok(())
    }
}

/// The wave plan a config or update rollout shares: at most 1000 canaries, each an identifier;
/// a first wave of 1–100 %; a failure threshold of 0–100 %.
pub(crate) fn check_plan(
    canary: &[String],
    first_wave_percent: Option<u8>,
    failure_threshold_percent: Option<u8>,
) -> Result<(), DecodeError> {
    if canary.len() > 1000 {
        return Err(invalid("canary", "lists more than 1000 devices".into()));
    }
    for id in canary {
        ident("canary", id)?;
    }
    if let Some(p) = first_wave_percent
        && !(1..=100).contains(&p)
    {
        return Err(invalid("first_wave_percent", format!("{p} is outside 1–100")));
    }
    if let Some(p) = failure_threshold_percent
        && p > 100
    {
        return Err(invalid("failure_threshold_percent", format!("{p} is outside 0–100")));
    }
    Ok(())
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Sending waves as devices acknowledge.
    Running,
    /// An admin paused it: no new wave starts, acknowledgements are still counted.
    Paused,
    /// Every device was sent the version and answered (or timed out, under the threshold).
    Completed,
    /// Failures passed the threshold: fleetd stopped it; no further wave is sent.
    Halted,
    /// An admin aborted it (or a rollback replaced it).
    Aborted,
}

impl RolloutStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Halted => "halted",
            Self::Aborted => "aborted",
        }
    }
}

/// Counts for one wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveInfo {
    /// 1-based.
    pub wave: u32,
    pub devices: u32,
    pub acked: u32,
    pub pending: u32,
    /// Refused the version, or did not acknowledge within the wave's time-out.
    pub failed: u32,
    /// Not sent yet (the wave has not started).
    pub not_sent: u32,
}

/// How one device of a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutDevice {
    pub device_id: String,
    pub wave: u32,
    /// `not_sent`, `pending`, `acked`, `refused` or `timed_out`.
    pub outcome: String,
    /// The kiosk's reason for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a rollout stands, a config rollout's ([`RolloutInfo`]) or an OS update's
/// ([`super::UpdateInfo`]): who started it and when, its plan, its waves and its devices.
/// Flattened into both, so on the wire these are plain fields of the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutProgress {
    pub status: RolloutStatus,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub canary: Vec<String>,
    pub first_wave_percent: u8,
    pub failure_threshold_percent: u8,
    pub wave_timeout_secs: u64,
    /// The wave being sent (0 before the first).
    pub current_wave: u32,
    pub waves: Vec<WaveInfo>,
    pub targeted: u32,
    pub failed: u32,
    /// Why it halted, in plain words.
    pub halt_reason: Option<String>,
    /// Per device (for an OS update, `acked` = runs the version; `refused` = reported it failed,
    /// with the kiosk's reason); only when one rollout is asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<RolloutDevice>,
}

/// A rollout as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutInfo {
    pub id: i64,
    pub group: String,
    pub version: u64,
    /// `rollout`, or `rollback` (the previous body as a new version).
    pub kind: String,
    #[serde(flatten)]
    pub progress: RolloutProgress,
}

/// A device with its latest reported state (`GET /api/admin/fleet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetDevice {
    #[serde(flatten)]
    pub device: DeviceInfo,
    /// The latest state it reported (an offline will keeps the last known versions).
    pub state: Option<DeviceState>,
    /// When fleetd last heard from it (Unix seconds).
    pub last_seen: Option<i64>,
    /// The config version it was last sent.
    pub published_version: Option<u64>,
}

/// `POST /api/admin/devices/{id}/commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    pub command: Command,
}

impl Validate for NewCommand {
    fn validate(&self) -> Result<(), DecodeError> {
        self.command.check()
    }
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Waiting for the running fleetd to sign and send it.
    Queued,
    /// Sent; no answer yet.
    Sent,
    /// The kiosk answered (see `result`).
    Answered,
    /// Never sent, or not answered, before it expired.
    Expired,
}

impl CommandStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Answered => "answered",
            Self::Expired => "expired",
        }
    }
}

/// A command and its latest result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub command_id: String,
    pub device_id: String,
    pub command: Command,
    pub status: CommandStatus,
    pub created_at: i64,
    pub created_by: String,
    /// When it was signed and sent.
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub result: Option<CommandResult>,
    pub result_at: Option<i64>,
}

/// One device in full (`GET /api/admin/devices/{id}`, `fleetd device show --json`): its registry
/// record ([`DeviceInfo`], flattened), latest state, config and commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub fleet: FleetDevice,
    pub config: DeviceConfig,
    /// Latest first.
    pub commands: Vec<CommandInfo>,
}

/// A group (clinic) at a glance (`GET /api/admin/groups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    pub devices: u32,
    pub online: u32,
    pub has_config: bool,
    pub latest_rollout: Option<RolloutInfo>,
}

/// `fleetd config status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub rollouts: Vec<RolloutInfo>,
    pub devices: Vec<FleetDevice>,
}

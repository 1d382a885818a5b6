//! Device state a kiosk publishes, retained, on `telekiosk/v1/dev/{id}/state`.
//! PHI-free by construction: no names of people, no visit content.

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, text};
use crate::update::OsState;
use crate::visit::MAX_NAME_BYTES;

/// Whether the kiosk is reachable; the broker publishes `Offline` as the kiosk's last will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Offline,
}

/// Health of one part of the kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    Ok,
    /// Not found (unplugged, not fitted).
    Missing,
    /// Present but failing.
    Failed,
    #[default]
    Unknown,
}

/// Health at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub camera: PartStatus,
    pub microphone: PartStatus,
    pub speaker: PartStatus,
    pub tpm: PartStatus,
}

/// Network quality of the last call, at its worst (no addresses): which clinics have poor links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkQuality {
    pub rtt_ms: u32,
    /// Packet loss in tenths of a percent (0–1000).
    pub loss_permille: u32,
    /// The lowest estimate of the link the kiosk's rate control made, kbit/s (0: unknown).
    #[serde(default)]
    pub min_estimate_kbps: u32,
    /// The worst the call's indicator showed: `good`, `fair` or `poor` (empty: unknown).
    #[serde(default)]
    pub worst_level: String,
    /// Seconds the video was paused for a weak link.
    #[serde(default)]
    pub video_paused_secs: u32,
}

/// The last visit: when and how long only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastVisit {
    /// Unix seconds.
    pub ended_at: i64,
    pub duration_secs: u32,
}

/// The last config the kiosk refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRefusal {
    /// The refused document's version (0 when it could not be read).
    pub version: u64,
    pub reason: String,
}

/// The kiosk's retained state message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    pub presence: Presence,
    /// Software version of the kiosk; empty in the last will.
    #[serde(default)]
    pub software: String,
    /// Clinic display name the kiosk shows.
    #[serde(default)]
    pub clinic: String,
    /// Room display name the kiosk shows.
    #[serde(default)]
    pub room: String,
    /// Version of the config in force (0: none yet, built-in defaults).
    #[serde(default)]
    pub config_version: u64,
    /// The latest refused config, if the latest document received was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_refusal: Option<ConfigRefusal>,
    #[serde(default)]
    pub uptime_secs: u64,
    #[serde(default)]
    pub health: Health,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkQuality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_visit: Option<LastVisit>,
    /// The operating system: running version and slot, the update in progress, the last
    /// failed one. Absent when the kiosk does not run from an appliance image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Box<OsState>>,
}

impl DeviceState {
    /// The last-will message the broker publishes when the kiosk drops off.
    pub fn offline() -> Self {
        Self {
            presence: Presence::Offline,
            software: String::new(),
            clinic: String::new(),
            room: String::new(),
            config_version: 0,
            config_refusal: None,
            uptime_secs: 0,
            health: Health::default(),
            network: None,
            last_visit: None,
            os: None,
        }
    }
}

impl Validate for DeviceState {
    fn validate(&self) -> Result<(), DecodeError> {
        text("software", &self.software, 64)?;
        text("clinic", &self.clinic, MAX_NAME_BYTES)?;
        text("room", &self.room, MAX_NAME_BYTES)?;
        if let Some(r) = &self.config_refusal {
            text("config_refusal.reason", &r.reason, 512)?;
        }
        if let Some(os) = &self.os {
            os.validate()?;
        }
        Ok(())
    }
}

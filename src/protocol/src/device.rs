//! Device state a kiosk publishes, retained, on `telekiosk/v1/dev/{id}/state`.
//! PHI-free by construction: no names of people, no visit content.

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, text};
use crate::visit::MAX_NAME_BYTES;

/// Whether the kiosk is reachable; the broker publishes `Offline` as the kiosk's last will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Offline,
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
}

impl DeviceState {
    /// The last-will message the broker publishes when the kiosk drops off.
    pub fn offline() -> Self {
        Self {
            presence: Presence::Offline,
            software: String::new(),
            clinic: String::new(),
            room: String::new(),
        }
    }
}

impl Validate for DeviceState {
    fn validate(&self) -> Result<(), DecodeError> {
        text("software", &self.software, 64)?;
        text("clinic", &self.clinic, MAX_NAME_BYTES)?;
        text("room", &self.room, MAX_NAME_BYTES)
    }
}

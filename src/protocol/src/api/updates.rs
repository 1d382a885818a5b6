//! The admin API of OS updates: bundles fleetd keeps (added with `fleetd update add`) and
//! update rollouts, which go through the same waves and halt threshold as config rollouts.

use serde::{Deserialize, Serialize};

use super::RolloutProgress;
use crate::decode::{DecodeError, Validate, invalid, text};
use crate::update::os_version;

/// A bundle fleetd can hand out (`GET /api/admin/bundles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// The OS image version it installs.
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub added_at: i64,
    pub added_by: String,
}

/// `POST /api/admin/updates`: roll OS version `version` out to a group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    pub group: String,
    /// A bundle's version (see `GET /api/admin/bundles`).
    pub version: String,
    #[serde(default)]
    pub canary: Vec<String>,
    /// 1–100, default 10.
    #[serde(default)]
    pub first_wave_percent: Option<u8>,
    /// 0–100, default 20.
    #[serde(default)]
    pub failure_threshold_percent: Option<u8>,
    /// 10 min – 7 days, default 6 h: download, the end of visits and of opening hours, the
    /// reboot and the health check all fit in it.
    #[serde(default)]
    pub wave_timeout_secs: Option<u64>,
    /// Reboot inside opening hours too (never during a visit). Default: outside them only.
    #[serde(default)]
    pub reboot_in_opening_hours: bool,
    /// 60–3600, default 600.
    #[serde(default)]
    pub health_timeout_secs: Option<u32>,
}

/// Default of [`NewUpdate::wave_timeout_secs`].
pub const UPDATE_WAVE_TIMEOUT_DEFAULT_SECS: u64 = 6 * 3600;

impl Validate for NewUpdate {
    fn validate(&self) -> Result<(), DecodeError> {
        text("group", &self.group, crate::visit::MAX_NAME_BYTES)?;
        os_version("version", &self.version)?;
        super::admin::check_plan(
            &self.canary,
            self.first_wave_percent,
            self.failure_threshold_percent,
        )?;
        if let Some(t) = self.wave_timeout_secs
            && !(600..=7 * 86_400).contains(&t)
        {
            return Err(invalid("wave_timeout_secs", format!("{t} is outside 600–604800")));
        }
        if let Some(t) = self.health_timeout_secs
            && !(60..=3600).contains(&t)
        {
            return Err(invalid("health_timeout_secs", format!("{t} is outside 60–3600")));
        }
        Ok(())
    }
}

/// An update rollout as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateInfo {
    pub id: i64,
    pub group: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub reboot_in_opening_hours: bool,
    pub health_timeout_secs: u32,
    #[serde(flatten)]
    pub progress: RolloutProgress,
}

//! OS updates: the order fleetd signs into an `install_update` command, and what a kiosk says
//! about its operating system in its device state (running version and slot, the update in
//! progress, the last one that failed).
//!
//! The bundle itself is a signed RAUC bundle the kiosk fetches over mutual TLS from
//! `GET /api/device/bundles/{sha256}` (with range requests, so a dropped connection resumes).
//! Its signature is checked on the kiosk against the image's keyring, which is the fleet
//! operator's bundle CA, not fleetd's config key: fleetd can say "install this", but only
//! the operator's key can make something installable.

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, invalid, text};

/// Largest bundle fleetd hands out: 4 GiB.
pub const MAX_BUNDLE_BYTES: u64 = 4 << 30;

/// The path a kiosk fetches a bundle from, on fleetd's HTTPS port.
pub fn bundle_path(sha256: &str) -> String {
    format!("/api/device/bundles/{sha256}")
}

/// What to install, from an `install_update` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrder {
    /// The OS image version the bundle holds (`IMAGE_VERSION` of its os-release).
    pub version: String,
    /// Lower-case hex SHA-256 of the bundle file; also its name on fleetd.
    pub sha256: String,
    /// The bundle's size in bytes.
    pub size: u64,
    /// Whether the kiosk may reboot into the new version inside opening hours (when no visit
    /// is in progress). By default it waits until the clinic is closed.
    #[serde(default)]
    pub reboot_in_opening_hours: bool,
    /// How long the new version has, after its first boot, to report healthy (enrolled, fleet
    /// connected, camera, microphone and TPM working) before it is marked bad and the kiosk
    /// goes back to the version it came from: 60–3600 s.
    pub health_timeout_secs: u32,
}

/// Default and limits of [`UpdateOrder::health_timeout_secs`].
pub const HEALTH_TIMEOUT_DEFAULT_SECS: u32 = 600;
const HEALTH_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 60..=3600;

impl Validate for UpdateOrder {
    fn validate(&self) -> Result<(), DecodeError> {
        os_version("version", &self.version)?;
        sha256_hex("sha256", &self.sha256)?;
        if self.size == 0 || self.size > MAX_BUNDLE_BYTES {
            return Err(invalid("size", format!("{} is outside 1 B – 4 GiB", self.size)));
        }
        if !HEALTH_TIMEOUT_RANGE.contains(&self.health_timeout_secs) {
            let t = self.health_timeout_secs;
            return Err(invalid("health_timeout_secs", format!("{t} is outside 60–3600")));
        }
        Ok(())
    }
}

/// An OS image version: 1–64 characters of `A-Z a-z 0-9 . _ + ~ -`, starting with a letter or
/// digit (`1.4.0`, `2026.12.01+rc1`).
pub fn os_version(field: &'static str, v: &str) -> Result<(), DecodeError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '-');
    let first_ok = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if v.len() > 64 || !first_ok || !v.chars().all(ok) {
        return Err(invalid(
            field,
            "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '+', '~' or '-', \
             starting with a letter or digit"
                .into(),
        ));
    }
    Ok(())
}

/// 64 lower-case hexadecimal digits.
pub fn sha256_hex(field: &'static str, v: &str) -> Result<(), DecodeError> {
    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(invalid(field, "must be 64 lower-case hexadecimal digits".into()));
    }
    Ok(())
}

/// Where an update stands on the kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdatePhase {
    /// Fetching the bundle (`done_bytes` of `total_bytes`).
    Downloading,
    /// Fetched and checked; it installs when no visit is in progress.
    WaitingForVisit,
    /// RAUC is writing the other slot.
    Installing,
    /// Installed; the kiosk reboots into it when no visit is in progress (and, unless the
    /// order allows otherwise, outside opening hours).
    WaitingToReboot,
    /// The reboot was asked for.
    Rebooting,
}

impl UpdatePhase {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downloading => "downloading",
            Self::WaitingForVisit => "waiting_for_visit",
            Self::Installing => "installing",
            Self::WaitingToReboot => "waiting_to_reboot",
            Self::Rebooting => "rebooting",
        }
    }
}

/// The update in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProgress {
    pub version: String,
    pub phase: UpdatePhase,
    #[serde(default)]
    pub done_bytes: u64,
    #[serde(default)]
    pub total_bytes: u64,
}

/// An update that did not take, and why, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedUpdate {
    pub version: String,
    pub reason: String,
}

/// The kiosk's operating system, in its device state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OsState {
    /// The running image's version; empty when the kiosk does not run from an appliance image.
    pub version: String,
    /// The slot it booted from (`A` or `B`); empty without A/B slots.
    pub slot: String,
    /// This boot is a trial: the slot is not marked good yet.
    pub trial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateProgress>,
    /// The latest update that failed (download, signature, install, or the new version did
    /// not become healthy and the kiosk went back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedUpdate>,
}

impl Validate for OsState {
    fn validate(&self) -> Result<(), DecodeError> {
        text("os.version", &self.version, 64)?;
        text("os.slot", &self.slot, 8)?;
        if let Some(u) = &self.update {
            text("os.update.version", &u.version, 64)?;
        }
        if let Some(f) = &self.failed {
            text("os.failed.version", &f.version, 64)?;
            text("os.failed.reason", &f.reason, 512)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    fn order() -> UpdateOrder {
        UpdateOrder {
            version: "2026.12.1+rc1".into(),
            sha256: "ab".repeat(32),
            size: 300 << 20,
            reboot_in_opening_hours: false,
            health_timeout_secs: 600,
        }
    }

    #[test]
    fn an_install_command_reads_back_with_its_order() {
        let cmd = Command::InstallUpdate(order());
        let json = serde_json::to_string(&cmd).unwrap();
        assert!(
            json.starts_with(r#"{"type":"install_update","version":"2026.12.1+rc1""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
        assert_eq!(cmd.check(), Ok(()));
    }

    #[test]
    fn out_of_range_orders_are_refused_by_field() {
        let field = |o: UpdateOrder| match o.validate() {
            Err(DecodeError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(UpdateOrder { version: "".into(), ..order() }), "version");
        assert_eq!(field(UpdateOrder { version: "1.0 beta".into(), ..order() }), "version");
        assert_eq!(field(UpdateOrder { version: "-1".into(), ..order() }), "version");
        assert_eq!(field(UpdateOrder { sha256: "AB".repeat(32), ..order() }), "sha256");
        assert_eq!(field(UpdateOrder { sha256: "ab".into(), ..order() }), "sha256");
        assert_eq!(field(UpdateOrder { size: 0, ..order() }), "size");
        assert_eq!(field(UpdateOrder { size: MAX_BUNDLE_BYTES + 1, ..order() }), "size");
        assert_eq!(
            field(UpdateOrder { health_timeout_secs: 59, ..order() }),
            "health_timeout_secs"
        );
        assert_eq!(
            field(UpdateOrder { health_timeout_secs: 3601, ..order() }),
            "health_timeout_secs"
        );
        let cmd = Command::InstallUpdate(UpdateOrder { size: 0, ..order() });
        assert!(cmd.check().is_err());
    }

    #[test]
    fn an_unknown_field_in_an_order_is_refused() {
        let json = r#"{"type":"install_update","version":"1","sha256":"x","size":1,"health_timeout_secs":60,"url":"http://elsewhere"}"#;
        let err = serde_json::from_str::<Command>(json).unwrap_err().to_string();
        assert!(err.contains("url"), "{err}");
    }
}

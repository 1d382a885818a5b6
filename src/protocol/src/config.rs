//! Fleet configuration, schema v1: what an admin sets for a kiosk, signed by fleetd (Ed25519,
//! key pinned by the kiosk at enrolment) and published retained on
//! `telekiosk/v1/dev/{id}/config`.
//!
//! The signature covers the exact bytes of `payload` (JSON text of [`ConfigPayload`]), so no
//! canonical JSON is needed: verify first, then parse. Every field has a documented range and a
//! default ([`ConfigBody::default`]); [`ConfigBody::check`] names the first field out of range.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, ident, invalid, text};

/// The only schema this build knows.
pub const CONFIG_SCHEMA: u32 = 1;

/// What travels on the wire: the payload text and fleetd's signature over its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedConfig {
    /// JSON text of a [`ConfigPayload`].
    pub payload: String,
    /// Ed25519 signature over `payload`'s UTF-8 bytes, standard base64.
    pub signature: String,
}

impl Validate for SignedConfig {
    fn validate(&self) -> Result<(), DecodeError> {
        text("payload", &self.payload, 48 * 1024)?;
        text("signature", &self.signature, 128)
    }
}

/// The signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPayload {
    /// [`CONFIG_SCHEMA`]; a kiosk refuses a schema it does not know.
    pub schema: u32,
    /// The one device this document is for (fleetd renders group config plus overrides per device).
    pub device_id: String,
    /// The group (clinic) the device belongs to, for information.
    pub group: String,
    /// Monotonic across the fleet: a kiosk refuses any version not above the one in force.
    pub version: u64,
    /// Unix seconds when fleetd signed it.
    pub issued_at: i64,
    pub body: ConfigBody,
}

impl Validate for ConfigPayload {
    fn validate(&self) -> Result<(), DecodeError> {
        ident("device_id", &self.device_id)?;
        text("group", &self.group, 64)?;
        if self.version == 0 {
            return Err(invalid("version", "must be at least 1".into()));
        }
        self.body.check()
    }
}

/// UI languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Es,
}

/// Log verbosity of the kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// Days of the week for opening hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// One opening period, local time of the clinic, `"HH:MM"`, `open < close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    pub day: Weekday,
    pub open: String,
    pub close: String,
}

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// 1–4 URLs, each `stun:`, `turn:` or `turns:`.
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Checks a list of STUN/TURN servers: at most 4, each with 1–4 `stun:`/`turn:`/`turns:` URLs.
pub(crate) fn check_ice_servers(servers: &[IceServer]) -> Result<(), DecodeError> {
    range("ice_servers", servers.len() as u64, 0, 4)?;
    for s in servers {
        range("ice_servers.urls", s.urls.len() as u64, 1, 4)?;
        for url in &s.urls {
            text("ice_servers.urls", url, 256)?;
            if !["stun:", "turn:", "turns:"].iter().any(|p| url.starts_with(p)) {
                return Err(invalid(
                    "ice_servers.urls",
                    format!("{url:?} is not stun:, turn: or turns:"),
                ));
            }
        }
        text("ice_servers.username", s.username.as_deref().unwrap_or(""), 128)?;
        text("ice_servers.credential", s.credential.as_deref().unwrap_or(""), 256)?;
    }
    Ok(())
}

/// Media caps the kiosk's encoder stays within.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaCaps {
    /// 320–1920, default 1280.
    pub max_width: u32,
    /// 180–1080, default 720.
    pub max_height: u32,
    /// 5–30, default 30.
    pub max_fps: u32,
    /// 150–6000 kbit/s, default 2500.
    pub max_bitrate_kbps: u32,
    /// The UDP ports the call's media may use, for clinic firewalls that open only a range:
    /// both 0 (default: any port), or 1024 ≤ min < max.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
}

impl Default for MediaCaps {
    fn default() -> Self {
        Self {
            max_width: 1280,
            max_height: 720,
            max_fps: 30,
            max_bitrate_kbps: 2500,
            rtp_port_min: 0,
            rtp_port_max: 0,
        }
    }
}

/// Schema v1 body. Ranges in each field's doc; defaults in [`ConfigBody::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigBody {
    /// 1–64 bytes. Default "Clinic".
    pub clinic_name: String,
    /// 1–64 bytes. Default "Exam room".
    pub room_name: String,
    /// 1–2 distinct languages: with two, the kiosk's idle screen has a button for the other one.
    /// Default [en, es].
    pub languages: Vec<Language>,
    /// One of `languages`. Default en.
    pub default_language: Language,
    /// IANA time zone of the clinic, 1–64 bytes. Default "UTC".
    pub timezone: String,
    /// 0–14 periods; none = always open.
    pub opening_hours: Vec<OpeningHours>,
    /// Shown outside opening hours, 1–200 bytes.
    pub out_of_service_message: String,
    /// Seconds before an untouched screen (ended, language choice) returns to Idle: 10–600, default 60.
    pub idle_timeout_secs: u32,
    /// Seconds a patient may wait for a clinician: 60–3600, default 900.
    pub wait_timeout_secs: u32,
    /// Longest visit in seconds: 300–14400, default 3600.
    pub max_visit_secs: u32,
    /// 0–4 STUN/TURN servers.
    pub ice_servers: Vec<IceServer>,
    pub media: MediaCaps,
    /// Speaker level 0–100 %, default 80.
    pub speaker_volume_pct: u8,
    /// Microphone gain 0–100 %, default 80.
    pub mic_gain_pct: u8,
    /// The notice shown before the camera turns on, per language, 0–600 bytes each; a language
    /// left out shows the kiosk's built-in notice ("Your visit is private. Nothing of it is
    /// recorded or kept on this kiosk.").
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub consent_notice: BTreeMap<Language, String>,
    /// Argon2 PHC hash of the technician's maintenance code (≤ 256 bytes, `$argon2…`), or empty.
    pub maintenance_code_hash: String,
    /// Seconds between state reports: 10–3600, default 60.
    pub telemetry_interval_secs: u32,
    /// Default info.
    pub log_level: LogLevel,
}

impl Default for ConfigBody {
    fn default() -> Self {
        Self {
            clinic_name: "Clinic".into(),
            room_name: "Exam room".into(),
            languages: vec![Language::En, Language::Es],
            default_language: Language::En,
            timezone: "UTC".into(),
            opening_hours: vec![],
            out_of_service_message: "This kiosk is closed now. Please ask at the front desk."
                .into(),
            idle_timeout_secs: 60,
            wait_timeout_secs: 900,
            max_visit_secs: 3600,
            ice_servers: vec![],
            media: MediaCaps::default(),
            speaker_volume_pct: 80,
            mic_gain_pct: 80,
            consent_notice: BTreeMap::new(),
            maintenance_code_hash: String::new(),
            telemetry_interval_secs: 60,
            log_level: LogLevel::Info,
        }
    }
}

fn range(field: &'static str, value: u64, lo: u64, hi: u64) -> Result<(), DecodeError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("{value} is outside {lo}–{hi}")))
    }
}

fn non_empty(field: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    text(field, value, max)?;
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty".into()));
    }
    Ok(())
}

fn hh_mm(field: &'static str, value: &str) -> Result<u32, DecodeError> {
    let bad = || invalid(field, format!("{value:?} is not a time HH:MM"));
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl ConfigBody {
    /// Checks every field against its range; the error names the first field out of range.
    pub fn check(&self) -> Result<(), DecodeError> {
        non_empty("clinic_name", &self.clinic_name, 64)?;
        non_empty("room_name", &self.room_name, 64)?;
        range("languages", self.languages.len() as u64, 1, 2)?;
        if self.languages.len() == 2 && self.languages[0] == self.languages[1] {
            return Err(invalid("languages", "lists a language twice".into()));
        }
        if !self.languages.contains(&self.default_language) {
            return Err(invalid("default_language", "is not one of `languages`".into()));
        }
        non_empty("timezone", &self.timezone, 64)?;
        range("opening_hours", self.opening_hours.len() as u64, 0, 14)?;
        for h in &self.opening_hours {
            if hh_mm("opening_hours.open", &h.open)? >= hh_mm("opening_hours.close", &h.close)? {
                return Err(invalid(
                    "opening_hours",
                    format!("{:?}: opens after it closes", h.day),
                ));
            }
        }
        non_empty("out_of_service_message", &self.out_of_service_message, 200)?;
        range("idle_timeout_secs", self.idle_timeout_secs.into(), 10, 600)?;
        range("wait_timeout_secs", self.wait_timeout_secs.into(), 60, 3600)?;
        range("max_visit_secs", self.max_visit_secs.into(), 300, 14_400)?;
        check_ice_servers(&self.ice_servers)?;
        let m = &self.media;
        range("media.max_width", m.max_width.into(), 320, 1920)?;
        range("media.max_height", m.max_height.into(), 180, 1080)?;
        range("media.max_fps", m.max_fps.into(), 5, 30)?;
        range("media.max_bitrate_kbps", m.max_bitrate_kbps.into(), 150, 6000)?;
        let ports = (m.rtp_port_min, m.rtp_port_max);
        if ports != (0, 0) && !(ports.0 >= 1024 && ports.0 < ports.1) {
            return Err(invalid(
                "media.rtp_port_min",
                format!(
                    "{}-{} is not a port range of 1024 ≤ min < max (or both 0)",
                    ports.0, ports.1
                ),
            ));
        }
        range("speaker_volume_pct", self.speaker_volume_pct.into(), 0, 100)?;
        range("mic_gain_pct", self.mic_gain_pct.into(), 0, 100)?;
        for notice in self.consent_notice.values() {
            text("consent_notice", notice, 600)?;
        }
        text("maintenance_code_hash", &self.maintenance_code_hash, 256)?;
        if !self.maintenance_code_hash.is_empty()
            && !self.maintenance_code_hash.starts_with("$argon2")
        {
            return Err(invalid(
                "maintenance_code_hash",
                "must be an argon2 hash, never the code".into(),
            ));
        }
        range("telemetry_interval_secs", self.telemetry_interval_secs.into(), 10, 3600)
    }
}

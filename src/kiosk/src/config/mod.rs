//! Fleet config on the kiosk: what fleetd signed for this device, checked, kept, and turned into
//! the settings each part of the kiosk uses.
//!
//! - `verify` (pure): the signature, device, version and range checks of one document.
//! - `hours` (pure, injected time): open or closed, in the clinic's time zone.
//! - `store` (adapter): the last good document on disk, atomically, with the TPM rollback guard.
//! - here: [`receive`] (the decision for one incoming document, given the config in force) and
//!   [`Settings`] (what the config means for the visit, the screen, media and telemetry).
//!
//! Must never: apply or store a document that has not passed [`verify`], or drop the config in
//! force because a newer document was bad.

pub mod hours;
pub mod store;
pub mod verify;

use std::time::Duration;

use std::collections::BTreeMap;

use telekiosk_protocol::config::{
    ConfigBody, ConfigPayload, IceServer, Language, LogLevel, SignedConfig,
};
use telekiosk_protocol::visit::IceSettings;

pub use hours::Schedule;
pub use verify::{ConfigError, verify};

use crate::media::CallSettings;
use crate::signed::PinnedKey;
use crate::visit::Timeouts;

/// A config that passed verification: the document as received (what is stored, so it can be
/// verified again at start) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub signed: SignedConfig,
    pub payload: ConfigPayload,
    /// Its opening hours, with the time zone looked up.
    pub schedule: Schedule,
}

/// What to do with one incoming document.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Byte for byte the document in force (the broker's retained copy after a reconnect or a
    /// restart): nothing to do, and no refusal to report.
    AlreadyInForce,
    /// Newer and good: store it and apply it.
    Accepted(Box<Accepted>),
    /// Refused; the config in force stays. `version` is the document's own claim (0 if unreadable).
    Refused { version: u64, error: ConfigError },
}

/// Decides about one document from the `config` topic, given the config in force (`None`: the
/// built-in defaults, version 0) and the version floor (the highest version this kiosk ever
/// accepted, kept in its TPM: [`store::ConfigStore::version_floor`]; that version itself may
/// come again after the stored file was wiped, an older one never).
pub fn receive(
    bytes: &[u8],
    pinned: &PinnedKey,
    device_id: &str,
    in_force: Option<&Accepted>,
    floor: u64,
) -> Received {
    let refused = |error: ConfigError| Received::Refused { version: claimed_version(bytes), error };
    let signed = match verify::decode_signed(bytes) {
        Ok(signed) => signed,
        Err(error) => return refused(error),
    };
    if in_force.is_some_and(|f| f.signed == signed) {
        return Received::AlreadyInForce;
    }
    let version = in_force.map_or(0, |f| f.payload.version).max(floor.saturating_sub(1));
    match verify::verify_signed(&signed, pinned, device_id, version).and_then(|p| accept(signed, p))
    {
        Ok(accepted) => Received::Accepted(Box::new(accepted)),
        Err(error) => refused(error),
    }
}

/// Completes a verified payload: its time zone must exist in this kiosk's tz database.
pub(crate) fn accept(
    signed: SignedConfig,
    payload: ConfigPayload,
) -> Result<Accepted, ConfigError> {
    let schedule = Schedule::new(&payload.body)
        .map_err(|e| ConfigError::OutOfRange { field: "timezone", reason: e.to_string() })?;
    Ok(Accepted { signed, payload, schedule })
}

/// The version a document claims, for the refusal report only (never trusted for anything else).
fn claimed_version(bytes: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Version {
        version: u64,
    }
    verify::decode_signed(bytes)
        .ok()
        .and_then(|s| serde_json::from_str::<Version>(&s.payload).ok())
        .map_or(0, |v| v.version)
}

/// The built-in defaults until a config arrives: [`ConfigBody::default`] with the clinic and
/// room names the kiosk was started with.
pub fn defaults(clinic: &str, room: &str) -> ConfigBody {
    ConfigBody { clinic_name: clinic.into(), room_name: room.into(), ..ConfigBody::default() }
}

/// What a config body means for each part of the kiosk.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub clinic: String,
    pub room: String,
    /// Visit time limits; applied at once, a visit in progress keeps going.
    pub timeouts: Timeouts,
    pub schedule: Schedule,
    /// Media caps and ICE servers: used from the next visit on.
    pub call: CallSettings,
    pub telemetry_interval: Duration,
    pub log_level: LogLevel,
    /// The patient's screens: the clinic's language, the call's speaker level, the consent
    /// notice per language (none: the kiosk's built-in one).
    pub default_language: Language,
    /// The languages offered (1 or 2).
    pub languages: Vec<Language>,
    pub speaker_volume_pct: u8,
    pub consent_notice: BTreeMap<Language, String>,
}

impl Settings {
    /// Settings from `body`, with `schedule` already made from it.
    pub fn new(body: &ConfigBody, schedule: Schedule) -> Settings {
        Settings {
            clinic: body.clinic_name.clone(),
            room: body.room_name.clone(),
            timeouts: Timeouts {
                wait_ms: u64::from(body.wait_timeout_secs) * 1000,
                max_visit_ms: u64::from(body.max_visit_secs) * 1000,
                idle_ms: u64::from(body.idle_timeout_secs) * 1000,
                ..Timeouts::default()
            },
            schedule,
            call: call_settings(body),
            telemetry_interval: Duration::from_secs(body.telemetry_interval_secs.into()),
            log_level: body.log_level,
            default_language: body.default_language,
            languages: body.languages.clone(),
            speaker_volume_pct: body.speaker_volume_pct,
            consent_notice: body.consent_notice.clone(),
        }
    }

    /// The settings of an accepted config.
    pub fn of(accepted: &Accepted) -> Settings {
        Settings::new(&accepted.payload.body, accepted.schedule.clone())
    }

    /// The built-in defaults (always open).
    pub fn defaults(clinic: &str, room: &str) -> Settings {
        Settings::new(&defaults(clinic, room), Schedule::always_open())
    }
}

/// Media caps and ICE servers. TURN credentials go into the URL as webrtcbin expects
/// (`turn://user:credential@host:port`).
fn call_settings(body: &ConfigBody) -> CallSettings {
    let mut stun = None;
    let mut turn = vec![];
    add_ice_servers(&body.ice_servers, &mut stun, &mut turn);
    let m = &body.media;
    CallSettings {
        max_width: m.max_width,
        max_height: m.max_height,
        max_fps: m.max_fps,
        max_bitrate_kbps: m.max_bitrate_kbps,
        stun,
        turn,
        rtp_ports: (m.rtp_port_min != 0).then_some((m.rtp_port_min, m.rtp_port_max)),
        ..CallSettings::default()
    }
}

/// The settings of one visit's call: the config's, plus the servers fleetd gave the visit (its
/// TURN credentials minted for it; first, so they are tried first) and its relay-only policy.
pub fn for_visit(call: &CallSettings, ice: &IceSettings) -> CallSettings {
    let mut stun = None;
    let mut turn = vec![];
    add_ice_servers(&ice.servers, &mut stun, &mut turn);
    turn.extend(call.turn.iter().cloned());
    CallSettings {
        stun: stun.or_else(|| call.stun.clone()),
        turn,
        relay_only: ice.relay_only || call.relay_only,
        ..call.clone()
    }
}

/// webrtcbin's URLs for `servers`: the first STUN server, and every TURN URL with its
/// credentials in it.
fn add_ice_servers(servers: &[IceServer], stun: &mut Option<String>, turn: &mut Vec<String>) {
    for server in servers {
        for url in &server.urls {
            if let Some(rest) = url.strip_prefix("stun:") {
                stun.get_or_insert_with(|| format!("stun://{}", rest.trim_start_matches("//")));
            } else if let Some((scheme, rest)) = url.split_once(':') {
                let host = rest.trim_start_matches("//");
                let user =
                    |s: &Option<String>| s.as_deref().map(encode_userinfo).unwrap_or_default();
                let auth = match (&server.username, &server.credential) {
                    (None, None) => String::new(),
                    (u, c) => format!("{}:{}@", user(u), user(c)),
                };
                turn.push(format!("{scheme}://{auth}{host}"));
            }
        }
    }
}

/// Percent-encodes what may not appear in a URL's user-info.
fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

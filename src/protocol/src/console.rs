//! Messages between fleetd and the clinician console, carried over a WebSocket (`/ws`).
//!
//! The browser is the answerer: it receives the kiosk's offer and returns an answer.

use serde::{Deserialize, Serialize};

use crate::config::Language;
use crate::decode::{DecodeError, Validate, ident, text};
use crate::e2ee::{
    CONFIRM_BYTES, ConsoleKey, KioskKey, PUBLIC_KEY_BYTES, SecurityCheck, check_b64,
};
use crate::visit::{EndReason, Ice, IceSettings, MAX_NAME_BYTES, check_sdp};

/// One kiosk waiting for a clinician, as the console lists it. No patient data: a visit is
/// identified by its pseudonymous id and the room it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingVisit {
    pub visit_id: String,
    /// Pseudonymous device id of the kiosk.
    pub device_id: String,
    pub clinic: String,
    pub room: String,
    /// Seconds the patient has waited when this list was sent.
    pub waiting_secs: u64,
    /// The language the patient chose on the kiosk (absent: the clinic's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// The patient came with a visit code this console's clinician made: the visit waits for
    /// them (other clinicians do not see it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub for_you: bool,
}

/// A patient's call for help from a kiosk, shown to the consoles of its clinic until a staff
/// member answers it. No patient data: the kiosk's place and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpAlert {
    /// Names the alert (the visit's id, or a fresh one from a screen without a visit).
    pub visit_id: String,
    pub device_id: String,
    pub clinic: String,
    pub room: String,
    /// Seconds since the patient asked, when this list was sent.
    pub waiting_secs: u64,
}

/// Messages the console sends to fleetd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsoleToServer {
    /// The clinician pressed Join on a waiting visit.
    Join { visit_id: String },
    /// Emergency access ("break glass"): join a visit of a clinic not assigned to this
    /// clinician. `reason` (1–500 bytes, required) goes to the audit trail.
    EmergencyJoin { visit_id: String, reason: String },
    /// The browser's SDP answer to the kiosk's offer, with its half of the key agreement.
    Answer { visit_id: String, sdp: String, e2ee: ConsoleKey },
    /// A check of the key agreement failed in the browser: the visit ends (audited).
    SecurityRefused { visit_id: String, check: SecurityCheck },
    /// A local ICE candidate of the browser.
    Ice { visit_id: String, ice: Ice },
    /// The clinician pressed End.
    End { visit_id: String },
    /// The console was in this visit when its connection to fleetd dropped (a network blip, a
    /// fleetd restart) and is back: give it the visit again. Only the clinician who joined it.
    Resume { visit_id: String },
    /// "I'm on my way": a staff member answers a patient's call for help; the kiosk shows that
    /// someone is coming, and the alert leaves every console.
    AnswerHelp { visit_id: String },
}

/// Messages fleetd sends to the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerToConsole {
    /// The whole waiting list, sent on connect and on every change.
    Queue { waiting: Vec<WaitingVisit> },
    /// This console now owns the visit; the kiosk's offer follows. `ice`: how the browser may
    /// reach the kiosk (TURN credentials minted for this visit).
    Joined {
        visit_id: String,
        clinic: String,
        room: String,
        #[serde(default)]
        ice: IceSettings,
    },
    /// Another clinician took the visit first.
    AlreadyTaken { visit_id: String },
    /// The kiosk's SDP offer with its signed key; `device_key`: the kiosk's enrolled device
    /// public key (SEC1, base64url) from fleetd's registry, to check the signature with (empty
    /// if fleetd does not know it, which the console refuses).
    Offer { visit_id: String, sdp: String, e2ee: KioskKey, device_key: String },
    /// The kiosk's key confirmation (base64url).
    KeyConfirm { visit_id: String, confirm: String },
    /// A remote ICE candidate from the kiosk.
    Ice { visit_id: String, ice: Ice },
    /// The visit is over.
    Ended { visit_id: String, reason: EndReason },
    /// This console has the visit again after `Resume`; media never stopped (peer to peer).
    Resumed { visit_id: String, clinic: String, room: String },
    /// A request was refused; `message` says why in plain words.
    Error { message: String },
    /// The open calls for help from the kiosks of this console's clinics, sent on connect and on
    /// every change (empty: none).
    Help { alerts: Vec<HelpAlert> },
}

impl Validate for ConsoleToServer {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Self::Join { visit_id }
            | Self::End { visit_id }
            | Self::Resume { visit_id }
            | Self::AnswerHelp { visit_id }
            | Self::SecurityRefused { visit_id, .. } => ident("visit_id", visit_id),
            Self::EmergencyJoin { visit_id, reason } => {
                ident("visit_id", visit_id)?;
                if reason.trim().is_empty() {
                    return Err(crate::decode::invalid(
                        "reason",
                        "is empty: say why you need emergency access".into(),
                    ));
                }
                text("reason", reason, MAX_REASON_BYTES)
            }
            Self::Answer { visit_id, sdp, e2ee } => {
                ident("visit_id", visit_id)?;
                check_sdp(sdp)?;
                e2ee.check()
            }
            Self::Ice { visit_id, ice } => {
                ident("visit_id", visit_id)?;
                ice.check()
            }
        }
    }
}

/// Longest reason for emergency access, in bytes.
pub const MAX_REASON_BYTES: usize = 500;

impl Validate for ServerToConsole {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Self::Queue { waiting } => waiting.iter().try_for_each(|w| {
                ident("visit_id", &w.visit_id)?;
                ident("device_id", &w.device_id)?;
                text("clinic", &w.clinic, MAX_NAME_BYTES)?;
                text("room", &w.room, MAX_NAME_BYTES)
            }),
            Self::Joined { ice, .. } if ice.check().is_err() => ice.check(),
            Self::Joined { visit_id, clinic, room, .. }
            | Self::Resumed { visit_id, clinic, room } => {
                ident("visit_id", visit_id)?;
                text("clinic", clinic, MAX_NAME_BYTES)?;
                text("room", room, MAX_NAME_BYTES)
            }
            Self::AlreadyTaken { visit_id } | Self::Ended { visit_id, .. } => {
                ident("visit_id", visit_id)
            }
            Self::Offer { visit_id, sdp, e2ee, device_key } => {
                ident("visit_id", visit_id)?;
                check_sdp(sdp)?;
                e2ee.check()?;
                match device_key.is_empty() {
                    true => Ok(()),
                    false => check_b64("device_key", device_key, PUBLIC_KEY_BYTES),
                }
            }
            Self::KeyConfirm { visit_id, confirm } => {
                ident("visit_id", visit_id)?;
                check_b64("confirm", confirm, CONFIRM_BYTES)
            }
            Self::Ice { visit_id, ice } => {
                ident("visit_id", visit_id)?;
                ice.check()
            }
            Self::Error { message } => text("message", message, 1024),
            Self::Help { alerts } => alerts.iter().try_for_each(|a| {
                ident("visit_id", &a.visit_id)?;
                ident("device_id", &a.device_id)?;
                text("clinic", &a.clinic, MAX_NAME_BYTES)?;
                text("room", &a.room, MAX_NAME_BYTES)
            }),
        }
    }
}

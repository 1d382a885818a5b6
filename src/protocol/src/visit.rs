//! Visit signalling between a kiosk and fleetd, carried over MQTT
//! (`telekiosk/v1/dev/{id}/visit/out` and `.../visit/in`).
//!
//! The kiosk always makes the WebRTC offer; fleetd only relays SDP and ICE, it never touches media.

use serde::{Deserialize, Serialize};

use crate::config::{IceServer, Language, check_ice_servers};
use crate::decode::{DecodeError, Validate, ident, invalid, text};
use crate::e2ee::{CONFIRM_BYTES, ConsoleKey, KioskKey, check_b64};

/// Largest SDP accepted, in bytes.
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// Largest ICE candidate line accepted, in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Largest display name (clinic, room) accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// One ICE candidate, as `RTCIceCandidate` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ice {
    /// Index of the m-line the candidate belongs to.
    pub mline: u32,
    /// The `candidate:` line, without `a=`. Empty means end of candidates.
    pub candidate: String,
}

impl Ice {
    pub(crate) fn check(&self) -> Result<(), DecodeError> {
        if self.mline > 16 {
            return Err(invalid("mline", format!("{} is above the 16 m-line limit", self.mline)));
        }
        text("candidate", &self.candidate, MAX_CANDIDATE_BYTES)?;
        if !self.candidate.is_empty() && !self.candidate.starts_with("candidate:") {
            return Err(invalid("candidate", "must start with 'candidate:'".into()));
        }
        Ok(())
    }
}

/// Checks an SDP: bounded, text, starts like an SDP.
pub(crate) fn check_sdp(sdp: &str) -> Result<(), DecodeError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(invalid("sdp", format!("{} bytes, more than {MAX_SDP_BYTES}", sdp.len())));
    }
    if !sdp.starts_with("v=0") {
        return Err(invalid("sdp", "does not start with 'v=0'".into()));
    }
    Ok(())
}

/// How one side of a visit may reach the other: STUN/TURN servers (fleetd mints TURN credentials
/// for each visit, valid a few hours) and whether only relayed paths may be used (strict
/// firewalls). Carried to the kiosk in `Queued` and to the console in `Joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceSettings {
    #[serde(default)]
    pub servers: Vec<IceServer>,
    #[serde(default)]
    pub relay_only: bool,
}

impl IceSettings {
    pub(crate) fn check(&self) -> Result<(), DecodeError> {
        check_ice_servers(&self.servers)?;
        if self.relay_only
            && !self.servers.iter().flat_map(|s| &s.urls).any(|u| u.starts_with("turn"))
        {
            return Err(invalid("ice.relay_only", "needs a TURN server".into()));
        }
        Ok(())
    }
}

/// Checks a clinician's sign-in name as visits carry it: 1–64 bytes, no control characters.
fn clinician_name(name: &str) -> Result<(), DecodeError> {
    if name.is_empty() {
        return Err(invalid("clinician", "is empty".into()));
    }
    text("clinician", name, 64)
}

/// Why a visit ended. Shown to people in plain words by each side; never carries PHI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The patient (or staff) pressed End on the kiosk.
    PatientEnded,
    /// The patient cancelled while waiting.
    PatientCancelled,
    /// The clinician pressed End.
    ClinicianEnded,
    /// Nobody joined before the waiting time-out.
    NoClinician,
    /// The media connection failed or could not be set up in time.
    ConnectionLost,
    /// The clinician's browser went away.
    ClinicianLeft,
    /// A peer sent a message that broke the protocol; the visit was ended to stay safe.
    ProtocolError,
    /// The kiosk's own media pipeline failed (camera, encoder, …).
    KioskFault,
    /// The visit reached the longest visit the fleet config allows (`max_visit_secs`).
    TimeLimit,
    /// A check of the end-to-end key agreement failed (see [`crate::e2ee::SecurityCheck`]):
    /// the call could not be proven private, so it was stopped before any media was shown.
    SecurityCheckFailed,
}

/// Messages a kiosk sends to fleetd on `visit/out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum KioskToServer {
    /// The patient pressed Join (or entered a visit code): put this visit in the clinicians'
    /// queue. `language`: the one the patient chose on the kiosk, so a clinician who speaks it
    /// can take the visit (absent from an older kiosk: the clinic's default). `visit_code`: the
    /// six digits a clinician gave the patient for a scheduled visit; fleetd checks it and
    /// queues the visit for that clinician only, or answers [`ServerToKiosk::CodeRefused`].
    Waiting {
        visit_id: String,
        clinic: String,
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<Language>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_code: Option<String>,
    },
    /// The kiosk's SDP offer, sent once fleetd said a clinician accepted (and again when its
    /// media restarts), with its signed half of a fresh end-to-end key agreement.
    Offer { visit_id: String, sdp: String, e2ee: KioskKey },
    /// The kiosk checked the console's key confirmation: here is its own (base64url).
    KeyConfirm { visit_id: String, confirm: String },
    /// A local ICE candidate of the kiosk.
    Ice { visit_id: String, ice: Ice },
    /// The kiosk ended (or refused) the visit.
    End { visit_id: String, reason: EndReason },
    /// The kiosk is in this visit with `clinician` (as `Accepted` named them), said again each
    /// time its fleet link comes up, so a restarted fleetd knows the call still runs and whose
    /// console may re-attach to it.
    InVisit { visit_id: String, clinic: String, room: String, clinician: String },
    /// The patient pressed "Get help from staff": fleetd alerts the consoles of the kiosk's
    /// clinic (audited). `visit_id` is the visit in progress, or a fresh pseudonymous id when
    /// the patient asked from a screen without a visit; it names the alert either way.
    Help { visit_id: String },
}

/// Why fleetd refused a visit code. The kiosk says it in plain words; never carries the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeRefusal {
    /// No such code (mistyped, or never made).
    Unknown,
    /// The code's time is over.
    Expired,
    /// The code was used for a visit already.
    Used,
    /// The code is for another clinic.
    OtherClinic,
    /// Too many wrong codes from this kiosk: wait before trying again.
    TooManyTries,
}

/// Longest a visit code may be, in digits; codes are [`VISIT_CODE_DIGITS`] long.
pub const VISIT_CODE_DIGITS: usize = 6;

/// Checks a visit code as typed: exactly [`VISIT_CODE_DIGITS`] ASCII digits.
pub fn check_visit_code(code: &str) -> Result<(), DecodeError> {
    if code.len() != VISIT_CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("visit_code", format!("must be {VISIT_CODE_DIGITS} digits")));
    }
    Ok(())
}

/// Messages fleetd sends to a kiosk on `visit/in`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerToKiosk {
    /// The visit is in the queue: how its call may reach the clinician. The kiosk starts its
    /// media with these (TURN must be known before the offer gathers its candidates).
    Queued { visit_id: String, ice: IceSettings },
    /// A clinician took this visit: the kiosk now sends its offer. `clinician` is who, as the
    /// kiosk must say again after a fleetd restart (`InVisit`); empty from an older fleetd.
    Accepted {
        visit_id: String,
        #[serde(default)]
        clinician: String,
    },
    /// The clinician's SDP answer, with the console's half of the key agreement.
    Answer { visit_id: String, sdp: String, e2ee: ConsoleKey },
    /// A remote ICE candidate from the clinician's browser.
    Ice { visit_id: String, ice: Ice },
    /// The visit is over on the clinician's side.
    End { visit_id: String, reason: EndReason },
    /// The visit code of this `Waiting` was refused; the visit is not queued. `retry_after_secs`
    /// is how long the kiosk must wait before another code (0: at once).
    CodeRefused {
        visit_id: String,
        reason: CodeRefusal,
        #[serde(default)]
        retry_after_secs: u32,
    },
    /// Where the waiting visit stands: `ahead` patients are before it in its clinic's queue
    /// (0: next). Sent when the visit is queued and each time its place changes.
    Position { visit_id: String, ahead: u32 },
    /// A clinic's staff member saw the patient's call for help (the alert named `visit_id`).
    HelpComing { visit_id: String },
}

impl KioskToServer {
    /// The visit this message belongs to.
    pub fn visit_id(&self) -> &str {
        match self {
            Self::Waiting { visit_id, .. }
            | Self::Offer { visit_id, .. }
            | Self::KeyConfirm { visit_id, .. }
            | Self::Ice { visit_id, .. }
            | Self::End { visit_id, .. }
            | Self::InVisit { visit_id, .. }
            | Self::Help { visit_id } => visit_id,
        }
    }
}

impl ServerToKiosk {
    /// The message's type, as on the wire; for logs that must not carry SDP or candidates.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Accepted { .. } => "accepted",
            Self::Answer { .. } => "answer",
            Self::Ice { .. } => "ice",
            Self::End { .. } => "end",
            Self::CodeRefused { .. } => "code_refused",
            Self::Position { .. } => "position",
            Self::HelpComing { .. } => "help_coming",
        }
    }

    /// The visit this message belongs to.
    pub fn visit_id(&self) -> &str {
        match self {
            Self::Queued { visit_id, .. }
            | Self::Accepted { visit_id, .. }
            | Self::Answer { visit_id, .. }
            | Self::Ice { visit_id, .. }
            | Self::End { visit_id, .. }
            | Self::CodeRefused { visit_id, .. }
            | Self::Position { visit_id, .. }
            | Self::HelpComing { visit_id } => visit_id,
        }
    }
}

impl Validate for KioskToServer {
    fn validate(&self) -> Result<(), DecodeError> {
        ident("visit_id", self.visit_id())?;
        match self {
            Self::Waiting { clinic, room, visit_code, .. } => {
                text("clinic", clinic, MAX_NAME_BYTES)?;
                text("room", room, MAX_NAME_BYTES)?;
                visit_code.as_deref().map_or(Ok(()), check_visit_code)
            }
            Self::Offer { sdp, e2ee, .. } => {
                check_sdp(sdp)?;
                e2ee.check()
            }
            Self::KeyConfirm { confirm, .. } => check_b64("confirm", confirm, CONFIRM_BYTES),
            Self::Ice { ice, .. } => ice.check(),
            Self::End { .. } | Self::Help { .. } => Ok(()),
            Self::InVisit { clinic, room, clinician, .. } => {
                text("clinic", clinic, MAX_NAME_BYTES)?;
                text("room", room, MAX_NAME_BYTES)?;
                ident("clinician", clinician)
            }
        }
    }
}

impl Validate for ServerToKiosk {
    fn validate(&self) -> Result<(), DecodeError> {
        ident("visit_id", self.visit_id())?;
        match self {
            Self::Answer { sdp, e2ee, .. } => {
                check_sdp(sdp)?;
                e2ee.check()
            }
            Self::Ice { ice, .. } => ice.check(),
            Self::Queued { ice, .. } => ice.check(),
            Self::Accepted { clinician, .. } if !clinician.is_empty() => clinician_name(clinician),
            Self::CodeRefused { retry_after_secs, .. } if *retry_after_secs > 3600 => {
                Err(invalid("retry_after_secs", format!("{retry_after_secs} is more than an hour")))
            }
            Self::Accepted { .. }
            | Self::End { .. }
            | Self::CodeRefused { .. }
            | Self::Position { .. }
            | Self::HelpComing { .. } => Ok(()),
        }
    }
}

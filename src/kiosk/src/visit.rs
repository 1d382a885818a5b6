//! The visit state machine: the kiosk's pure core.
//!
//! Events in, effects out, no I/O and no clock of its own (time comes in with each call), so
//! every path — happy or not — is tested as a table without GStreamer, Slint or MQTT. The shell
//! carries out the effects and feeds back what the media pipeline, the fleet link and the touch
//! screen report. The screen shown is derived from the state, never set directly.

mod call;
mod patient;

use telekiosk_protocol::config::Language;
use telekiosk_protocol::e2ee::{ConsoleKey, KioskKey, SecurityCheck};
use telekiosk_protocol::visit::{EndReason, Ice, IceSettings, KioskToServer, ServerToKiosk};

use call::{current, holds_ice, lost, offer_and_ice, rebuild, rebuild_due, sending, unsent};

pub use patient::{
    CODE_DIGITS, CodeLock, DEFAULT_LOCK_MS, Help, Patient, STILL_THERE_MS, WRONG_CODES_BEFORE_LOCK,
};

/// Time limits of a visit, in milliseconds. Defaults suit a clinic (and match the fleet
/// config's defaults); fleet config sets `wait_ms` and `max_visit_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Waiting for a clinician before giving up with "no clinician available".
    pub wait_ms: u64,
    /// From a clinician accepting to media flowing.
    pub connect_ms: u64,
    /// How long the "visit ended" screen stays before Idle.
    pub ended_ms: u64,
    /// Longest call, from media flowing; then the visit ends with [`EndReason::TimeLimit`].
    pub max_visit_ms: u64,
    /// Longest a call may stay without media (reconnecting) before it ends with
    /// [`EndReason::ConnectionLost`].
    pub reconnect_ms: u64,
    /// A screen before a visit left untouched this long asks "Are you still there?" (fleet
    /// config `idle_timeout_secs`).
    pub idle_ms: u64,
    /// How long the "please wipe the screen" prompt shows between patients.
    pub cleaning_ms: u64,
}

/// After Join, media waits this long for fleetd's `Queued` (with the visit's TURN credentials)
/// before it starts without them.
pub const QUEUED_WAIT_MS: u64 = 3_000;

/// While reconnecting, the media pipeline is rebuilt and the offer made again this often (at
/// once if it failed): webrtcbin cannot restart ICE, so a new one is the way back.
pub const REBUILD_EVERY_MS: u64 = 10_000;

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            wait_ms: 15 * 60_000,
            connect_ms: 30_000,
            ended_ms: 6_000,
            max_visit_ms: 3_600_000,
            reconnect_ms: 120_000,
            idle_ms: 60_000,
            cleaning_ms: 5_000,
        }
    }
}

/// Where the kiosk is. Each visit has an id the kiosk made when Join was pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Showing the clinic and room and the Join button.
    Idle,
    /// The privacy notice after Join (or a visit code): only Accept puts the patient in the
    /// queue, so the camera and microphone open only after it. `code` is the visit code typed.
    Consent { visit_id: String, code: Option<String> },
    /// The visit-code keypad, with the digits typed so far.
    CodeEntry { digits: String },
    /// In the clinicians' queue. Media starts once fleetd says how the call may reach the
    /// clinician (`started`); the offer is prepared meanwhile and held until one accepts.
    Waiting {
        visit_id: String,
        since_ms: u64,
        offer: Option<(String, KioskKey)>,
        ice: Vec<Ice>,
        started: bool,
    },
    /// A clinician accepted: waiting for the answer and for media to flow. `unsent` holds the
    /// candidates found while the offer was still being made (`None` once the offer is out).
    /// `clinician` is who accepted, as fleetd named them.
    Connecting { visit_id: String, since_ms: u64, unsent: Option<Vec<Ice>>, clinician: String },
    /// Media is flowing.
    InCall { visit_id: String, since_ms: u64, mic_muted: bool, camera_off: bool, clinician: String },
    /// In a call whose media stopped (since `lost_ms`): waiting for it to come back, and
    /// rebuilding the pipeline with a new offer (last at `rebuilt_ms`) if it does not. `unsent`
    /// as in `Connecting`, for the rebuilt pipeline's offer.
    Reconnecting {
        visit_id: String,
        since_ms: u64,
        mic_muted: bool,
        camera_off: bool,
        clinician: String,
        lost_ms: u64,
        rebuilt_ms: Option<u64>,
        unsent: Option<Vec<Ice>>,
    },
    /// The visit is over; the reason is shown until `until_ms`, then Idle.
    Ended { reason: EndReason, until_ms: u64 },
    /// Between patients: "please wipe the screen" for staff until `until_ms`, then Idle.
    Cleaning { until_ms: u64 },
    /// The kiosk cannot take visits (hardware or software fault); `reason` is shown.
    OutOfService { reason: String },
}

/// Everything that can happen to the kiosk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The patient pressed Join; the shell made a fresh visit id.
    JoinPressed {
        visit_id: String,
    },
    /// "I have a visit code" on Idle.
    CodePressed,
    /// A digit on the keypad (0–9).
    Digit(u8),
    DeleteDigit,
    /// OK on the keypad; the shell made a fresh visit id.
    CodeOk {
        visit_id: String,
    },
    /// Accept on the consent notice.
    ConsentAccepted,
    /// "Not now" on the consent notice (or Back on the keypad).
    ConsentDeclined,
    /// Cancel (Leave) while waiting or connecting.
    CancelPressed,
    /// End during a call: asks "End the visit?" first.
    EndPressed,
    /// "Yes, end" on the confirmation.
    EndConfirmed,
    /// "No, stay" on the confirmation.
    EndDeclined,
    /// "Español" / "English".
    LanguageToggled,
    LargerTextToggled,
    /// "Get help from staff"; a fresh id in case no visit is in progress.
    HelpPressed {
        visit_id: String,
    },
    /// "Yes, I'm here" (or any touch) on "Are you still there?".
    StillHere,
    VolumeUp,
    VolumeDown,
    /// "Hide my picture" / "Show my picture" while waiting.
    SelfViewToggled,
    MuteToggled,
    CameraToggled,
    /// A well-formed message from fleetd.
    Server(ServerToKiosk),
    /// A message from fleetd that could not be decoded; `reason` says why.
    ServerMalformed {
        reason: String,
    },
    /// The fleet link is (again) up.
    FleetConnected,
    /// The media pipeline created its offer, and the shell signed a fresh key for it.
    LocalOffer {
        sdp: String,
        key: KioskKey,
    },
    /// The shell checked the console's key confirmation and installed the visit's frame keys:
    /// `confirm` goes to the console, `code` is the verification code both screens show.
    KeysAgreed {
        confirm: String,
        code: String,
    },
    /// A check of the key agreement failed: the call cannot be proven private.
    SecurityCheckFailed {
        check: SecurityCheck,
    },
    /// The media pipeline found a local ICE candidate.
    LocalIce(Ice),
    /// Media is flowing both ways.
    MediaConnected,
    /// Nothing has arrived from the clinician for a few seconds.
    MediaStalled,
    /// Media arrives again after `MediaStalled`.
    MediaFlowing,
    /// The media pipeline failed; `reason` names what.
    MediaFailed {
        reason: String,
    },
    /// The media pipeline could not even start (camera, encoder, GStreamer missing).
    MediaUnavailable {
        reason: String,
    },
    /// Time passes.
    Tick,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Build and start the media pipeline for this visit (camera on, offer prepared), reaching
    /// the clinician as `ice` says (also for any rebuild during the visit).
    StartMedia {
        visit_id: String,
        ice: IceSettings,
    },
    /// Tear the media pipeline down.
    StopMedia,
    /// Tear the call's media pipeline down and build a new one, which makes a new offer; the
    /// visit goes on (mute and camera are set again by the effects that follow).
    RebuildMedia {
        visit_id: String,
    },
    /// Publish to fleetd.
    Send(KioskToServer),
    /// Agree on the frame keys with the console's half (refusing it if its checks fail), then
    /// set the clinician's SDP answer.
    SetRemoteAnswer {
        sdp: String,
        key: ConsoleKey,
    },
    AddRemoteIce(Ice),
    SetMicMuted(bool),
    SetCameraEnabled(bool),
    /// Speaker level of the call, 0–100 %.
    SetVolume(u8),
    /// Something unexpected but handled; the shell logs it.
    Warn(String),
}

/// The state machine with its settings.
#[derive(Debug, Clone)]
pub struct Visit {
    pub clinic: String,
    pub room: String,
    pub timeouts: Timeouts,
    /// Outside opening hours: the message Idle shows instead of Join. A visit in progress is
    /// never interrupted by closing time; only a new Join is refused.
    closed: Option<String>,
    state: State,
    /// The clinician's candidates taken so far, and for which visit ([`MAX_REMOTE_ICE`]).
    remote_ice: (String, u32),
    /// The person in front of the kiosk; wiped between visits.
    patient: Patient,
    /// The keypad's back-off after wrong codes.
    lock: CodeLock,
    /// The clinic's language and speaker level (fleet config).
    default_language: Language,
    speaker_volume_pct: u8,
    /// The fleet config offers a second language: the patient may switch.
    language_choice: bool,
}

/// Remote ICE candidates the kiosk takes per visit and media pipeline (review L10; the count
/// starts again when the pipeline is rebuilt to reconnect): a call needs a few dozen at most;
/// unlimited ones would make the kiosk send connectivity checks to any address it is told. The
/// rest are ignored, with one warning.
pub const MAX_REMOTE_ICE: u32 = 50;

impl Visit {
    /// A kiosk at Idle.
    pub fn new(clinic: impl Into<String>, room: impl Into<String>, timeouts: Timeouts) -> Self {
        Self {
            clinic: clinic.into(),
            room: room.into(),
            timeouts,
            closed: None,
            state: State::Idle,
            remote_ice: (String::new(), 0),
            patient: Patient::new(Language::En, 80, 0),
            lock: CodeLock::default(),
            default_language: Language::En,
            speaker_volume_pct: 80,
            language_choice: true,
        }
    }

    /// One more of the clinician's candidates for `visit_id`: handed to the pipeline up to
    /// [`MAX_REMOTE_ICE`] per visit, then ignored (one warning for the first one ignored).
    fn take_remote_ice(&mut self, visit_id: &str, ice: Ice) -> Vec<Effect> {
        if self.remote_ice.0 != visit_id {
            self.remote_ice = (visit_id.to_string(), 0);
        }
        self.remote_ice.1 = self.remote_ice.1.saturating_add(1);
        match self.remote_ice.1 {
            n if n <= MAX_REMOTE_ICE => vec![Effect::AddRemoteIce(ice)],
            n if n == MAX_REMOTE_ICE + 1 => vec![Effect::Warn(format!(
                "more than {MAX_REMOTE_ICE} remote ICE candidates for visit {visit_id}: the rest \
                 are ignored"
            ))],
            _ => vec![],
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// New settings from fleet config, in force at once without interrupting a visit in
    /// progress: its deadlines are measured from when its current stage began, with the new
    /// limits; the names go into the next "waiting" announcement.
    pub fn update(&mut self, clinic: &str, room: &str, timeouts: Timeouts) {
        self.clinic = clinic.to_string();
        self.room = room.to_string();
        self.timeouts = timeouts;
    }

    /// Opening hours: `Some(message)` while closed, `None` while open.
    pub fn set_closed(&mut self, closed: Option<String>) {
        self.closed = closed;
    }

    /// The out-of-hours message while the kiosk is closed to new visits.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// The visit in progress (waiting, connecting or in call), if any.
    pub fn in_progress(&self) -> Option<&str> {
        current(&self.state)
    }

    /// Applies one event at time `now_ms` and returns what the shell must do, in order.
    pub fn handle(&mut self, event: Event, now_ms: u64) -> Vec<Effect> {
        use Event as E;
        use State as S;
        let state = std::mem::replace(&mut self.state, S::Idle);
        self.unlock_when_due(now_ms);
        let (state, event) = match self.patient_step(state, event, now_ms) {
            patient::Step::Done(next, effects) => {
                self.state = next;
                return effects;
            }
            patient::Step::Pass(state, event) => (state, event),
        };
        let (next, effects) = match (state, event) {
            (_, E::MediaUnavailable { reason }) => {
                (S::OutOfService { reason }, vec![Effect::StopMedia])
            }
            (S::OutOfService { reason }, _) => (S::OutOfService { reason }, vec![]),

            (
                S::Waiting { visit_id, since_ms, offer, ice: held, started: false },
                E::Server(ServerToKiosk::Queued { visit_id: v, ice }),
            ) if v == visit_id => {
                let effects = vec![Effect::StartMedia { visit_id: visit_id.clone(), ice }];
                (S::Waiting { visit_id, since_ms, offer, ice: held, started: true }, effects)
            }
            (S::Waiting { visit_id, since_ms, offer, ice, started: false }, E::Tick)
                if now_ms.saturating_sub(since_ms) >= QUEUED_WAIT_MS =>
            {
                let effects = vec![
                    Effect::Warn("fleetd has not said the visit is queued: media starts without its ICE servers".into()),
                    Effect::StartMedia { visit_id: visit_id.clone(), ice: IceSettings::default() },
                ];
                (S::Waiting { visit_id, since_ms, offer, ice, started: true }, effects)
            }
            // Said again (a repeated Waiting), or for a visit already under way: nothing to do.
            (state, E::Server(ServerToKiosk::Queued { visit_id: v, .. }))
                if current(&state) == Some(v.as_str()) =>
            {
                (state, vec![])
            }

            // Waiting: hold the prepared offer and candidates until a clinician accepts.
            (S::Waiting { visit_id, since_ms, ice, started, .. }, E::LocalOffer { sdp, key }) => {
                (S::Waiting { visit_id, since_ms, offer: Some((sdp, key)), ice, started }, vec![])
            }
            (S::Waiting { visit_id, since_ms, offer, mut ice, started }, E::LocalIce(c)) => {
                ice.push(c);
                (S::Waiting { visit_id, since_ms, offer, ice, started }, vec![])
            }
            (S::Waiting { visit_id, since_ms, offer, ice, started }, E::FleetConnected) => {
                // The broker may have lost us (and fleetd its queue entry): announce again.
                let effects = vec![Effect::Send(self.waiting(&visit_id))];
                (S::Waiting { visit_id, since_ms, offer, ice, started }, effects)
            }
            (
                S::Waiting { visit_id, offer, ice, started, .. },
                E::Server(ServerToKiosk::Accepted { visit_id: v, clinician }),
            ) if v == visit_id => {
                let since_ms = now_ms;
                match offer {
                    Some((sdp, key)) => {
                        let effects = offer_and_ice(&visit_id, sdp, key, ice);
                        (S::Connecting { visit_id, since_ms, unsent: None, clinician }, effects)
                    }
                    // The offer is still being made: it goes out the moment it is ready.
                    None => {
                        // Accepted before fleetd's `Queued` (which always comes first): start
                        // media now.
                        let start = Effect::StartMedia {
                            visit_id: visit_id.clone(),
                            ice: Default::default(),
                        };
                        let effects = if started { vec![] } else { vec![start] };
                        let unsent = Some(ice);
                        (S::Connecting { visit_id, since_ms, unsent, clinician }, effects)
                    }
                }
            }
            (S::Waiting { visit_id, .. }, E::CancelPressed) => {
                self.end(visit_id, EndReason::PatientCancelled, now_ms, true)
            }
            (S::Waiting { visit_id, since_ms, .. }, E::Tick)
                if now_ms.saturating_sub(since_ms) >= self.timeouts.wait_ms =>
            {
                self.end(visit_id, EndReason::NoClinician, now_ms, true)
            }

            // Connecting and in call.
            (
                S::Connecting { visit_id, since_ms, unsent: Some(ice), clinician },
                E::LocalOffer { sdp, key },
            ) => {
                let effects = offer_and_ice(&visit_id, sdp, key, ice);
                (S::Connecting { visit_id, since_ms, unsent: None, clinician }, effects)
            }
            (mut state, E::LocalIce(c)) if holds_ice(&state) => {
                if let Some(held) = unsent(&mut state) {
                    held.push(c);
                }
                (state, vec![])
            }
            (
                state @ (S::Connecting { unsent: None, .. } | S::Reconnecting { unsent: None, .. }),
                E::Server(ServerToKiosk::Answer { visit_id: v, sdp, e2ee }),
            ) if current(&state) == Some(v.as_str()) => {
                (state, vec![Effect::SetRemoteAnswer { sdp, key: e2ee }])
            }
            (state, E::KeysAgreed { confirm, code }) if sending(&state).is_some() => {
                let visit_id = sending(&state).unwrap_or_default().to_string();
                self.patient.security_code = Some(code);
                (state, vec![Effect::Send(KioskToServer::KeyConfirm { visit_id, confirm })])
            }
            (state, E::SecurityCheckFailed { check }) if current(&state).is_some() => {
                let visit_id = current(&state).unwrap_or_default().to_string();
                let warning = format!("end-to-end security check failed ({check:?}): visit ended");
                self.end_warned(warning, visit_id, EndReason::SecurityCheckFailed, now_ms)
            }
            (S::Connecting { visit_id, unsent: None, clinician, .. }, E::MediaConnected) => {
                let (mic_muted, camera_off) = (false, false);
                let since_ms = now_ms;
                (S::InCall { visit_id, since_ms, mic_muted, camera_off, clinician }, vec![])
            }
            (S::Connecting { visit_id, since_ms, .. }, E::Tick)
                if now_ms.saturating_sub(since_ms) >= self.timeouts.connect_ms =>
            {
                self.end(visit_id, EndReason::ConnectionLost, now_ms, true)
            }
            (
                S::Connecting { visit_id, .. },
                E::CancelPressed | E::EndPressed | E::EndConfirmed,
            )
            | (S::InCall { visit_id, .. }, E::EndConfirmed) => {
                self.end(visit_id, EndReason::PatientEnded, now_ms, true)
            }
            (S::Reconnecting { visit_id, .. }, E::EndConfirmed) => {
                self.end(visit_id, EndReason::PatientEnded, now_ms, true)
            }
            (
                S::InCall { visit_id, since_ms, .. } | S::Reconnecting { visit_id, since_ms, .. },
                E::Tick,
            ) if now_ms.saturating_sub(since_ms) >= self.timeouts.max_visit_ms => {
                self.end(visit_id, EndReason::TimeLimit, now_ms, true)
            }
            (mut state @ (S::InCall { .. } | S::Reconnecting { .. }), E::MuteToggled) => {
                let mut effects = vec![];
                if let S::InCall { mic_muted, .. } | S::Reconnecting { mic_muted, .. } = &mut state
                {
                    *mic_muted = !*mic_muted;
                    effects.push(Effect::SetMicMuted(*mic_muted));
                }
                (state, effects)
            }
            (mut state @ (S::InCall { .. } | S::Reconnecting { .. }), E::CameraToggled) => {
                let mut effects = vec![];
                if let S::InCall { camera_off, .. } | S::Reconnecting { camera_off, .. } =
                    &mut state
                {
                    *camera_off = !*camera_off;
                    effects.push(Effect::SetCameraEnabled(!*camera_off));
                }
                (state, effects)
            }

            // The call's media stops: wait for it, rebuild the pipeline if it does not come back.
            (state @ S::InCall { .. }, E::MediaStalled) => {
                let warning = Effect::Warn("no media from the clinician: reconnecting".into());
                (lost(state, now_ms), vec![warning])
            }
            (state @ S::InCall { .. }, E::MediaFailed { reason }) => {
                let (state, mut effects) = rebuild(lost(state, now_ms), now_ms);
                let warning = format!("media failed in call: {reason}; rebuilding");
                effects.insert(0, Effect::Warn(warning));
                (state, effects)
            }
            (
                S::Reconnecting {
                    visit_id,
                    since_ms,
                    mic_muted,
                    camera_off,
                    clinician,
                    unsent: None,
                    ..
                },
                E::MediaFlowing | E::MediaConnected,
            ) => (S::InCall { visit_id, since_ms, mic_muted, camera_off, clinician }, vec![]),
            (S::Reconnecting { visit_id, lost_ms, .. }, E::Tick)
                if now_ms.saturating_sub(lost_ms) >= self.timeouts.reconnect_ms =>
            {
                self.end(visit_id, EndReason::ConnectionLost, now_ms, true)
            }
            (state @ S::Reconnecting { .. }, E::Tick) if rebuild_due(&state, now_ms, false) => {
                rebuild(state, now_ms)
            }
            (state @ S::Reconnecting { .. }, E::MediaFailed { reason })
                if rebuild_due(&state, now_ms, true) =>
            {
                let (state, mut effects) = rebuild(state, now_ms);
                effects.insert(0, Effect::Warn(format!("media failed: {reason}; rebuilding")));
                (state, effects)
            }
            // The rebuilt pipeline's offer: out at once, with the candidates held for it.
            (mut state @ S::Reconnecting { unsent: Some(_), .. }, E::LocalOffer { sdp, key }) => {
                let mut effects = vec![];
                if let S::Reconnecting { visit_id, unsent, .. } = &mut state {
                    effects = offer_and_ice(visit_id, sdp, key, unsent.take().unwrap_or_default());
                }
                (state, effects)
            }
            // A failure soon after a rebuild waits for the next one (Tick).
            (state @ S::Reconnecting { .. }, E::MediaFailed { reason }) => {
                (state, vec![Effect::Warn(format!("media failed while reconnecting: {reason}"))])
            }
            // The fleet link is back (or fleetd restarted): say we are still in this visit.
            (
                state @ (S::Connecting { .. } | S::InCall { .. } | S::Reconnecting { .. }),
                E::FleetConnected,
            ) => {
                let effects = self.in_visit(&state).map(Effect::Send).into_iter().collect();
                (state, effects)
            }

            // Any state with a visit: the shared unhappy paths.
            (state, E::LocalIce(ice)) if sending(&state).is_some() => {
                let visit_id = sending(&state).unwrap_or_default().to_string();
                (state, vec![Effect::Send(KioskToServer::Ice { visit_id, ice })])
            }
            (state, E::Server(ServerToKiosk::Ice { visit_id: v, ice }))
                if sending(&state) == Some(v.as_str()) =>
            {
                let effects = self.take_remote_ice(&v, ice);
                (state, effects)
            }
            (state, E::Server(ServerToKiosk::End { visit_id: v, reason }))
                if current(&state) == Some(v.as_str()) =>
            {
                self.end(v, reason, now_ms, false)
            }
            (state, E::MediaFailed { reason }) if current(&state).is_some() => {
                let visit_id = current(&state).unwrap_or_default().to_string();
                let why = match state {
                    S::Waiting { .. } => EndReason::KioskFault,
                    _ => EndReason::ConnectionLost,
                };
                self.end_warned(format!("media failed: {reason}"), visit_id, why, now_ms)
            }
            (state, E::ServerMalformed { reason }) => {
                let warning = format!("malformed message from fleetd: {reason}");
                match current(&state) {
                    Some(visit_id) => {
                        let visit_id = visit_id.to_string();
                        self.end_warned(warning, visit_id, EndReason::ProtocolError, now_ms)
                    }
                    None => (state, vec![Effect::Warn(warning)]),
                }
            }
            (state, E::Server(msg)) => match current(&state) {
                // A message for this visit that does not fit where the visit is: end it cleanly.
                Some(visit_id) if visit_id == msg.visit_id() => {
                    let warning = format!("unexpected '{}' message from fleetd", msg.kind());
                    let visit_id = visit_id.to_string();
                    self.end_warned(warning, visit_id, EndReason::ProtocolError, now_ms)
                }
                // A leftover of an earlier visit: nothing to do.
                _ => {
                    let warning = format!("ignored '{}' for visit {}", msg.kind(), msg.visit_id());
                    (state, vec![Effect::Warn(warning)])
                }
            },

            // Everything else changes nothing (End pressed twice, Join while busy, …).
            (state, _) => (state, vec![]),
        };
        self.state = next;
        // A new pipeline (a visit's first, or one rebuilt to reconnect) needs the clinician's
        // candidates anew: the count starts again.
        if effects
            .iter()
            .any(|e| matches!(e, Effect::StartMedia { .. } | Effect::RebuildMedia { .. }))
        {
            self.remote_ice = (String::new(), 0);
        }
        effects
    }

    /// What the kiosk says of the visit it is in when its fleet link comes back, once a
    /// clinician has accepted it.
    fn in_visit(&self, state: &State) -> Option<KioskToServer> {
        let (visit_id, clinician) = match state {
            State::Connecting { visit_id, clinician, .. }
            | State::InCall { visit_id, clinician, .. }
            | State::Reconnecting { visit_id, clinician, .. } => (visit_id, clinician),
            _ => return None,
        };
        (!clinician.is_empty()).then(|| KioskToServer::InVisit {
            visit_id: visit_id.clone(),
            clinic: self.clinic.clone(),
            room: self.room.clone(),
            clinician: clinician.clone(),
        })
    }

    fn waiting(&self, visit_id: &str) -> KioskToServer {
        KioskToServer::Waiting {
            visit_id: visit_id.to_string(),
            clinic: self.clinic.clone(),
            room: self.room.clone(),
            language: Some(self.patient.language),
            visit_code: self.patient.code.clone(),
        }
    }

    /// Ends the visit because something went wrong, saying what in the log.
    fn end_warned(
        &mut self,
        warning: String,
        visit_id: String,
        reason: EndReason,
        now_ms: u64,
    ) -> (State, Vec<Effect>) {
        let (next, mut effects) = self.end(visit_id, reason, now_ms, true);
        effects.insert(0, Effect::Warn(warning));
        (next, effects)
    }

    /// Ends the visit: media down, fleetd told (unless it told us), "ended" screen. The visit
    /// code and queue position are forgotten at once, the rest of the patient after the
    /// cleaning prompt.
    fn end(
        &mut self,
        visit_id: String,
        reason: EndReason,
        now_ms: u64,
        tell: bool,
    ) -> (State, Vec<Effect>) {
        self.patient.code = None;
        self.patient.security_code = None;
        self.patient.position = None;
        self.patient.confirm_end = false;
        let mut effects = vec![Effect::StopMedia];
        if tell {
            effects.push(Effect::Send(KioskToServer::End { visit_id, reason }));
        }
        (State::Ended { reason, until_ms: now_ms + self.timeouts.ended_ms }, effects)
    }
}

#[cfg(test)]
mod tests;

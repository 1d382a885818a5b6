//! What the screen shows, derived from the visit state: plain data, no Slint, tested alone.
//! The words themselves live in `ui/` (Slint `@tr()`, English and Spanish): here the screen,
//! kinds (why a visit ended, what the connection is doing) and figures are chosen. Text from
//! fleet config (closed message, consent notice) passes through as given. The English notices
//! below are for the status lines on stdout only.

use std::collections::BTreeMap;

use telekiosk_protocol::config::Language;
use telekiosk_protocol::visit::{CodeRefusal, EndReason};

use crate::media::QualityLevel;
use crate::visit::{Help, State, Visit};

/// The screens of `ui/api.slint`'s `Screen` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenId {
    Idle,
    /// Idle outside opening hours: the out-of-service message instead of Join.
    Closed,
    Consent,
    CodeEntry,
    Waiting,
    Connecting,
    InCall,
    Ended,
    Cleaning,
    OutOfService,
}

impl ScreenId {
    /// Lower-case name used in status lines and tests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Closed => "closed",
            Self::Consent => "consent",
            Self::CodeEntry => "code_entry",
            Self::Waiting => "waiting",
            Self::Connecting => "connecting",
            Self::InCall => "in_call",
            Self::Ended => "ended",
            Self::Cleaning => "cleaning",
            Self::OutOfService => "out_of_service",
        }
    }
}

/// What the call's notice says, chosen here and worded in `ui/pages/call.slint`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallNotice {
    #[default]
    None,
    Reconnecting,
    VideoPaused,
    AudioOnly,
}

/// Everything the screens display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewModel {
    pub screen: ScreenId,
    /// What is wrong with the kiosk, or the closed message (from config, as given).
    pub message: String,
    /// Why the visit ended (Ended screen).
    pub end_reason: Option<EndReason>,
    /// "m:ss" waited or in call.
    pub elapsed: String,
    pub mic_muted: bool,
    pub camera_off: bool,
    /// In call: connection bars, 0 (unknown) or 1–3 (poor, fair, good).
    pub signal: u8,
    /// In call: a plain notice about the connection (English, for the status line; empty
    /// when all is well); `notice` is the same as a kind, for the screen.
    pub call_notice: String,
    pub notice: CallNotice,
    pub patient: PatientView,
}

/// What the patient chose and where they are, on every screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientView {
    pub language: Option<Language>,
    /// The config offers a second language: Idle has a button for it.
    pub language_choice: bool,
    pub larger_text: bool,
    pub help: Help,
    /// "Are you still there?" shows, with the seconds left.
    pub still_there_secs: Option<u32>,
    pub confirm_end: bool,
    /// In call: the verification code of its end-to-end keys, once agreed.
    pub security_code: Option<String>,
    pub self_view_hidden: bool,
    pub volume_pct: u8,
    /// People before the patient in the queue, when fleetd says.
    pub position: Option<u32>,
    /// The keypad's digits so far.
    pub digits: String,
    pub refusal: Option<CodeRefusal>,
    /// Seconds the keypad stays locked (0: not locked).
    pub locked_secs: u32,
    /// The consent notice from config in the patient's language; empty: the built-in one.
    pub consent_notice: String,
    /// Today's opening hours ("9:00–12:00, 13:00–17:00"), empty if none are set.
    pub hours: String,
}

/// How the call in progress is going (from the media pipeline; not part of the visit state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCondition {
    /// The last quality reading's verdict, if there has been one.
    pub level: Option<QualityLevel>,
    /// The link cannot carry video right now: audio only.
    pub video_paused: bool,
    /// The clinician's browser could not take the kiosk's video: audio only, all visit long.
    pub audio_only: bool,
}

/// The status line's words while the call's connection is being restored.
pub const RECONNECTING_TEXT: &str =
    "Reconnecting… The connection dropped. Please stay here: the call comes back by itself.";

/// The status line's words when the video pauses for a weak connection.
pub const VIDEO_PAUSED_TEXT: &str =
    "Video paused: weak connection. You can still talk. The picture comes back by itself.";

/// The status line's words when the clinician's browser could not start video.
pub const AUDIO_ONLY_TEXT: &str = "Video could not start with this browser; audio only.";

impl CallNotice {
    /// English words for the status line on stdout.
    pub fn text(self) -> &'static str {
        match self {
            CallNotice::None => "",
            CallNotice::Reconnecting => RECONNECTING_TEXT,
            CallNotice::VideoPaused => VIDEO_PAUSED_TEXT,
            CallNotice::AudioOnly => AUDIO_ONLY_TEXT,
        }
    }
}

/// Derives the view from the state at `now_ms`; `closed` is the out-of-hours message, if the
/// kiosk is closed to new visits (it changes only what Idle shows); `call` is how the call in
/// progress is going.
pub fn view(state: &State, closed: Option<&str>, call: CallCondition, now_ms: u64) -> ViewModel {
    let since = |since_ms: u64| clock(now_ms.saturating_sub(since_ms));
    let plain = |screen| ViewModel {
        screen,
        message: String::new(),
        end_reason: None,
        elapsed: String::new(),
        mic_muted: false,
        camera_off: false,
        signal: 0,
        call_notice: String::new(),
        notice: CallNotice::None,
        patient: PatientView::default(),
    };
    let with_notice = |vm: ViewModel, notice: CallNotice| ViewModel {
        call_notice: notice.text().into(),
        notice,
        ..vm
    };
    match state {
        State::Idle => match closed {
            Some(message) => ViewModel { message: message.into(), ..plain(ScreenId::Closed) },
            None => plain(ScreenId::Idle),
        },
        State::Consent { .. } => plain(ScreenId::Consent),
        State::CodeEntry { digits } => {
            let mut vm = plain(ScreenId::CodeEntry);
            vm.patient.digits = digits.clone();
            vm
        }
        State::Waiting { since_ms, .. } => {
            ViewModel { elapsed: since(*since_ms), ..plain(ScreenId::Waiting) }
        }
        State::Connecting { since_ms, .. } => {
            ViewModel { elapsed: since(*since_ms), ..plain(ScreenId::Connecting) }
        }
        State::InCall { since_ms, mic_muted, camera_off, .. } => {
            let notice = if call.audio_only {
                CallNotice::AudioOnly
            } else if call.video_paused {
                CallNotice::VideoPaused
            } else {
                CallNotice::None
            };
            let vm = ViewModel {
                elapsed: since(*since_ms),
                mic_muted: *mic_muted,
                camera_off: *camera_off,
                signal: match call.level {
                    None => 0,
                    Some(QualityLevel::Poor) => 1,
                    Some(QualityLevel::Fair) => 2,
                    Some(QualityLevel::Good) => 3,
                },
                ..plain(ScreenId::InCall)
            };
            with_notice(vm, notice)
        }
        State::Reconnecting { since_ms, mic_muted, camera_off, .. } => {
            let vm = ViewModel {
                elapsed: since(*since_ms),
                mic_muted: *mic_muted,
                camera_off: *camera_off,
                ..plain(ScreenId::InCall)
            };
            with_notice(vm, CallNotice::Reconnecting)
        }
        State::Ended { reason, .. } => {
            ViewModel { end_reason: Some(*reason), ..plain(ScreenId::Ended) }
        }
        State::Cleaning { .. } => plain(ScreenId::Cleaning),
        State::OutOfService { reason } => {
            ViewModel { message: reason.clone(), ..plain(ScreenId::OutOfService) }
        }
    }
}

/// What the patient's screens need besides the visit: from fleet config and the clock.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Consent notices per language from config (an absent one: the built-in text).
    pub consent_notice: BTreeMap<Language, String>,
    /// Today's open periods, minutes since local midnight.
    pub hours: Vec<(u32, u32)>,
}

/// The whole view: [`view`] of the visit's state with the patient's choices on it.
pub fn screen(visit: &Visit, call: CallCondition, extras: &Extras, now_ms: u64) -> ViewModel {
    let mut vm = view(visit.state(), visit.closed(), call, now_ms);
    let p = visit.patient();
    let digits = std::mem::take(&mut vm.patient.digits);
    vm.patient = PatientView {
        language: Some(p.language),
        language_choice: visit.language_choice(),
        larger_text: p.larger_text,
        help: p.help,
        still_there_secs: p.warning_since.map(|since| {
            let left = crate::visit::STILL_THERE_MS.saturating_sub(now_ms.saturating_sub(since));
            left.div_ceil(1000) as u32
        }),
        confirm_end: p.confirm_end && vm.screen == ScreenId::InCall,
        security_code: p.security_code.clone().filter(|_| vm.screen == ScreenId::InCall),
        self_view_hidden: p.self_view_hidden,
        volume_pct: p.volume_pct,
        position: p.position,
        digits,
        refusal: p.refusal,
        locked_secs: visit
            .locked_until()
            .map_or(0, |until| until.saturating_sub(now_ms).div_ceil(1000) as u32),
        consent_notice: extras.consent_notice.get(&p.language).cloned().unwrap_or_default(),
        hours: hours_text(&extras.hours),
    };
    vm
}

/// Open periods as "9:00–12:00, 13:00–17:00" (24-hour clock, read the same in both languages).
pub fn hours_text(hours: &[(u32, u32)]) -> String {
    let hm = |m: u32| format!("{}:{:02}", m / 60, m % 60);
    hours
        .iter()
        .map(|(open, close)| format!("{}–{}", hm(*open), hm(*close)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds as "m:ss".
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_shows_minutes_and_seconds_waited() {
        let state = State::Waiting {
            visit_id: "v".into(),
            since_ms: 1_000,
            offer: None,
            ice: vec![],
            started: true,
        };
        let v = view(&state, None, CallCondition::default(), 1_000 + 125_400);
        assert_eq!((v.screen, v.elapsed.as_str()), (ScreenId::Waiting, "2:05"));
    }

    #[test]
    fn ended_screen_names_the_reason() {
        let state = State::Ended { reason: EndReason::NoClinician, until_ms: 0 };
        let v = view(&state, None, CallCondition::default(), 0);
        assert_eq!((v.screen, v.end_reason), (ScreenId::Ended, Some(EndReason::NoClinician)));
    }

    #[test]
    fn outside_opening_hours_idle_shows_the_message_but_a_call_stays_on_screen() {
        let v = view(&State::Idle, Some("Closed until 9:00"), CallCondition::default(), 0);
        assert_eq!((v.screen, v.message.as_str()), (ScreenId::Closed, "Closed until 9:00"));
        let call = State::InCall {
            visit_id: "v".into(),
            since_ms: 0,
            mic_muted: false,
            camera_off: false,
            clinician: "dr".into(),
        };
        let v = view(&call, Some("Closed until 9:00"), CallCondition::default(), 0);
        assert_eq!(v.screen, ScreenId::InCall);
    }

    #[test]
    fn call_screen_reflects_mute_and_camera() {
        let state = State::InCall {
            visit_id: "v".into(),
            since_ms: 0,
            mic_muted: true,
            camera_off: false,
            clinician: "dr".into(),
        };
        let v = view(&state, None, CallCondition::default(), 61_000);
        assert!(v.mic_muted && !v.camera_off);
        assert_eq!(v.elapsed, "1:01");
    }

    #[test]
    fn call_screen_shows_the_connection_and_says_when_video_pauses() {
        let state = State::InCall {
            visit_id: "v".into(),
            since_ms: 0,
            mic_muted: false,
            camera_off: false,
            clinician: "dr".into(),
        };
        let table = [
            (CallCondition::default(), 0, ""),
            (CallCondition { level: Some(QualityLevel::Good), ..Default::default() }, 3, ""),
            (CallCondition { level: Some(QualityLevel::Fair), ..Default::default() }, 2, ""),
            (
                CallCondition {
                    level: Some(QualityLevel::Poor),
                    video_paused: true,
                    audio_only: false,
                },
                1,
                VIDEO_PAUSED_TEXT,
            ),
            // The browser took no video: that says more than a pause would.
            (
                CallCondition {
                    level: Some(QualityLevel::Good),
                    video_paused: true,
                    audio_only: true,
                },
                3,
                AUDIO_ONLY_TEXT,
            ),
        ];
        for (call, signal, notice) in table {
            let v = view(&state, None, call, 0);
            assert_eq!((v.signal, v.call_notice.as_str()), (signal, notice), "{call:?}");
        }
        // Outside a call the condition shows nowhere.
        let paused =
            CallCondition { level: Some(QualityLevel::Poor), video_paused: true, audio_only: true };
        let v = view(&State::Idle, None, paused, 0);
        assert_eq!((v.signal, v.call_notice.as_str()), (0, ""));
    }

    #[test]
    fn while_reconnecting_the_call_stays_on_screen_and_says_so() {
        let state = State::Reconnecting {
            visit_id: "v".into(),
            since_ms: 0,
            mic_muted: true,
            camera_off: false,
            clinician: "dr".into(),
            lost_ms: 60_000,
            rebuilt_ms: None,
            unsent: None,
        };
        let good = CallCondition { level: Some(QualityLevel::Good), ..CallCondition::default() };
        let v = view(&state, None, good, 65_000);
        assert_eq!((v.screen, v.call_notice.as_str()), (ScreenId::InCall, RECONNECTING_TEXT));
        assert_eq!((v.signal, v.mic_muted, v.elapsed.as_str()), (0, true, "1:05"));
    }

    #[test]
    fn the_patients_screens_show_their_language_notice_countdowns_and_hours() {
        use crate::visit::{Event, STILL_THERE_MS, Timeouts, Visit};
        let t = Timeouts::default();
        let mut visit = Visit::new("Clinic", "Room", t.clone());
        let mut extras = Extras {
            hours: vec![(8 * 60, 12 * 60), (13 * 60, 17 * 60 + 30)],
            ..Default::default()
        };
        extras.consent_notice.insert(Language::Es, "Aviso de la clínica".into());
        visit.handle(Event::JoinPressed { visit_id: "v".into() }, 0);
        let v = screen(&visit, CallCondition::default(), &extras, 0);
        assert_eq!(v.screen, ScreenId::Consent);
        assert_eq!(v.patient.consent_notice, "", "no English notice configured: built-in one");
        assert_eq!(v.patient.hours, "8:00–12:00, 13:00–17:30");
        visit.handle(Event::LanguageToggled, 0);
        let v = screen(&visit, CallCondition::default(), &extras, 0);
        assert_eq!(v.patient.consent_notice, "Aviso de la clínica");
        assert_eq!(v.patient.language, Some(Language::Es));
        visit.handle(Event::Tick, t.idle_ms);
        let v = screen(&visit, CallCondition::default(), &extras, t.idle_ms + 2_500);
        assert_eq!(v.patient.still_there_secs, Some((STILL_THERE_MS / 1000 - 2) as u32));
        let v = screen(&visit, CallCondition::default(), &extras, t.idle_ms);
        assert_eq!(v.patient.still_there_secs, Some((STILL_THERE_MS / 1000) as u32));
    }
}

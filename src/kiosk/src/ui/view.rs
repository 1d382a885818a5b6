//! What the screen shows, derived from the visit state: plain data, no Slint, tested alone.
//! The wording is for a patient who may be elderly, unwell or new to the kiosk: short,
//! plain, and saying what to do next.

use telekiosk_protocol::visit::EndReason;

use crate::media::QualityLevel;
use crate::visit::State;

/// The screens of `ui/api.slint`'s `Screen` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenId {
    Idle,
    /// Idle outside opening hours: the out-of-service message instead of Join.
    Closed,
    Waiting,
    Connecting,
    InCall,
    Ended,
    OutOfService,
}

impl ScreenId {
    /// Lower-case name used in status lines and tests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Closed => "closed",
            Self::Waiting => "waiting",
            Self::Connecting => "connecting",
            Self::InCall => "in_call",
            Self::Ended => "ended",
            Self::OutOfService => "out_of_service",
        }
    }
}

/// Everything the screens display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewModel {
    pub screen: ScreenId,
    /// Why the visit ended, or what is wrong with the kiosk.
    pub message: String,
    /// "m:ss" waited or in call.
    pub elapsed: String,
    pub mic_muted: bool,
    pub camera_off: bool,
    /// In call: connection bars, 0 (unknown) or 1–3 (poor, fair, good).
    pub signal: u8,
    /// In call: a plain notice about the connection (empty when all is well).
    pub call_notice: String,
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

/// What the patient reads while the call's connection is being restored.
pub const RECONNECTING_TEXT: &str =
    "Reconnecting… The connection dropped. Please stay here: the call comes back by itself.";

/// What the patient reads when the video pauses for a weak connection.
pub const VIDEO_PAUSED_TEXT: &str =
    "Video paused: weak connection. You can still talk. The picture comes back by itself.";

/// What the patient reads when the clinician's browser could not start video.
pub const AUDIO_ONLY_TEXT: &str = "Video could not start with this browser; audio only.";

/// Derives the view from the state at `now_ms`; `closed` is the out-of-hours message, if the
/// kiosk is closed to new visits (it changes only what Idle shows); `call` is how the call in
/// progress is going.
pub fn view(state: &State, closed: Option<&str>, call: CallCondition, now_ms: u64) -> ViewModel {
    let since = |since_ms: u64| clock(now_ms.saturating_sub(since_ms));
    let plain = |screen| ViewModel {
        screen,
        message: String::new(),
        elapsed: String::new(),
        mic_muted: false,
        camera_off: false,
        signal: 0,
        call_notice: String::new(),
    };
    match state {
        State::Idle => match closed {
            Some(message) => ViewModel { message: message.into(), ..plain(ScreenId::Closed) },
            None => plain(ScreenId::Idle),
        },
        State::Waiting { since_ms, .. } => {
            ViewModel { elapsed: since(*since_ms), ..plain(ScreenId::Waiting) }
        }
        State::Connecting { since_ms, .. } => {
            ViewModel { elapsed: since(*since_ms), ..plain(ScreenId::Connecting) }
        }
        State::InCall { since_ms, mic_muted, camera_off, .. } => ViewModel {
            elapsed: since(*since_ms),
            mic_muted: *mic_muted,
            camera_off: *camera_off,
            signal: match call.level {
                None => 0,
                Some(QualityLevel::Poor) => 1,
                Some(QualityLevel::Fair) => 2,
                Some(QualityLevel::Good) => 3,
            },
            call_notice: if call.audio_only {
                AUDIO_ONLY_TEXT.into()
            } else if call.video_paused {
                VIDEO_PAUSED_TEXT.into()
            } else {
                String::new()
            },
            ..plain(ScreenId::InCall)
        },
        State::Reconnecting { since_ms, mic_muted, camera_off, .. } => ViewModel {
            elapsed: since(*since_ms),
            mic_muted: *mic_muted,
            camera_off: *camera_off,
            call_notice: RECONNECTING_TEXT.into(),
            ..plain(ScreenId::InCall)
        },
        State::Ended { reason, .. } => {
            ViewModel { message: end_reason_text(*reason).into(), ..plain(ScreenId::Ended) }
        }
        State::OutOfService { reason } => {
            ViewModel { message: reason.clone(), ..plain(ScreenId::OutOfService) }
        }
    }
}

/// Plain words for why a visit ended.
pub fn end_reason_text(reason: EndReason) -> &'static str {
    match reason {
        EndReason::PatientEnded => "You ended the visit.",
        EndReason::PatientCancelled => "You cancelled the visit. Press Join to start again.",
        EndReason::ClinicianEnded => "The clinician ended the visit.",
        EndReason::NoClinician => {
            "No clinician was free to see you. Please ask the front desk for help, or try again."
        }
        EndReason::ConnectionLost => {
            "The video connection was lost. Please press Join to try again, or ask the staff for help."
        }
        EndReason::ClinicianLeft => "The clinician's connection ended. They may call back shortly.",
        EndReason::TimeLimit => {
            "The visit reached its time limit. Press Join if you need to continue, or ask the staff."
        }
        EndReason::ProtocolError | EndReason::KioskFault => {
            "Something went wrong with the video call. Please press Join to try again, or ask the staff for help."
        }
    }
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
    fn ended_screen_explains_the_reason_in_plain_words() {
        let state = State::Ended { reason: EndReason::NoClinician, until_ms: 0 };
        let v = view(&state, None, CallCondition::default(), 0);
        assert_eq!(v.screen, ScreenId::Ended);
        assert!(v.message.contains("No clinician was free"), "{}", v.message);
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
}

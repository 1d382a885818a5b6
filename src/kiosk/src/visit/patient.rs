//! The patient's side of the visit state machine: the screens before a visit (consent, the
//! visit-code keypad), the choices a patient makes on any screen (language, larger text, help,
//! volume, hiding their picture, confirming End), the "Are you still there?" reset and the
//! cleaning prompt between patients.
//!
//! Pure like the rest of `visit`: events and the time in, effects out. Owns [`Patient`], all
//! that the kiosk knows of the person in front of it, which is wiped between visits. Must never:
//! reset a screen while a visit is in progress (waiting or in call), or keep a visit code
//! beyond the visit it was typed for.

use telekiosk_protocol::config::Language;
use telekiosk_protocol::visit::{CodeRefusal, KioskToServer};

use super::{Effect, Event, State, Visit};

/// The "Are you still there?" warning lasts this long before the kiosk resets to Idle.
pub const STILL_THERE_MS: u64 = 10_000;

/// Wrong visit codes in a row the kiosk itself takes before it locks the keypad.
pub const WRONG_CODES_BEFORE_LOCK: u32 = 3;

/// How long the keypad stays locked after too many wrong codes, when fleetd does not say.
pub const DEFAULT_LOCK_MS: u64 = 60_000;

/// Digits in a visit code.
pub const CODE_DIGITS: usize = 6;

/// Whether the patient asked staff for help, and what staff answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Help {
    #[default]
    None,
    /// "Staff have been told. Someone will come."
    Told,
    /// "Someone is on the way."
    Coming,
}

/// Everything the kiosk knows of the patient in front of it; wiped between visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub language: Language,
    pub larger_text: bool,
    /// The visit code typed for the visit in progress (sent with `Waiting`).
    pub code: Option<String>,
    /// People before the patient in the queue, once fleetd says.
    pub position: Option<u32>,
    pub help: Help,
    pub self_view_hidden: bool,
    /// Speaker level in the call, 0–100 %.
    pub volume_pct: u8,
    /// "End the visit?" is on screen.
    pub confirm_end: bool,
    /// Why the last code was refused (shown on the keypad).
    pub refusal: Option<CodeRefusal>,
    /// The last touch, for the idle reset.
    pub last_touch_ms: u64,
    /// Since when "Are you still there?" shows.
    pub warning_since: Option<u64>,
    /// The call's verification code (end-to-end keys agreed), shown in the call.
    pub security_code: Option<String>,
}

impl Patient {
    /// A fresh patient in the clinic's default language at the configured speaker level.
    pub fn new(language: Language, volume_pct: u8, now_ms: u64) -> Patient {
        Patient {
            language,
            larger_text: false,
            code: None,
            position: None,
            help: Help::None,
            self_view_hidden: false,
            volume_pct,
            confirm_end: false,
            refusal: None,
            last_touch_ms: now_ms,
            warning_since: None,
            security_code: None,
        }
    }
}

/// The keypad's lock after wrong codes: not patient data, so it outlives an idle reset (waiting
/// for the reset must not be a way round it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeLock {
    pub wrong: u32,
    pub until_ms: Option<u64>,
}

impl Event {
    /// Whether the event is the patient touching the screen (which keeps the idle reset away).
    pub fn is_touch(&self) -> bool {
        matches!(
            self,
            Event::JoinPressed { .. }
                | Event::CodePressed
                | Event::Digit(_)
                | Event::DeleteDigit
                | Event::CodeOk { .. }
                | Event::ConsentAccepted
                | Event::ConsentDeclined
                | Event::CancelPressed
                | Event::EndPressed
                | Event::EndConfirmed
                | Event::EndDeclined
                | Event::MuteToggled
                | Event::CameraToggled
                | Event::LanguageToggled
                | Event::LargerTextToggled
                | Event::HelpPressed { .. }
                | Event::StillHere
                | Event::VolumeUp
                | Event::VolumeDown
                | Event::SelfViewToggled
        )
    }
}

/// The other bundled language.
pub fn other(language: Language) -> Language {
    match language {
        Language::En => Language::Es,
        Language::Es => Language::En,
    }
}

/// The outcome of [`Visit::patient_step`].
pub(super) enum Step {
    /// Handled: the next state and the effects.
    Done(State, Vec<Effect>),
    /// Not the patient's side: the state and event go to the visit's own rules.
    Pass(State, Event),
}

impl Visit {
    /// What the patient does that does not depend on the visit's stage, and the screens before
    /// a visit.
    pub(super) fn patient_step(&mut self, state: State, event: Event, now_ms: u64) -> Step {
        use Event as E;
        use State as S;
        if event.is_touch() {
            self.patient.last_touch_ms = now_ms;
            self.patient.warning_since = None;
        }
        let p = &mut self.patient;
        let done = Step::Done;
        match (state, event) {
            // Told once; pressed again while staff have not answered, the alert stands as is.
            (state, E::HelpPressed { .. }) if p.help == Help::Told => done(state, vec![]),
            (state, E::HelpPressed { visit_id }) => {
                let visit_id = super::current(&state).map_or(visit_id, str::to_string);
                p.help = Help::Told;
                done(state, vec![Effect::Send(KioskToServer::Help { visit_id })])
            }
            (state, E::Server(telekiosk_protocol::visit::ServerToKiosk::HelpComing { .. })) => {
                if p.help != Help::None {
                    p.help = Help::Coming;
                }
                done(state, vec![])
            }
            (state, E::StillHere) => done(state, vec![]),
            (state, E::LargerTextToggled) => {
                p.larger_text = !p.larger_text;
                done(state, vec![])
            }
            (state, E::SelfViewToggled) => {
                p.self_view_hidden = !p.self_view_hidden;
                done(state, vec![])
            }
            (state, E::LanguageToggled)
                if super::current(&state).is_none() && self.language_choice =>
            {
                p.language = other(p.language);
                done(state, vec![])
            }
            (state, event @ (E::VolumeUp | E::VolumeDown)) if super::current(&state).is_some() => {
                let step: i16 = if event == E::VolumeUp { 10 } else { -10 };
                p.volume_pct = (i16::from(p.volume_pct) + step).clamp(0, 100) as u8;
                done(state, vec![Effect::SetVolume(p.volume_pct)])
            }
            (
                state,
                E::Server(telekiosk_protocol::visit::ServerToKiosk::Position { visit_id, ahead }),
            ) if super::current(&state) == Some(visit_id.as_str()) => {
                p.position = Some(ahead);
                done(state, vec![])
            }
            (
                S::Waiting { visit_id, started, .. },
                E::Server(telekiosk_protocol::visit::ServerToKiosk::CodeRefused {
                    visit_id: v,
                    reason,
                    retry_after_secs,
                }),
            ) if v == visit_id && p.code.is_some() => {
                p.code = None;
                p.position = None;
                p.refusal = Some(reason);
                if reason != CodeRefusal::TooManyTries {
                    self.lock.wrong += 1;
                }
                // fleetd's back-off, or the kiosk's own after three wrong codes in a row.
                let asked_ms = u64::from(retry_after_secs) * 1000;
                let own = reason == CodeRefusal::TooManyTries
                    || self.lock.wrong >= WRONG_CODES_BEFORE_LOCK;
                let ms = if own { asked_ms.max(DEFAULT_LOCK_MS) } else { asked_ms };
                if ms > 0 {
                    self.lock.until_ms = Some(now_ms + ms);
                }
                let effects = if started { vec![Effect::StopMedia] } else { vec![] };
                done(S::CodeEntry { digits: String::new() }, effects)
            }

            // Idle: join, or type a visit code.
            (S::Idle, E::JoinPressed { .. } | E::CodePressed) if self.closed.is_some() => done(
                S::Idle,
                vec![Effect::Warn("Join pressed outside opening hours: ignored".into())],
            ),
            (S::Idle, E::JoinPressed { visit_id }) => {
                done(S::Consent { visit_id, code: None }, vec![])
            }
            (S::Idle, E::CodePressed) => {
                p.refusal = None;
                done(S::CodeEntry { digits: String::new() }, vec![])
            }

            // The keypad.
            (S::CodeEntry { .. }, E::Digit(_) | E::DeleteDigit | E::CodeOk { .. })
                if self.lock.until_ms.is_some() =>
            {
                done(S::CodeEntry { digits: String::new() }, vec![])
            }
            (S::CodeEntry { mut digits }, E::Digit(d)) => {
                if d <= 9 && digits.len() < CODE_DIGITS {
                    digits.push(char::from(b'0' + d));
                }
                p.refusal = None;
                done(S::CodeEntry { digits }, vec![])
            }
            (S::CodeEntry { mut digits }, E::DeleteDigit) => {
                digits.pop();
                done(S::CodeEntry { digits }, vec![])
            }
            (S::CodeEntry { digits }, E::CodeOk { visit_id }) => {
                match telekiosk_protocol::visit::check_visit_code(&digits) {
                    Ok(()) => done(S::Consent { visit_id, code: Some(digits) }, vec![]),
                    Err(_) => done(S::CodeEntry { digits }, vec![]),
                }
            }
            (S::CodeEntry { .. }, E::CancelPressed | E::ConsentDeclined) => done(S::Idle, vec![]),

            // Consent: only Accept puts the patient in the queue (and so starts the camera).
            (S::Consent { .. }, E::ConsentDeclined | E::CancelPressed) => done(S::Idle, vec![]),
            (S::Consent { visit_id, code }, E::ConsentAccepted) => {
                p.code = code;
                p.position = None;
                let effects = vec![Effect::Send(self.waiting(&visit_id))];
                let since_ms = now_ms;
                let waiting =
                    S::Waiting { visit_id, since_ms, offer: None, ice: vec![], started: false };
                done(waiting, effects)
            }

            // In call: End asks first.
            (state @ (S::InCall { .. } | S::Reconnecting { .. }), E::EndPressed) => {
                p.confirm_end = true;
                done(state, vec![])
            }
            (state, E::EndDeclined) => {
                p.confirm_end = false;
                done(state, vec![])
            }

            // Between patients.
            (S::Ended { until_ms, .. }, E::Tick) if now_ms >= until_ms => {
                self.wipe(now_ms);
                done(S::Cleaning { until_ms: now_ms + self.timeouts.cleaning_ms }, vec![])
            }
            (S::Cleaning { until_ms }, E::Tick) if now_ms >= until_ms => {
                self.wipe(now_ms);
                done(S::Idle, vec![])
            }

            (state, E::Tick) => {
                let state = self.idle_reset(state, now_ms);
                Step::Pass(state, E::Tick)
            }
            (state, event) => Step::Pass(state, event),
        }
    }

    /// "Are you still there?" on a screen left untouched before a visit (consent, keypad, or
    /// Idle changed by the patient); then Idle with everything wiped.
    fn idle_reset(&mut self, state: State, now_ms: u64) -> State {
        let changed = self.patient.language != self.default_language || self.patient.larger_text;
        let resettable = match &state {
            State::Consent { .. } | State::CodeEntry { .. } => true,
            State::Idle => changed,
            _ => false,
        };
        if !resettable {
            self.patient.warning_since = None;
            return state;
        }
        let (warning, last_touch) = (self.patient.warning_since, self.patient.last_touch_ms);
        match warning {
            None if now_ms.saturating_sub(last_touch) >= self.timeouts.idle_ms => {
                self.patient.warning_since = Some(now_ms);
                state
            }
            Some(since) if now_ms.saturating_sub(since) >= STILL_THERE_MS => {
                self.wipe(now_ms);
                State::Idle
            }
            _ => state,
        }
    }

    /// Forgets the patient: language back to the clinic's, every choice and code gone.
    pub(super) fn wipe(&mut self, now_ms: u64) {
        self.patient = Patient::new(self.default_language, self.speaker_volume_pct, now_ms);
    }

    /// The keypad unlocks when its time is up.
    pub(super) fn unlock_when_due(&mut self, now_ms: u64) {
        if self.lock.until_ms.is_some_and(|until| now_ms >= until) {
            self.lock = CodeLock::default();
        }
    }

    /// The patient, as the screens show them.
    pub fn patient(&self) -> &Patient {
        &self.patient
    }

    /// Until when the keypad is locked, if it is.
    pub fn locked_until(&self) -> Option<u64> {
        self.lock.until_ms
    }

    /// The languages the fleet config offers: with one, the patient cannot switch (the button
    /// is gone and a press is ignored), and a patient's other choice ends with the next wipe.
    pub fn set_languages(&mut self, languages: &[Language]) {
        self.language_choice = languages.len() > 1;
    }

    /// Whether the patient may switch language (the config offers two).
    pub fn language_choice(&self) -> bool {
        self.language_choice
    }

    /// The clinic's language and speaker level, from fleet config: in force from the next
    /// patient (and at once while the kiosk is idle and untouched).
    pub fn set_patient_defaults(&mut self, language: Language, volume_pct: u8) {
        let untouched = self.patient
            == Patient::new(
                self.default_language,
                self.speaker_volume_pct,
                self.patient.last_touch_ms,
            );
        self.default_language = language;
        self.speaker_volume_pct = volume_pct;
        if untouched && self.in_progress().is_none() {
            self.wipe(self.patient.last_touch_ms);
        }
    }
}

#[cfg(test)]
mod tests;

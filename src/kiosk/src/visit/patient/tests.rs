//! Table tests of the patient's screens: consent, the visit-code keypad and its lock, the idle
//! reset, language, help, End's confirmation and the cleaning prompt.

use telekiosk_protocol::config::Language;
use telekiosk_protocol::visit::{CodeRefusal, EndReason, KioskToServer, ServerToKiosk};

use super::super::{Effect, Event, State, Timeouts, Visit};
use super::{DEFAULT_LOCK_MS, Help, STILL_THERE_MS};

const V: &str = "visit-1";

/// A case: its name, the events, and what is expected of it.
type Case<T> = (&'static str, Vec<(u64, Event)>, T);

fn kiosk() -> Visit {
    Visit::new("Maple Clinic", "Exam 2", Timeouts::default())
}

fn feed(visit: &mut Visit, steps: &[(u64, Event)]) -> Vec<Effect> {
    steps.iter().flat_map(|(t, e)| visit.handle(e.clone(), *t)).collect()
}

fn sent(effects: &[Effect]) -> Vec<KioskToServer> {
    effects
        .iter()
        .filter_map(|e| if let Effect::Send(m) = e { Some(m.clone()) } else { None })
        .collect()
}

fn join() -> Event {
    Event::JoinPressed { visit_id: V.into() }
}

fn type_code(code: &str, at: u64) -> Vec<(u64, Event)> {
    let mut steps = vec![(at, Event::CodePressed)];
    steps.extend(code.bytes().map(|b| (at, Event::Digit(b - b'0'))));
    steps.push((at, Event::CodeOk { visit_id: V.into() }));
    steps
}

fn refused(reason: CodeRefusal, retry_after_secs: u32) -> Event {
    Event::Server(ServerToKiosk::CodeRefused { visit_id: V.into(), reason, retry_after_secs })
}

fn waiting(language: Language, code: Option<&str>) -> KioskToServer {
    KioskToServer::Waiting {
        visit_id: V.into(),
        clinic: "Maple Clinic".into(),
        room: "Exam 2".into(),
        language: Some(language),
        visit_code: code.map(str::to_string),
    }
}

#[test]
fn only_accept_on_the_consent_notice_queues_the_patient_and_not_now_goes_back_to_idle() {
    let table: [Case<bool>; 3] = [
        ("join shows consent", vec![(0, join())], false),
        ("consent declined", vec![(0, join()), (10, Event::ConsentDeclined)], false),
        ("consent accepted", vec![(0, join()), (10, Event::ConsentAccepted)], true),
    ];
    for (name, steps, queued) in table {
        let mut visit = kiosk();
        let effects = feed(&mut visit, &steps);
        assert_eq!(sent(&effects).is_empty(), !queued, "{name}: {effects:?}");
        assert!(!effects.iter().any(|e| matches!(e, Effect::StartMedia { .. })), "{name}");
        let expected = match name {
            "join shows consent" => matches!(visit.state(), State::Consent { .. }),
            "consent declined" => visit.state() == &State::Idle,
            _ => matches!(visit.state(), State::Waiting { .. }),
        };
        assert!(expected, "{name}: {:?}", visit.state());
    }
}

#[test]
fn a_visit_code_goes_through_consent_and_reaches_fleetd_with_the_waiting_message() {
    let mut visit = kiosk();
    let mut steps = type_code("123456", 0);
    steps.push((5, Event::ConsentAccepted));
    let effects = feed(&mut visit, &steps);
    assert_eq!(sent(&effects), [waiting(Language::En, Some("123456"))]);
    // Fewer than six digits: OK does nothing; a seventh digit is not taken.
    let mut visit = kiosk();
    feed(&mut visit, &type_code("12345", 0));
    assert_eq!(visit.state(), &State::CodeEntry { digits: "12345".into() });
    feed(&mut visit, &[(1, Event::Digit(6)), (1, Event::Digit(7)), (1, Event::DeleteDigit)]);
    assert_eq!(visit.state(), &State::CodeEntry { digits: "12345".into() });
}

#[test]
fn a_refused_code_returns_to_the_keypad_and_three_wrong_codes_lock_it_until_its_time() {
    let mut visit = kiosk();
    for (n, t) in [(1u32, 0u64), (2, 1000), (3, 2000)] {
        let mut steps = type_code("111111", t);
        steps.push((t, Event::ConsentAccepted));
        steps.push((t + 100, refused(CodeRefusal::Unknown, 0)));
        feed(&mut visit, &steps);
        assert_eq!(visit.state(), &State::CodeEntry { digits: String::new() }, "try {n}");
        assert_eq!(visit.patient().refusal, Some(CodeRefusal::Unknown));
        assert_eq!(visit.patient().code, None, "the refused code is forgotten");
        assert_eq!(visit.locked_until().is_some(), n == 3, "try {n}");
    }
    let until = visit.locked_until().unwrap_or_default();
    assert_eq!(until, 2100 + DEFAULT_LOCK_MS);
    // Locked: the keypad takes nothing, and an idle reset does not unlock it.
    feed(&mut visit, &[(3000, Event::Digit(1))]);
    assert_eq!(visit.state(), &State::CodeEntry { digits: String::new() });
    feed(&mut visit, &[(until - 1, Event::Tick)]);
    assert!(visit.locked_until().is_some());
    feed(&mut visit, &[(until, Event::Tick), (until, Event::Digit(4))]);
    assert_eq!(visit.locked_until(), None);
    assert_eq!(visit.state(), &State::CodeEntry { digits: "4".into() });
}

#[test]
fn fleetd_saying_too_many_tries_locks_the_keypad_for_the_time_it_gives() {
    let mut visit = kiosk();
    let mut steps = type_code("222222", 0);
    steps.extend([
        (0, Event::ConsentAccepted),
        (50, Event::Server(ServerToKiosk::Queued { visit_id: V.into(), ice: Default::default() })),
    ]);
    steps.push((100, refused(CodeRefusal::TooManyTries, 300)));
    let effects = feed(&mut visit, &steps);
    assert_eq!(visit.locked_until(), Some(100 + 300_000));
    assert!(effects.contains(&Effect::StopMedia), "the camera started for it is closed");
    assert!(!sent(&effects).iter().any(|m| matches!(m, KioskToServer::End { .. })));
}

#[test]
fn an_untouched_screen_before_a_visit_warns_then_resets_and_a_touch_keeps_it() {
    let idle = Timeouts::default().idle_ms;
    let table: [Case<bool>; 4] = [
        ("warning dismissed", vec![(idle + 1000, Event::StillHere)], false),
        ("warning expiring", vec![(idle + STILL_THERE_MS, Event::Tick)], true),
        ("a digit also dismisses it", vec![(idle + 1000, Event::Digit(3))], false),
        ("just before it expires", vec![(idle + STILL_THERE_MS - 1, Event::Tick)], false),
    ];
    for (name, more, reset) in table {
        let mut visit = kiosk();
        let mut steps = vec![(0, Event::LanguageToggled)];
        steps.extend(type_code("12", 0).into_iter().take(3));
        steps.push((idle, Event::Tick));
        feed(&mut visit, &steps);
        assert!(visit.patient().warning_since.is_some(), "{name}: no warning");
        feed(&mut visit, &more);
        if reset {
            assert_eq!(visit.state(), &State::Idle, "{name}");
            assert_eq!(visit.patient().language, Language::En, "{name}: language kept");
        } else {
            assert!(matches!(visit.state(), State::CodeEntry { .. }), "{name}");
            assert_eq!(visit.patient().language, Language::Es, "{name}");
        }
        assert_eq!(visit.patient().warning_since.is_some(), !reset && more[0].1 == Event::Tick);
    }
}

#[test]
fn idle_in_another_language_resets_but_waiting_and_plain_idle_never_do() {
    let idle = Timeouts::default().idle_ms;
    let mut visit = kiosk();
    feed(&mut visit, &[(0, Event::LanguageToggled), (idle, Event::Tick)]);
    feed(&mut visit, &[(idle + STILL_THERE_MS, Event::Tick)]);
    assert_eq!(visit.patient().language, Language::En);
    // Plain idle: nothing to warn about.
    feed(&mut visit, &[(10 * idle, Event::Tick)]);
    assert_eq!(visit.patient().warning_since, None);
    // Waiting: never.
    let mut visit = kiosk();
    feed(&mut visit, &[(0, join()), (0, Event::ConsentAccepted), (idle * 3, Event::Tick)]);
    assert_eq!(visit.patient().warning_since, None);
    assert!(matches!(visit.state(), State::Waiting { .. }));
}

#[test]
fn a_language_switched_mid_flow_reaches_the_queue_and_is_reset_after_the_visit() {
    let mut visit = kiosk();
    let effects =
        feed(&mut visit, &[(0, join()), (1, Event::LanguageToggled), (2, Event::ConsentAccepted)]);
    assert_eq!(sent(&effects), [waiting(Language::Es, None)]);
    // In a visit the language stays.
    feed(&mut visit, &[(3, Event::LanguageToggled)]);
    assert_eq!(visit.patient().language, Language::Es);
    let t = Timeouts::default();
    feed(&mut visit, &[(10, Event::CancelPressed)]);
    assert_eq!(visit.patient().language, Language::Es, "the Ended screen is still theirs");
    feed(&mut visit, &[(10 + t.ended_ms, Event::Tick)]);
    assert!(matches!(visit.state(), State::Cleaning { .. }));
    assert_eq!(visit.patient().language, Language::En);
    // The clinic's default language is what the kiosk returns to.
    let mut visit = kiosk();
    visit.set_patient_defaults(Language::Es, 60);
    assert_eq!((visit.patient().language, visit.patient().volume_pct), (Language::Es, 60));
}

#[test]
fn a_config_with_one_language_offers_no_switch_and_ignores_a_press() {
    let mut visit = kiosk();
    assert!(visit.language_choice(), "two languages by default");
    visit.set_languages(&[Language::En]);
    assert!(!visit.language_choice());
    feed(&mut visit, &[(0, Event::LanguageToggled)]);
    assert_eq!(visit.patient().language, Language::En);
    visit.set_languages(&[Language::En, Language::Es]);
    feed(&mut visit, &[(1, Event::LanguageToggled)]);
    assert_eq!(visit.patient().language, Language::Es);
}

#[test]
fn help_tells_fleetd_with_the_visit_in_progress_or_a_fresh_id_and_shows_staff_coming() {
    let mut visit = kiosk();
    let effects = feed(&mut visit, &[(0, Event::HelpPressed { visit_id: "fresh".into() })]);
    assert_eq!(sent(&effects), [KioskToServer::Help { visit_id: "fresh".into() }]);
    assert_eq!(visit.patient().help, Help::Told);
    let again = feed(&mut visit, &[(1, Event::HelpPressed { visit_id: "other".into() })]);
    assert!(again.is_empty(), "one alert while staff have not answered: {again:?}");
    feed(&mut visit, &[(5, Event::Server(ServerToKiosk::HelpComing { visit_id: "fresh".into() }))]);
    assert_eq!(visit.patient().help, Help::Coming);
    // Still stuck after staff answered: the patient can call again.
    let again = feed(&mut visit, &[(9, Event::HelpPressed { visit_id: "later".into() })]);
    assert_eq!(sent(&again), [KioskToServer::Help { visit_id: "later".into() }]);

    let mut visit = kiosk();
    let steps = [
        (0, join()),
        (0, Event::ConsentAccepted),
        (5, Event::HelpPressed { visit_id: "fresh".into() }),
    ];
    let effects = feed(&mut visit, &steps);
    assert_eq!(sent(&effects)[1], KioskToServer::Help { visit_id: V.into() });
    assert!(matches!(visit.state(), State::Waiting { .. }), "help does not end the visit");
}

#[test]
fn end_in_a_call_asks_first_and_no_stay_keeps_the_call() {
    let into_call = [
        (0, join()),
        (0, Event::ConsentAccepted),
        (100, Event::LocalOffer { sdp: "v=0\r\n".into(), key: crate::visit::tests::kiosk_key() }),
        (
            200,
            Event::Server(ServerToKiosk::Accepted { visit_id: V.into(), clinician: "dr".into() }),
        ),
        (300, Event::MediaConnected),
    ];
    let table = [
        ("End alone", vec![(1000, Event::EndPressed)], None, true),
        ("No, stay", vec![(1000, Event::EndPressed), (1100, Event::EndDeclined)], None, false),
        (
            "Yes, end",
            vec![(1000, Event::EndPressed), (1100, Event::EndConfirmed)],
            Some(EndReason::PatientEnded),
            false,
        ),
    ];
    for (name, more, ended, asking) in table {
        let mut visit = kiosk();
        feed(&mut visit, &into_call);
        let effects = feed(&mut visit, &more);
        let reason = match visit.state() {
            State::Ended { reason, .. } => Some(*reason),
            _ => None,
        };
        assert_eq!(reason, ended, "{name}");
        assert_eq!(visit.patient().confirm_end, asking, "{name}");
        assert_eq!(effects.contains(&Effect::StopMedia), ended.is_some(), "{name}");
    }
}

#[test]
fn between_patients_the_cleaning_prompt_shows_and_everything_of_the_visit_is_wiped() {
    let t = Timeouts::default();
    let mut visit = kiosk();
    let mut steps = vec![(0, Event::LanguageToggled), (0, Event::LargerTextToggled)];
    steps.extend(type_code("654321", 0));
    steps.extend([
        (0, Event::ConsentAccepted),
        (1, Event::Server(ServerToKiosk::Position { visit_id: V.into(), ahead: 2 })),
        (2, Event::SelfViewToggled),
        (3, Event::HelpPressed { visit_id: "x".into() }),
    ]);
    feed(&mut visit, &steps);
    assert_eq!(visit.patient().position, Some(2));
    feed(&mut visit, &[(10, Event::CancelPressed)]);
    assert_eq!((visit.patient().code.as_deref(), visit.patient().position), (None, None));
    feed(&mut visit, &[(10 + t.ended_ms, Event::Tick)]);
    assert_eq!(visit.state(), &State::Cleaning { until_ms: 10 + t.ended_ms + t.cleaning_ms });
    let fresh = super::Patient::new(Language::En, 80, 10 + t.ended_ms);
    assert_eq!(visit.patient(), &fresh);
    feed(&mut visit, &[(10 + t.ended_ms + t.cleaning_ms, Event::Tick)]);
    assert_eq!(visit.state(), &State::Idle);
}

#[test]
fn volume_moves_in_steps_of_ten_within_zero_to_a_hundred_during_a_visit_only() {
    let mut visit = kiosk();
    assert!(feed(&mut visit, &[(0, Event::VolumeUp)]).is_empty(), "no visit: nothing to do");
    feed(&mut visit, &[(0, join()), (0, Event::ConsentAccepted)]);
    let ups = feed(&mut visit, &[(1, Event::VolumeUp), (2, Event::VolumeUp), (3, Event::VolumeUp)]);
    assert_eq!(ups, [Effect::SetVolume(90), Effect::SetVolume(100), Effect::SetVolume(100)]);
    let downs: Vec<Effect> =
        (0..12).flat_map(|i| visit.handle(Event::VolumeDown, 10 + i)).collect();
    assert_eq!(downs.last(), Some(&Effect::SetVolume(0)));
}

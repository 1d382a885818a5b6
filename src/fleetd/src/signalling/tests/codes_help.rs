//! Router requirements of issue 12: the patient's language reaches the queue; a visit-code
//! visit waits for its clinician only and gives its code back if it ends before anyone joined;
//! waiting kiosks are told their place; calls for help reach the clinic's staff, and an answer
//! reaches the kiosk.

use telekiosk_protocol::config::Language;
use telekiosk_protocol::console::HelpAlert;
use telekiosk_protocol::visit::CodeRefusal;

use super::*;

fn waiting_lang(
    device_id: &str,
    visit_id: &str,
    clinic: &str,
    language: Option<Language>,
) -> Input {
    let msg = K2S::Waiting {
        visit_id: visit_id.into(),
        clinic: clinic.into(),
        room: "2".into(),
        language,
        visit_code: None,
    };
    kiosk(device_id, msg)
}
/// A visit of North's kiosk whose code (made by `clinician`) the hub took up; Spanish.
fn with_code(device_id: &str, visit_id: &str, clinician: &str) -> Input {
    Input::CodeWaiting {
        device_id: device_id.into(),
        visit_id: visit_id.into(),
        clinic: "North".into(),
        room: "2".into(),
        language: Some(Language::Es),
        code_id: "vc-1".into(),
        clinician: clinician.into(),
    }
}
fn row(
    visit_id: &str,
    device_id: &str,
    secs: u64,
    language: Option<Language>,
    for_you: bool,
) -> WaitingVisit {
    WaitingVisit {
        visit_id: visit_id.into(),
        device_id: device_id.into(),
        clinic: "North".into(),
        room: "2".into(),
        waiting_secs: secs,
        language,
        for_you,
    }
}
fn rows(conn: u64, rows: Vec<WaitingVisit>) -> Output {
    to_console(conn, S2C::Queue { waiting: rows })
}
fn release(visit_id: &str) -> Output {
    Output::ReleaseCode { code_id: "vc-1".into(), visit_id: visit_id.into() }
}
fn accepted(device_id: &str, visit_id: &str, clinician: &str) -> Output {
    to_kiosk(device_id, S2K::Accepted { visit_id: visit_id.into(), clinician: clinician.into() })
}
fn position(device_id: &str, visit_id: &str, ahead: u32) -> Output {
    to_kiosk(device_id, S2K::Position { visit_id: visit_id.into(), ahead })
}
fn help_asked(device_id: &str, visit_id: &str, clinic: &str) -> Input {
    let place = Some((clinic.to_string(), "2".to_string()));
    Input::KioskHelp { device_id: device_id.into(), visit_id: visit_id.into(), place }
}
fn alerts(conn: u64, open: &[(&str, &str, u64)]) -> Output {
    let alerts = open.iter().map(|&(visit_id, device_id, waiting_secs)| HelpAlert {
        visit_id: visit_id.into(),
        device_id: device_id.into(),
        clinic: "North".into(),
        room: "2".into(),
        waiting_secs,
    });
    to_console(conn, S2C::Help { alerts: alerts.collect() })
}

#[test]
fn the_language_a_patient_chose_is_in_their_queue_entry() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (
            1,
            waiting_lang("kiosk-a", "v1", "North", Some(Language::Es)),
            vec![rows(1, vec![row("v1", "kiosk-a", 0, Some(Language::Es), false)])],
        ),
        // The same visit said again in English: the entry follows.
        (
            3,
            waiting_lang("kiosk-a", "v1", "North", Some(Language::En)),
            vec![rows(1, vec![row("v1", "kiosk-a", 2, Some(Language::En), false)])],
        ),
    ]);
}

#[test]
fn a_visit_code_visit_is_listed_for_its_clinician_only_and_only_they_join_it() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, connect(2, "bob"), vec![queue(2, &[])]),
        // Bob's console is not told anything: the visit is not his.
        (
            1,
            with_code("kiosk-a", "v1", "alice"),
            vec![rows(1, vec![row("v1", "kiosk-a", 0, Some(Language::Es), true)])],
        ),
        (2, join(2, "v1"), vec![error(2, WAITS_FOR_ANOTHER)]),
        (
            3,
            join(1, "v1"),
            vec![joined(1, "v1"), accepted("kiosk-a", "v1", "alice"), queue(1, &[])],
        ),
    ]);
}

#[test]
fn a_visit_code_comes_back_if_its_visit_ends_before_anyone_joined_and_not_after() {
    let cancel =
        |visit: &str, reason| kiosk("kiosk-a", K2S::End { visit_id: visit.into(), reason });
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (
            1,
            with_code("kiosk-a", "v1", "alice"),
            vec![rows(1, vec![row("v1", "kiosk-a", 0, Some(Language::Es), true)])],
        ),
        (5, cancel("v1", EndReason::PatientCancelled), vec![release("v1"), queue(1, &[])]),
        // The patient tries again with the same code; this time the clinician joins.
        (
            6,
            with_code("kiosk-a", "v2", "alice"),
            vec![rows(1, vec![row("v2", "kiosk-a", 0, Some(Language::Es), true)])],
        ),
        (
            7,
            join(1, "v2"),
            vec![joined(1, "v2"), accepted("kiosk-a", "v2", "alice"), queue(1, &[])],
        ),
        (9, cancel("v2", EndReason::PatientEnded), vec![ended(1, "v2", EndReason::PatientEnded)]),
    ]);
}

#[test]
fn a_kiosk_that_goes_offline_while_waiting_with_a_code_gives_it_back() {
    run(vec![
        (0, with_code("kiosk-a", "v1", "alice"), vec![]),
        (5, offline("kiosk-a"), vec![release("v1")]),
    ]);
}

#[test]
fn a_visit_code_that_reaches_the_router_unchecked_is_refused_and_not_queued() {
    let msg = K2S::Waiting {
        visit_id: "v1".into(),
        clinic: "North".into(),
        room: "2".into(),
        language: None,
        visit_code: Some("123456".into()),
    };
    let refused = S2K::CodeRefused {
        visit_id: "v1".into(),
        reason: CodeRefusal::Unknown,
        retry_after_secs: 0,
    };
    let notes = run_all(
        vec![
            (0, connect(1, "alice"), vec![queue(1, &[])]),
            (1, kiosk("kiosk-a", msg), vec![to_kiosk("kiosk-a", refused)]),
        ],
        true,
    );
    assert!(notes.iter().all(|n| !n.what.contains("123456")), "{notes:?}");
}

#[test]
fn each_waiting_kiosk_is_told_its_place_whenever_it_changes() {
    let only_positions =
        |o: &Output| matches!(o, Output::ToKiosk { msg: S2K::Position { .. }, .. });
    run_only(
        vec![
            (0, connect(1, "alice"), vec![]),
            (1, waiting("kiosk-a", "v1"), vec![position("kiosk-a", "v1", 0)]),
            (2, waiting("kiosk-b", "v2"), vec![position("kiosk-b", "v2", 1)]),
            // Another clinic's queue is its own.
            (3, waiting_lang("kiosk-s", "v3", "South", None), vec![position("kiosk-s", "v3", 0)]),
            // A visit-code visit waits for its own clinician: next, and behind no one.
            (4, with_code("kiosk-c", "v4", "alice"), vec![position("kiosk-c", "v4", 0)]),
            (5, waiting("kiosk-d", "v5"), vec![position("kiosk-d", "v5", 2)]),
            // Said again: the kiosk is told again (it may have lost its screen).
            (6, waiting("kiosk-d", "v5"), vec![position("kiosk-d", "v5", 2)]),
            // The first is taken: everyone behind it moves up; the one taken is told nothing.
            (7, join(1, "v1"), vec![position("kiosk-b", "v2", 0), position("kiosk-d", "v5", 1)]),
            (8, offline("kiosk-b"), vec![position("kiosk-d", "v5", 0)]),
        ],
        only_positions,
    );
}

#[test]
fn a_call_for_help_reaches_the_clinics_staff_and_their_answer_reaches_the_kiosk() {
    let south = Scope::new(Role::Clinician, ["South"]);
    let admin = Scope::new(Role::FleetAdmin, Vec::<String>::new());
    let technician = Scope::new(Role::Technician, ["North"]);
    let notes = run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, connect_as(2, "sam", south), vec![queue(2, &[])]),
        (0, connect_as(3, "root", admin), vec![error(3, MAY_NOT_JOIN)]),
        (10, help_asked("kiosk-a", "h1", "North"), vec![alerts(1, &[("h1", "kiosk-a", 0)])]),
        // Asked again: still one call, as old as the first.
        (20, help_asked("kiosk-a", "h1", "North"), vec![]),
        // A console that connects later sees the open call at once.
        (
            70,
            connect_as(4, "tess", technician),
            vec![error(4, MAY_NOT_JOIN), alerts(4, &[("h1", "kiosk-a", 60)])],
        ),
        // Another clinic's clinician may not answer it.
        (
            80,
            console(2, C2S::AnswerHelp { visit_id: "h1".into() }),
            vec![error(2, help::HELP_GONE)],
        ),
        (
            90,
            console(1, C2S::AnswerHelp { visit_id: "h1".into() }),
            vec![
                to_kiosk("kiosk-a", S2K::HelpComing { visit_id: "h1".into() }),
                alerts(1, &[]),
                alerts(4, &[]),
            ],
        ),
        (
            95,
            console(4, C2S::AnswerHelp { visit_id: "h1".into() }),
            vec![error(4, help::HELP_GONE)],
        ),
    ]);
    let asked: Vec<_> =
        notes.iter().filter(|n| n.what.starts_with("kiosk asked for staff help")).collect();
    let levels: Vec<_> = asked.iter().map(|n| n.level).collect();
    assert_eq!(levels, [NoteLevel::Audit, NoteLevel::Debug], "asked twice, audited once");
    let asked = asked[0];
    assert_eq!(asked.what, "kiosk asked for staff help (North / 2)");
    assert_eq!(hub::entry_of(asked).action, crate::audit::HELP_REQUESTED);
    assert_eq!(hub::entry_of(asked).actor, "device:kiosk-a");
    let answered = notes.iter().find(|n| n.what.starts_with("staff answered")).unwrap();
    assert_eq!(answered.user.as_deref(), Some("alice"));
    assert_eq!(hub::entry_of(answered).action, crate::audit::HELP_ANSWERED);
}

#[test]
fn an_unanswered_call_for_help_is_dropped_after_30_minutes() {
    let half_hour = help::HELP_EXPIRES.as_secs();
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, help_asked("kiosk-a", "h1", "North"), vec![alerts(1, &[("h1", "kiosk-a", 0)])]),
        (half_hour - 1, Input::Tick, vec![]),
        (half_hour, Input::Tick, vec![alerts(1, &[])]),
    ]);
}

#[test]
fn a_call_for_help_without_a_registry_place_takes_its_visits_place_or_is_dropped() {
    let help = |device: &str, visit: &str| kiosk(device, K2S::Help { visit_id: visit.into() });
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, help("kiosk-x", "h0"), vec![]),
        (2, waiting("kiosk-a", "v1"), vec![queue(1, &[("v1", "kiosk-a", 0)])]),
        (3, help("kiosk-a", "v1"), vec![alerts(1, &[("v1", "kiosk-a", 0)])]),
    ]);
}

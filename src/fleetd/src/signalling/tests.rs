//! Router requirements, each written as a table of steps: at second `t`, input → the exact
//! messages sent (log notes are checked separately).

use std::time::{Duration, Instant};

use telekiosk_protocol::console::{ConsoleToServer as C2S, ServerToConsole as S2C, WaitingVisit};
use telekiosk_protocol::device::DeviceState;
use telekiosk_protocol::visit::{
    EndReason, Ice, IceSettings, KioskToServer as K2S, ServerToKiosk as S2K,
};
use telekiosk_protocol::{DecodeError, decode};

use super::*;
use crate::access::Role;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=SECRET-SDP\r\n";
const CANDIDATE: &str = "candidate:1 1 UDP 2122 192.0.2.7 5000 typ host SECRET";

/// One row: at second `t`, feed `input`; expect exactly `sent` (notes excluded).
type Step = (u64, Input, Vec<Output>);

/// Runs the steps on a fresh router; returns every note written. `Queued` and `Position`
/// replies to kiosks are left out of the comparison (they have their own tests).
fn run(steps: Vec<Step>) -> Vec<Note> {
    run_all(steps, false)
}

fn run_all(steps: Vec<Step>, with_queued: bool) -> Vec<Note> {
    let position = |o: &Output| matches!(o, Output::ToKiosk { msg: S2K::Position { .. }, .. });
    run_only(steps, |o| {
        let queued = matches!(o, Output::ToKiosk { msg: S2K::Queued { .. }, .. });
        !position(o) && (with_queued || !queued)
    })
}

/// Runs the steps on a fresh router, comparing only the messages `keep` keeps; returns every
/// note written.
fn run_only(steps: Vec<Step>, keep: impl Fn(&Output) -> bool) -> Vec<Note> {
    let t0 = Instant::now();
    let mut router = Router::new();
    let mut notes = Vec::new();
    for (n, (t, input, sent)) in steps.into_iter().enumerate() {
        let label = format!("step {n} ({input:?})");
        let (got_notes, got): (Vec<_>, Vec<_>) = router
            .handle(input, t0 + Duration::from_secs(t))
            .into_iter()
            .partition(|o| matches!(o, Output::Note(_)));
        let got: Vec<Output> = got.into_iter().filter(&keep).collect();
        assert_eq!(got, sent, "{label}");
        notes.extend(got_notes.into_iter().map(|o| match o {
            Output::Note(note) => note,
            _ => unreachable!(),
        }));
    }
    notes
}

fn kiosk(device_id: &str, msg: K2S) -> Input {
    Input::FromKiosk { device_id: device_id.into(), msg: Ok(msg) }
}
fn waiting(device_id: &str, visit_id: &str) -> Input {
    let msg = K2S::Waiting {
        visit_id: visit_id.into(),
        clinic: "North".into(),
        room: "2".into(),
        language: None,
        visit_code: None,
    };
    kiosk(device_id, msg)
}
fn kiosk_garbage(device_id: &str) -> Input {
    Input::FromKiosk { device_id: device_id.into(), msg: decode::<K2S>(b"{\"type\":\"offer\"") }
}
fn offline(device_id: &str) -> Input {
    Input::KioskPresence { device_id: device_id.into(), state: Ok(DeviceState::offline()) }
}
/// A clinician of "North", the clinic of [`waiting`]'s kiosks.
fn connect(conn: u64, user: &str) -> Input {
    connect_as(conn, user, Scope::new(Role::Clinician, ["North"]))
}
fn connect_as(conn: u64, user: &str, scope: Scope) -> Input {
    Input::ConsoleConnected { conn: ConnId(conn), user: user.into(), scope }
}
fn console(conn: u64, msg: C2S) -> Input {
    Input::FromConsole { conn: ConnId(conn), msg: Ok(msg) }
}
fn console_garbage(conn: u64, e: DecodeError) -> Input {
    Input::FromConsole { conn: ConnId(conn), msg: Err(e) }
}
fn join(conn: u64, visit_id: &str) -> Input {
    console(conn, C2S::Join { visit_id: visit_id.into() })
}
fn gone(conn: u64) -> Input {
    Input::ConsoleDisconnected { conn: ConnId(conn) }
}
fn ice() -> Ice {
    Ice { mline: 0, candidate: CANDIDATE.into() }
}

fn to_kiosk(device_id: &str, msg: S2K) -> Output {
    Output::ToKiosk { device_id: device_id.into(), msg }
}
fn to_console(conn: u64, msg: S2C) -> Output {
    Output::ToConsole { conn: ConnId(conn), msg }
}
/// The queue as sent to `conn`: `(visit_id, device_id, waiting_secs)` in arrival order.
fn queue(conn: u64, rows: &[(&str, &str, u64)]) -> Output {
    let waiting = rows.iter().map(|&(visit_id, device_id, waiting_secs)| WaitingVisit {
        visit_id: visit_id.into(),
        device_id: device_id.into(),
        clinic: "North".into(),
        room: "2".into(),
        waiting_secs,
        language: None,
        for_you: false,
    });
    to_console(conn, S2C::Queue { waiting: waiting.collect() })
}
fn joined(conn: u64, visit_id: &str) -> Output {
    to_console(
        conn,
        S2C::Joined {
            visit_id: visit_id.into(),
            clinic: "North".into(),
            room: "2".into(),
            ice: IceSettings::default(),
        },
    )
}
fn ended(conn: u64, visit_id: &str, reason: EndReason) -> Output {
    to_console(conn, S2C::Ended { visit_id: visit_id.into(), reason })
}
fn end_kiosk(device_id: &str, visit_id: &str, reason: EndReason) -> Output {
    to_kiosk(device_id, S2K::End { visit_id: visit_id.into(), reason })
}
fn error(conn: u64, message: &str) -> Output {
    to_console(conn, S2C::Error { message: message.into() })
}

/// Console 1 (alice) owns v1 of kiosk-a; console 2 (bob) is connected too.
fn in_call() -> Vec<Step> {
    vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, connect(2, "bob"), vec![queue(2, &[])]),
        (
            1,
            waiting("kiosk-a", "v1"),
            vec![queue(1, &[("v1", "kiosk-a", 0)]), queue(2, &[("v1", "kiosk-a", 0)])],
        ),
        (
            5,
            join(1, "v1"),
            vec![
                joined(1, "v1"),
                to_kiosk(
                    "kiosk-a",
                    S2K::Accepted { visit_id: "v1".into(), clinician: "alice".into() },
                ),
                queue(1, &[]),
                queue(2, &[]),
            ],
        ),
    ]
}

fn then(mut steps: Vec<Step>, more: Vec<Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}

#[test]
fn a_waiting_kiosk_is_queued_and_every_console_sees_it_with_its_waiting_time() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (10, waiting("kiosk-a", "v1"), vec![queue(1, &[("v1", "kiosk-a", 0)])]),
        (
            12,
            waiting("kiosk-b", "v2"),
            vec![queue(1, &[("v1", "kiosk-a", 2), ("v2", "kiosk-b", 0)])],
        ),
        (40, connect(2, "bob"), vec![queue(2, &[("v1", "kiosk-a", 30), ("v2", "kiosk-b", 28)])]),
    ]);
}

#[test]
fn waiting_again_replaces_the_older_visit_of_the_same_kiosk() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, waiting("kiosk-a", "v1"), vec![queue(1, &[("v1", "kiosk-a", 0)])]),
        (3, waiting("kiosk-a", "v1"), vec![]),
        (4, waiting("kiosk-a", "v2"), vec![queue(1, &[("v2", "kiosk-a", 0)])]),
    ]);
}

#[test]
fn joining_a_waiting_visit_makes_the_console_its_owner_and_tells_the_kiosk() {
    run(in_call());
}

#[test]
fn a_whole_visit_relays_offer_answer_and_candidates_between_kiosk_and_owner_only() {
    let sdp = || SDP.to_string();
    run(then(
        in_call(),
        vec![
            (6, offer("v1"), vec![offer_out(1, "v1")]),
            (
                6,
                kiosk("kiosk-a", K2S::Ice { visit_id: "v1".into(), ice: ice() }),
                vec![to_console(1, S2C::Ice { visit_id: "v1".into(), ice: ice() })],
            ),
            (
                7,
                console(1, C2S::Answer { visit_id: "v1".into(), sdp: sdp(), e2ee: ckey() }),
                vec![to_kiosk(
                    "kiosk-a",
                    S2K::Answer { visit_id: "v1".into(), sdp: sdp(), e2ee: ckey() },
                )],
            ),
            (
                7,
                console(1, C2S::Ice { visit_id: "v1".into(), ice: ice() }),
                vec![to_kiosk("kiosk-a", S2K::Ice { visit_id: "v1".into(), ice: ice() })],
            ),
            (
                90,
                console(1, C2S::End { visit_id: "v1".into() }),
                vec![
                    end_kiosk("kiosk-a", "v1", EndReason::ClinicianEnded),
                    ended(1, "v1", EndReason::ClinicianEnded),
                ],
            ),
            (91, join(1, "v1"), vec![error(1, NO_LONGER_WAITING)]),
        ],
    ));
}

#[test]
fn a_second_clinician_joining_the_same_visit_gets_already_taken() {
    run(then(
        in_call(),
        vec![(6, join(2, "v1"), vec![to_console(2, S2C::AlreadyTaken { visit_id: "v1".into() })])],
    ));
}

#[test]
fn joining_an_unknown_visit_says_it_is_no_longer_waiting() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, join(1, "nope"), vec![error(1, NO_LONGER_WAITING)]),
    ]);
}

#[test]
fn a_console_already_in_a_visit_cannot_join_another() {
    run(then(
        in_call(),
        vec![
            (
                6,
                waiting("kiosk-b", "v2"),
                vec![queue(1, &[("v2", "kiosk-b", 0)]), queue(2, &[("v2", "kiosk-b", 0)])],
            ),
            (7, join(1, "v2"), vec![error(1, ALREADY_IN_A_VISIT)]),
        ],
    ));
}

#[test]
fn answer_ice_and_end_from_a_console_that_does_not_own_the_visit_are_refused() {
    run(then(
        in_call(),
        vec![
            (
                6,
                console(2, C2S::Answer { visit_id: "v1".into(), sdp: SDP.into(), e2ee: ckey() }),
                vec![error(2, NOT_YOUR_VISIT)],
            ),
            (
                6,
                console(2, C2S::Ice { visit_id: "v1".into(), ice: ice() }),
                vec![error(2, NOT_YOUR_VISIT)],
            ),
            (6, console(2, C2S::End { visit_id: "v1".into() }), vec![error(2, NOT_YOUR_VISIT)]),
            (
                6,
                console(2, C2S::End { visit_id: "unknown".into() }),
                vec![error(2, NOT_YOUR_VISIT)],
            ),
        ],
    ));
}

#[test]
fn a_late_ice_candidate_for_an_ended_visit_is_dropped_without_an_error() {
    // The console's last candidates cross fleetd's "ended": no error replaces the end's reason.
    let end = K2S::End { visit_id: "v1".into(), reason: EndReason::SecurityCheckFailed };
    run(then(
        in_call(),
        vec![
            (9, kiosk("kiosk-a", end), vec![ended(1, "v1", EndReason::SecurityCheckFailed)]),
            (9, console(1, C2S::Ice { visit_id: "v1".into(), ice: ice() }), vec![]),
        ],
    ));
}

#[test]
fn kiosk_end_tells_the_owning_console_why_and_removes_the_visit() {
    let end = K2S::End { visit_id: "v1".into(), reason: EndReason::PatientEnded };
    run(then(
        in_call(),
        vec![
            (9, kiosk("kiosk-a", end), vec![ended(1, "v1", EndReason::PatientEnded)]),
            (10, join(2, "v1"), vec![error(2, NO_LONGER_WAITING)]),
        ],
    ));
}

#[test]
fn a_failed_security_check_ends_the_visit_on_both_sides_and_is_audited() {
    use telekiosk_protocol::e2ee::SecurityCheck::KioskSignature;
    let (v1, confirm) = (|| "v1".to_string(), "k".repeat(22));
    let relayed = S2C::KeyConfirm { visit_id: v1(), confirm: confirm.clone() };
    let refused = C2S::SecurityRefused { visit_id: v1(), check: KioskSignature };
    let why = EndReason::SecurityCheckFailed;
    let notes = run(then(
        in_call(),
        vec![
            (
                8,
                kiosk("kiosk-a", K2S::KeyConfirm { visit_id: v1(), confirm }),
                vec![to_console(1, relayed)],
            ),
            (9, console(1, refused), vec![end_kiosk("kiosk-a", "v1", why), ended(1, "v1", why)]),
        ],
    ));
    let audit = notes.iter().find(|n| n.what.contains("security check failed")).expect("audited");
    let who = (audit.level, audit.user.as_deref());
    assert_eq!(who, (NoteLevel::Audit, Some("alice")));
    assert!(audit.what.contains("not signed by its enrolled device key"), "{}", audit.what);
    let end = K2S::End { visit_id: "v1".into(), reason: why };
    let notes = run(then(in_call(), vec![(9, kiosk("kiosk-a", end), vec![ended(1, "v1", why)])]));
    assert!(notes.iter().any(|n| n.level == NoteLevel::Audit
        && n.what.contains("kiosk refused the visit: end-to-end security check failed")));
}

#[test]
fn a_patient_cancelling_while_waiting_leaves_the_queue() {
    let end = K2S::End { visit_id: "v1".into(), reason: EndReason::PatientCancelled };
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, waiting("kiosk-a", "v1"), vec![queue(1, &[("v1", "kiosk-a", 0)])]),
        (3, kiosk("kiosk-a", end), vec![queue(1, &[])]),
    ]);
}

fn offer(visit_id: &str) -> Input {
    kiosk("kiosk-a", K2S::Offer { visit_id: visit_id.into(), sdp: SDP.into(), e2ee: kkey() })
}
fn offer_out(conn: u64, visit_id: &str) -> Output {
    to_console(
        conn,
        S2C::Offer {
            visit_id: visit_id.into(),
            sdp: SDP.into(),
            e2ee: kkey(),
            device_key: String::new(),
        },
    )
}

#[test]
fn a_malformed_console_message_is_refused_and_ends_the_visit_it_owns() {
    let e =
        decode::<C2S>(b"{\"type\":\"answer\",\"visit_id\":\"v1\",\"sdp\":\"nope\"}").unwrap_err();
    let message = format!("Your last message was refused: {e}");
    run(then(
        in_call(),
        vec![(
            8,
            console_garbage(1, e),
            vec![
                error(1, &message),
                end_kiosk("kiosk-a", "v1", EndReason::ProtocolError),
                ended(1, "v1", EndReason::ProtocolError),
            ],
        )],
    ));
}

#[test]
fn a_malformed_console_message_outside_a_visit_is_only_refused() {
    let e = decode::<C2S>(b"not json").unwrap_err();
    let message = format!("Your last message was refused: {e}");
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, console_garbage(1, e), vec![error(1, &message)]),
    ]);
}

#[test]
fn a_malformed_kiosk_message_ends_its_visit_on_both_sides() {
    run(then(
        in_call(),
        vec![(
            8,
            kiosk_garbage("kiosk-a"),
            vec![
                end_kiosk("kiosk-a", "v1", EndReason::ProtocolError),
                ended(1, "v1", EndReason::ProtocolError),
            ],
        )],
    ));
}

#[test]
fn a_kiosk_message_for_a_visit_it_does_not_have_is_ignored() {
    let offer = K2S::Offer { visit_id: "v1".into(), sdp: SDP.into(), e2ee: kkey() };
    let end = K2S::End { visit_id: "v1".into(), reason: EndReason::PatientEnded };
    run(then(
        in_call(),
        vec![(8, kiosk("kiosk-b", offer), vec![]), (8, kiosk("kiosk-b", end), vec![])],
    ));
}

#[test]
fn a_kiosk_cannot_claim_another_kiosks_visit_id() {
    run(then(
        in_call(),
        vec![(
            8,
            waiting("kiosk-b", "v1"),
            vec![end_kiosk("kiosk-b", "v1", EndReason::ProtocolError)],
        )],
    ));
}

#[test]
fn a_kiosk_waiting_again_mid_call_ends_the_call_and_requeues_the_patient() {
    run(then(
        in_call(),
        vec![(
            8,
            waiting("kiosk-a", "v1"),
            vec![
                ended(1, "v1", EndReason::ConnectionLost),
                queue(1, &[("v1", "kiosk-a", 7)]),
                queue(2, &[("v1", "kiosk-a", 7)]),
            ],
        )],
    ));
}

#[test]
fn an_offer_with_no_owning_console_is_dropped() {
    let offer = K2S::Offer { visit_id: "v1".into(), sdp: SDP.into(), e2ee: kkey() };
    let notes =
        run(vec![(0, waiting("kiosk-a", "v1"), vec![]), (1, kiosk("kiosk-a", offer), vec![])]);
    assert!(
        notes.iter().any(|n| n.level == NoteLevel::Warn && n.what.contains("dropped")),
        "{notes:?}"
    );
}

#[test]
fn notes_name_who_and_which_visit_but_never_carry_sdp_or_candidates() {
    let steps = then(
        in_call(),
        vec![
            (
                6,
                kiosk(
                    "kiosk-a",
                    K2S::Offer { visit_id: "v1".into(), sdp: SDP.into(), e2ee: kkey() },
                ),
                vec![to_console(
                    1,
                    S2C::Offer {
                        visit_id: "v1".into(),
                        sdp: SDP.into(),
                        e2ee: kkey(),
                        device_key: String::new(),
                    },
                )],
            ),
            (
                7,
                console(1, C2S::Ice { visit_id: "v1".into(), ice: ice() }),
                vec![to_kiosk("kiosk-a", S2K::Ice { visit_id: "v1".into(), ice: ice() })],
            ),
        ],
    );
    let notes = run(steps);
    let joined = notes.iter().find(|n| n.what == "clinician joined").expect("join is audited");
    assert_eq!((joined.user.as_deref(), joined.visit_id.as_deref()), (Some("alice"), Some("v1")));
    assert!(notes.iter().all(|n| !format!("{n:?}").contains("SECRET")), "{notes:?}");
}

#[test]
fn redacted_decode_errors_keep_the_reason_but_not_quoted_values() {
    let e = decode::<C2S>(b"{\"type\":\"ice\",\"visit_id\":\"v1\",\"ice\":{\"mline\":\"SECRET\",\"candidate\":\"x\"}}").unwrap_err();
    let line = redact(&e);
    assert!(line.starts_with("wrong type"), "{line}");
    assert!(!line.contains("SECRET"), "{line}");
}

/// serde quotes unknown variants and fields in backticks, newlines and all (review M7): none
/// of it reaches the log line or the audit record, only the class (and the position, when
/// serde gives one: it does not for tagged messages).
#[test]
fn backticked_attacker_text_with_a_newline_never_reaches_a_note() {
    let forged = r"x`\nINFO fleetd::audit: user=admin signed in\n`";
    for body in [
        format!("{{\"type\":\"{forged}\",\"visit_id\":\"v1\"}}"),
        format!("{{\"type\":\"end\",\"visit_id\":\"v1\",\"{forged}\":1}}"),
    ] {
        let e = decode::<C2S>(body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("signed in"), "serde quotes it: {e}");
        let line = redact(&e);
        assert!(!line.contains("signed in") && !line.contains(['`', '\n']), "{line}");
        let class = line.split(" at line ").next().unwrap();
        assert!(class == "unknown message type" || class == "unknown field", "{line}");
    }
    let e = decode::<C2S>(format!("{{\"type\":\"{forged}\"}}").as_bytes()).unwrap_err();
    assert_eq!(redact(&e).split(" at ").next(), Some("unknown message type"));
}

#[test]
fn refusal_notes_are_limited_per_sender_and_the_dropped_ones_counted() {
    let mut limit = RefusalLimit::default();
    let t0 = Instant::now();
    let mut logged = 0;
    for _ in 0..50 {
        if limit.check("device:dev-a", t0) != Verdict::Drop {
            logged += 1;
        }
    }
    assert_eq!(logged, note::REFUSALS_PER_WINDOW);
    // Another sender keeps its own budget.
    assert_eq!(limit.check("user:bob", t0), Verdict::Log { suppressed: 0 });
    let later = t0 + note::REFUSAL_WINDOW;
    let expected = 50 - note::REFUSALS_PER_WINDOW;
    assert_eq!(limit.check("device:dev-a", later), Verdict::Log { suppressed: expected });
    assert_eq!(limit.check("device:dev-a", later), Verdict::Log { suppressed: 0 });
}

#[test]
fn a_kiosk_that_waits_is_told_it_is_queued_each_time_it_says_so_but_not_when_refused() {
    let queued = |device: &str, visit: &str| {
        to_kiosk(device, S2K::Queued { visit_id: visit.into(), ice: IceSettings::default() })
    };
    run_all(
        vec![
            (0, waiting("kiosk-a", "v1"), vec![queued("kiosk-a", "v1")]),
            (1, waiting("kiosk-a", "v1"), vec![queued("kiosk-a", "v1")]),
            (
                2,
                waiting("kiosk-b", "v1"),
                vec![end_kiosk("kiosk-b", "v1", EndReason::ProtocolError)],
            ),
        ],
        true,
    );
}

/// Clinic scope, emergency access and the registry's place names.
mod scope;
/// Issue 11: a visit's end is recorded with who was in it and how long it lasted.
#[test]
fn an_ended_visit_is_noted_with_its_clinician_and_duration() {
    let steps = then(
        in_call(),
        vec![(
            90,
            console(1, C2S::End { visit_id: "v1".into() }),
            vec![
                end_kiosk("kiosk-a", "v1", EndReason::ClinicianEnded),
                ended(1, "v1", EndReason::ClinicianEnded),
            ],
        )],
    );
    let notes = run(steps);
    let over = notes.iter().find(|n| n.what.starts_with("visit over:")).expect("end is noted");
    assert_eq!(over.what, "visit over: 89 s since it was queued");
    assert_eq!(over.level, NoteLevel::Audit);
    let who = (over.user.as_deref(), over.visit_id.as_deref(), over.device_id.as_deref());
    assert_eq!(who, (Some("alice"), Some("v1"), Some("kiosk-a")));
}

/// Issue 12: the patient's language, visit codes, the place in the queue, calls for help.
mod codes_help;
/// Review L10: candidates relayed per visit are capped in each direction.
mod ice_cap;
/// Issue 8: consoles and kiosks that drop, and a fleetd restart, in the middle of a visit.
mod resume;

/// A kiosk's and a console's key agreement halves, well formed (the router never reads them).
fn kkey() -> telekiosk_protocol::e2ee::KioskKey {
    telekiosk_protocol::e2ee::KioskKey { public_key: "B".repeat(87), signature: "s".repeat(86) }
}
fn ckey() -> telekiosk_protocol::e2ee::ConsoleKey {
    telekiosk_protocol::e2ee::ConsoleKey { public_key: "C".repeat(87), confirm: "c".repeat(22) }
}

//! Table-driven tests of the visit state machine: each case is a chain of events and the
//! screen it must end on, plus the messages that must (or must not) have gone to fleetd.

use super::*;

const V: &str = "visit-1";
const SDP: &str = "v=0\r\n";

fn ice(n: u32) -> Ice {
    Ice { mline: 0, candidate: format!("candidate:{n} 1 UDP 1 192.0.2.1 {n} typ host") }
}

fn server(msg: ServerToKiosk) -> Event {
    Event::Server(msg)
}

fn join() -> Event {
    Event::JoinPressed { visit_id: V.into() }
}

fn accept() -> Event {
    Event::ConsentAccepted
}

fn queued() -> Event {
    server(ServerToKiosk::Queued { visit_id: V.into(), ice: turn_only() })
}

fn turn_only() -> IceSettings {
    let turn = telekiosk_protocol::config::IceServer {
        urls: vec!["turn:turn.example.org:3478".into()],
        username: Some("1700000000:visit-1-kiosk".into()),
        credential: Some("c2VjcmV0".into()),
    };
    IceSettings { servers: vec![turn], relay_only: true }
}

fn accepted() -> Event {
    server(ServerToKiosk::Accepted { visit_id: V.into(), clinician: "dr-lee".into() })
}

fn answer() -> Event {
    server(ServerToKiosk::Answer { visit_id: V.into(), sdp: SDP.into(), e2ee: console_key() })
}

fn offer() -> Event {
    Event::LocalOffer { sdp: SDP.into(), key: kiosk_key() }
}

/// The events that take a kiosk from Idle into a call, at t = 0..4 s.
fn into_call() -> Vec<(u64, Event)> {
    vec![
        (0, join()),
        (0, accept()),
        (50, queued()),
        (200, offer()),
        (1000, accepted()),
        (1500, answer()),
        (2000, Event::MediaConnected),
    ]
}

fn run(steps: &[(u64, Event)]) -> (Visit, Vec<Effect>) {
    let mut visit = Visit::new("Maple Clinic", "Exam 2", Timeouts::default());
    let mut all = vec![];
    for (t, event) in steps {
        all.extend(visit.handle(event.clone(), *t));
    }
    (visit, all)
}

fn sent(effects: &[Effect]) -> Vec<KioskToServer> {
    effects
        .iter()
        .filter_map(|e| if let Effect::Send(m) = e { Some(m.clone()) } else { None })
        .collect()
}

fn ended_with(visit: &Visit) -> Option<EndReason> {
    if let State::Ended { reason, .. } = visit.state() { Some(*reason) } else { None }
}

fn with(mut base: Vec<(u64, Event)>, more: &[(u64, Event)]) -> Vec<(u64, Event)> {
    base.extend_from_slice(more);
    base
}

#[test]
fn join_queues_the_visit_and_media_starts_with_the_servers_fleetd_gives_it() {
    let (visit, effects) = run(&[(0, join()), (0, accept())]);
    assert!(matches!(visit.state(), State::Waiting { started: false, .. }));
    assert!(!effects.iter().any(|e| matches!(e, Effect::StartMedia { .. })));
    let (_, after) = run(&[(0, join()), (0, accept()), (40, queued()), (60, queued())]);
    let starts: Vec<&Effect> =
        after.iter().filter(|e| matches!(e, Effect::StartMedia { .. })).collect();
    assert_eq!(starts, [&Effect::StartMedia { visit_id: V.into(), ice: turn_only() }]);
    // No word from fleetd: media starts anyway after a few seconds, without its servers.
    let (_, late) = run(&[(0, join()), (0, accept()), (2_500, Event::Tick), (3_000, Event::Tick)]);
    assert!(late.contains(&Effect::StartMedia { visit_id: V.into(), ice: IceSettings::default() }));
    assert_eq!(
        sent(&effects),
        [KioskToServer::Waiting {
            visit_id: V.into(),
            clinic: "Maple Clinic".into(),
            room: "Exam 2".into(),
            language: Some(Language::En),
            visit_code: None,
        }]
    );
}

#[test]
fn offer_and_candidates_are_held_until_a_clinician_accepts_then_sent_in_order() {
    let (_, before) =
        run(&[(0, join()), (0, accept()), (100, offer()), (150, Event::LocalIce(ice(1)))]);
    assert_eq!(sent(&before).len(), 1, "only Waiting goes out before a clinician accepts");
    let (visit, effects) = run(&[
        (0, join()),
        (0, accept()),
        (100, offer()),
        (150, Event::LocalIce(ice(1))),
        (900, accepted()),
    ]);
    assert!(matches!(visit.state(), State::Connecting { unsent: None, .. }));
    let out = sent(&effects);
    assert!(matches!(out[1], KioskToServer::Offer { .. }));
    assert_eq!(out[2], KioskToServer::Ice { visit_id: V.into(), ice: ice(1) });
}

#[test]
fn acceptance_before_the_offer_is_ready_sends_it_with_its_candidates_once_ready() {
    let steps = [
        (0, join()),
        (0, accept()),
        (50, accepted()),
        (60, Event::LocalIce(ice(1))),
        (100, offer()),
    ];
    let (visit, effects) = run(&steps);
    let out = sent(&effects);
    assert!(matches!(out[1], KioskToServer::Offer { .. }), "{out:?}");
    assert_eq!(out[2], KioskToServer::Ice { visit_id: V.into(), ice: ice(1) });
    assert!(matches!(visit.state(), State::Connecting { unsent: None, .. }));
}

#[test]
fn answer_and_remote_candidates_reach_the_pipeline_and_media_puts_the_kiosk_in_call() {
    let remote = server(ServerToKiosk::Ice { visit_id: V.into(), ice: ice(7) });
    let (visit, effects) = run(&with(into_call(), &[(2100, remote)]));
    assert!(effects.contains(&Effect::SetRemoteAnswer { sdp: SDP.into(), key: console_key() }));
    assert!(effects.contains(&Effect::AddRemoteIce(ice(7))));
    assert!(matches!(visit.state(), State::InCall { .. }));
}

#[test]
fn local_candidates_found_during_the_call_go_straight_out() {
    let (_, effects) = run(&with(into_call(), &[(3000, Event::LocalIce(ice(9)))]));
    assert_eq!(
        sent(&effects).last(),
        Some(&KioskToServer::Ice { visit_id: V.into(), ice: ice(9) })
    );
}

#[test]
fn mute_and_camera_toggle_back_and_forth() {
    let steps = with(
        into_call(),
        &[(3000, Event::MuteToggled), (3100, Event::CameraToggled), (3200, Event::MuteToggled)],
    );
    let (visit, effects) = run(&steps);
    let toggles: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::SetMicMuted(_) | Effect::SetCameraEnabled(_)))
        .cloned()
        .collect();
    assert_eq!(
        toggles,
        [Effect::SetMicMuted(true), Effect::SetCameraEnabled(false), Effect::SetMicMuted(false)]
    );
    assert!(matches!(visit.state(), State::InCall { mic_muted: false, camera_off: true, .. }));
}

/// One unhappy path: name, events, the reason it must end with, whether the kiosk tells fleetd.
type EndCase = (&'static str, Vec<(u64, Event)>, EndReason, bool);

/// The unhappy paths: each chain must end the visit with this reason, stop media, and tell
/// fleetd exactly when the kiosk (not fleetd) decided to end.
#[test]
fn every_way_a_visit_can_end_stops_media_and_shows_why() {
    let t = Timeouts::default();
    let cases: Vec<EndCase> = vec![
        (
            "patient presses End",
            with(into_call(), &[(5000, Event::EndConfirmed)]),
            EndReason::PatientEnded,
            true,
        ),
        (
            "patient cancels while waiting",
            vec![(0, join()), (0, accept()), (800, Event::CancelPressed)],
            EndReason::PatientCancelled,
            true,
        ),
        (
            "patient cancels while connecting",
            vec![
                (0, join()),
                (0, accept()),
                (100, offer()),
                (200, accepted()),
                (300, Event::CancelPressed),
            ],
            EndReason::PatientEnded,
            true,
        ),
        (
            "clinician never comes",
            vec![
                (0, join()),
                (0, accept()),
                (t.wait_ms - 1, Event::Tick),
                (t.wait_ms, Event::Tick),
            ],
            EndReason::NoClinician,
            true,
        ),
        (
            "clinician ends",
            with(
                into_call(),
                &[(
                    9000,
                    server(ServerToKiosk::End {
                        visit_id: V.into(),
                        reason: EndReason::ClinicianEnded,
                    }),
                )],
            ),
            EndReason::ClinicianEnded,
            false,
        ),
        (
            "clinician's browser goes away",
            with(
                into_call(),
                &[(
                    9000,
                    server(ServerToKiosk::End {
                        visit_id: V.into(),
                        reason: EndReason::ClinicianLeft,
                    }),
                )],
            ),
            EndReason::ClinicianLeft,
            false,
        ),
        (
            "network gone for two minutes during the call",
            with(
                into_call(),
                &[
                    (9000, Event::MediaFailed { reason: "ICE failed".into() }),
                    (100_000, Event::Tick),
                    (129_000, Event::Tick),
                ],
            ),
            EndReason::ConnectionLost,
            true,
        ),
        (
            "media never connects",
            vec![
                (0, join()),
                (0, accept()),
                (100, offer()),
                (200, accepted()),
                (200 + t.connect_ms, Event::Tick),
            ],
            EndReason::ConnectionLost,
            true,
        ),
        (
            "camera fails while waiting",
            vec![
                (0, join()),
                (0, accept()),
                (100, Event::MediaFailed { reason: "v4l2src: no device".into() }),
            ],
            EndReason::KioskFault,
            true,
        ),
        (
            "malformed message from fleetd",
            with(into_call(), &[(9000, Event::ServerMalformed { reason: "bad json".into() })]),
            EndReason::ProtocolError,
            true,
        ),
        (
            "answer before any clinician accepted",
            vec![(0, join()), (0, accept()), (100, answer())],
            EndReason::ProtocolError,
            true,
        ),
        (
            "second acceptance mid-call",
            with(into_call(), &[(9000, accepted())]),
            EndReason::ProtocolError,
            true,
        ),
    ];
    for (name, steps, reason, kiosk_tells_fleetd) in cases {
        let (visit, effects) = run(&steps);
        assert_eq!(ended_with(&visit), Some(reason), "{name}: state {:?}", visit.state());
        assert!(effects.contains(&Effect::StopMedia), "{name}: media not stopped");
        let told = sent(&effects).contains(&KioskToServer::End { visit_id: V.into(), reason });
        assert_eq!(told, kiosk_tells_fleetd, "{name}: End sent to fleetd = {told}");
    }
}

#[test]
fn ended_screen_returns_to_idle_after_its_time_and_not_before() {
    let t = Timeouts::default();
    let steps =
        with(into_call(), &[(5000, Event::EndConfirmed), (5000 + t.ended_ms - 1, Event::Tick)]);
    let (visit, _) = run(&steps);
    assert!(matches!(visit.state(), State::Ended { .. }));
    let (visit, _) = run(&with(steps.clone(), &[(5000 + t.ended_ms, Event::Tick)]));
    assert!(matches!(visit.state(), State::Cleaning { .. }));
    let after = 5000 + t.ended_ms + t.cleaning_ms;
    let (visit, _) = run(&with(steps, &[(5000 + t.ended_ms, Event::Tick), (after, Event::Tick)]));
    assert_eq!(visit.state(), &State::Idle);
}

#[test]
fn end_pressed_twice_ends_once() {
    let (_, effects) =
        run(&with(into_call(), &[(5000, Event::EndConfirmed), (5100, Event::EndConfirmed)]));
    let ends =
        sent(&effects).into_iter().filter(|m| matches!(m, KioskToServer::End { .. })).count();
    assert_eq!(ends, 1);
    assert_eq!(effects.iter().filter(|e| **e == Effect::StopMedia).count(), 1);
}

#[test]
fn messages_of_an_old_visit_are_ignored_not_obeyed() {
    let old = server(ServerToKiosk::End {
        visit_id: "visit-0".into(),
        reason: EndReason::ClinicianEnded,
    });
    let (visit, effects) = run(&with(into_call(), &[(3000, old)]));
    assert!(matches!(visit.state(), State::InCall { .. }));
    assert!(!effects.contains(&Effect::StopMedia));
}

#[test]
fn fleet_reconnect_while_waiting_queues_the_visit_again() {
    let (visit, effects) = run(&[(0, join()), (0, accept()), (5000, Event::FleetConnected)]);
    let waits =
        sent(&effects).into_iter().filter(|m| matches!(m, KioskToServer::Waiting { .. })).count();
    assert_eq!(waits, 2);
    assert!(matches!(visit.state(), State::Waiting { .. }));
}

#[test]
fn join_is_ignored_while_a_visit_is_in_progress() {
    let (visit, effects) =
        run(&with(into_call(), &[(3000, Event::JoinPressed { visit_id: "other".into() })]));
    assert!(matches!(visit.state(), State::InCall { .. }));
    assert_eq!(effects.iter().filter(|e| matches!(e, Effect::StartMedia { .. })).count(), 1);
}

#[test]
fn media_unavailable_takes_the_kiosk_out_of_service_for_good() {
    let (visit, _) = run(&[
        (0, Event::MediaUnavailable { reason: "no camera".into() }),
        (10, join()),
        (10, accept()),
    ]);
    assert_eq!(visit.state(), &State::OutOfService { reason: "no camera".into() });
}

#[test]
fn a_call_ends_at_the_configured_time_limit_and_not_before() {
    let mut visit = Visit::new("Maple Clinic", "Exam 2", Timeouts::default());
    visit.update(
        "Maple Clinic",
        "Exam 2",
        Timeouts { max_visit_ms: 300_000, ..Timeouts::default() },
    );
    for (t, e) in into_call() {
        visit.handle(e, t);
    }
    // In call since t = 2 s.
    assert!(visit.handle(Event::Tick, 301_999).is_empty());
    let effects = visit.handle(Event::Tick, 302_000);
    assert_eq!(ended_with(&visit), Some(EndReason::TimeLimit));
    assert!(effects.contains(&Effect::StopMedia));
    assert_eq!(
        sent(&effects),
        [KioskToServer::End { visit_id: V.into(), reason: EndReason::TimeLimit }]
    );
}

#[test]
fn new_settings_apply_at_once_without_interrupting_a_visit_in_progress() {
    let (mut visit, _) = run(&[(0, join()), (0, accept()), (50, queued())]);
    visit.update("North Clinic", "Room 9", Timeouts { wait_ms: 60_000, ..Timeouts::default() });
    visit.set_closed(Some("Closed".into()));
    // Still waiting: neither the new names nor closing time end it.
    assert!(matches!(visit.state(), State::Waiting { .. }));
    // A reconnect announces the visit again, with the new names.
    let effects = visit.handle(Event::FleetConnected, 10_000);
    assert_eq!(
        sent(&effects),
        [KioskToServer::Waiting {
            visit_id: V.into(),
            clinic: "North Clinic".into(),
            room: "Room 9".into(),
            language: Some(Language::En),
            visit_code: None,
        }]
    );
    // The shorter wait applies, from when the waiting began.
    assert!(visit.handle(Event::Tick, 59_999).is_empty());
    visit.handle(Event::Tick, 60_000);
    assert_eq!(ended_with(&visit), Some(EndReason::NoClinician));
}

#[test]
fn join_is_refused_outside_opening_hours_and_allowed_again_when_open() {
    let mut visit = Visit::new("Maple Clinic", "Exam 2", Timeouts::default());
    visit.set_closed(Some("Closed".into()));
    let effects = visit.handle(join(), 0);
    assert_eq!(visit.state(), &State::Idle);
    assert!(
        sent(&effects).is_empty()
            && !effects.iter().any(|e| matches!(e, Effect::StartMedia { .. }))
    );
    visit.set_closed(None);
    visit.handle(join(), 1000);
    visit.handle(accept(), 1000);
    assert!(matches!(visit.state(), State::Waiting { .. }));
}

// ---------- reconnecting ----------

fn in_visit() -> KioskToServer {
    KioskToServer::InVisit {
        visit_id: V.into(),
        clinic: "Maple Clinic".into(),
        room: "Exam 2".into(),
        clinician: "dr-lee".into(),
    }
}

fn rebuilds(effects: &[Effect]) -> usize {
    effects.iter().filter(|e| matches!(e, Effect::RebuildMedia { .. })).count()
}

#[test]
fn a_stall_shows_reconnecting_and_media_coming_back_by_itself_resumes_the_call() {
    let (visit, effects) = run(&with(into_call(), &[(10_000, Event::MediaStalled)]));
    assert!(matches!(visit.state(), State::Reconnecting { lost_ms: 10_000, rebuilt_ms: None, .. }));
    assert_eq!(rebuilds(&effects), 0, "nothing rebuilt for a short blip");
    let (visit, effects) = run(&with(
        into_call(),
        &[(10_000, Event::MediaStalled), (14_000, Event::Tick), (15_000, Event::MediaFlowing)],
    ));
    assert!(matches!(visit.state(), State::InCall { since_ms: 2000, .. }), "{:?}", visit.state());
    assert_eq!(rebuilds(&effects), 0);
    assert!(!sent(&effects).iter().any(|m| matches!(m, KioskToServer::End { .. })));
}

#[test]
fn ten_seconds_without_media_rebuilds_and_re_offers_within_the_same_visit() {
    let steps = with(
        into_call(),
        &[
            (3000, Event::MuteToggled),
            (10_000, Event::MediaStalled),
            (19_500, Event::Tick),
            (20_000, Event::Tick),
            (20_100, Event::LocalIce(ice(4))),
            (20_200, offer()),
            (20_300, Event::LocalIce(ice(5))),
            (20_500, answer()),
            (21_000, Event::MediaConnected),
        ],
    );
    let (visit, effects) = run(&steps);
    let at = effects.iter().position(|e| matches!(e, Effect::RebuildMedia { .. })).unwrap();
    // The patient's choices hold on the new pipeline.
    assert_eq!(
        effects[at + 1..at + 3],
        [Effect::SetMicMuted(true), Effect::SetCameraEnabled(true)]
    );
    let out = sent(&effects);
    let n = out.len();
    assert!(matches!(out[n - 3], KioskToServer::Offer { .. }), "{out:?}");
    assert_eq!(out[n - 2], KioskToServer::Ice { visit_id: V.into(), ice: ice(4) });
    assert_eq!(out[n - 1], KioskToServer::Ice { visit_id: V.into(), ice: ice(5) });
    assert_eq!(effects.iter().filter(|e| matches!(e, Effect::SetRemoteAnswer { .. })).count(), 2);
    match visit.state() {
        State::InCall { since_ms, mic_muted, .. } => {
            assert_eq!((*since_ms, *mic_muted), (2000, true))
        }
        other => panic!("not back in call: {other:?}"),
    }
}

#[test]
fn a_failed_pipeline_in_call_is_rebuilt_at_once_then_at_most_every_ten_seconds() {
    let failed = || Event::MediaFailed { reason: "ICE failed".into() };
    let steps = with(
        into_call(),
        &[(5000, failed()), (6000, failed()), (14_000, Event::Tick), (15_000, Event::Tick)],
    );
    let (visit, effects) = run(&steps);
    assert!(matches!(visit.state(), State::Reconnecting { rebuilt_ms: Some(15_000), .. }));
    assert_eq!(rebuilds(&effects), 2, "at 5 s and again at 15 s");
}

#[test]
fn a_call_without_media_for_the_reconnect_time_ends_as_connection_lost() {
    let mut steps = with(into_call(), &[(10_000, Event::MediaStalled)]);
    steps.extend((1..=25).map(|i| (10_000 + i * 5_000, Event::Tick)));
    let (visit, effects) = run(&steps);
    assert_eq!(ended_with(&visit), Some(EndReason::ConnectionLost));
    assert!(rebuilds(&effects) >= 10);
    assert!(
        sent(&effects).contains(&KioskToServer::End {
            visit_id: V.into(),
            reason: EndReason::ConnectionLost
        })
    );
}

#[test]
fn end_works_while_reconnecting_and_the_clinician_ending_is_obeyed() {
    let (visit, _) =
        run(&with(into_call(), &[(10_000, Event::MediaStalled), (11_000, Event::EndConfirmed)]));
    assert_eq!(ended_with(&visit), Some(EndReason::PatientEnded));
    let end = server(ServerToKiosk::End { visit_id: V.into(), reason: EndReason::ClinicianEnded });
    let (visit, _) = run(&with(into_call(), &[(10_000, Event::MediaStalled), (11_000, end)]));
    assert_eq!(ended_with(&visit), Some(EndReason::ClinicianEnded));
}

#[test]
fn the_fleet_link_coming_back_mid_call_says_the_visit_goes_on_and_ends_nothing() {
    for extra in [vec![], vec![(10_000, Event::MediaStalled)]] {
        let mut steps = with(into_call(), &extra);
        steps.push((12_000, Event::FleetConnected));
        let (visit, effects) = run(&steps);
        assert_eq!(sent(&effects).last(), Some(&in_visit()));
        assert!(visit.in_progress().is_some());
    }
    // Still waiting: announce the wait again (not a visit in progress).
    let (_, effects) = run(&[(0, join()), (0, accept()), (100, Event::FleetConnected)]);
    assert!(matches!(sent(&effects).last(), Some(KioskToServer::Waiting { .. })));
}

#[test]
fn stalls_and_recoveries_outside_a_call_change_nothing() {
    for state_steps in [
        vec![],
        vec![(0, join()), (0, accept())],
        vec![(0, join()), (0, accept()), (200, offer()), (1000, accepted())],
    ] {
        let mut steps = state_steps.clone();
        steps.push((5000, Event::MediaStalled));
        steps.push((6000, Event::MediaFlowing));
        let (a, _) = run(&state_steps);
        let (b, effects) = run(&steps);
        assert_eq!(a.state(), b.state());
        assert_eq!(rebuilds(&effects), 0);
    }
}

#[test]
fn remote_candidates_past_the_cap_are_ignored_with_one_warning() {
    let mut steps = into_call();
    for n in 0..MAX_REMOTE_ICE + 5 {
        steps.push((3000, server(ServerToKiosk::Ice { visit_id: V.into(), ice: ice(n) })));
    }
    let (visit, effects) = run(&steps);
    let added = effects.iter().filter(|e| matches!(e, Effect::AddRemoteIce(_))).count();
    assert_eq!(added, MAX_REMOTE_ICE as usize);
    assert!(!effects.contains(&Effect::AddRemoteIce(ice(MAX_REMOTE_ICE))), "the 51st was taken");
    let warned: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::Warn(w) if w.contains("remote ICE candidates")))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(matches!(visit.state(), State::InCall { .. }), "the call goes on");
}

pub(crate) fn kiosk_key() -> telekiosk_protocol::e2ee::KioskKey {
    telekiosk_protocol::e2ee::KioskKey { public_key: "K".repeat(87), signature: "s".repeat(86) }
}

fn console_key() -> telekiosk_protocol::e2ee::ConsoleKey {
    telekiosk_protocol::e2ee::ConsoleKey { public_key: "C".repeat(87), confirm: "c".repeat(22) }
}

#[test]
fn agreed_keys_send_the_confirmation_and_show_the_code_and_a_failed_check_ends_the_visit() {
    use telekiosk_protocol::e2ee::SecurityCheck;
    let (mut v, _) = run(&into_call());
    let code = "12345 67890 11111 22222 33333".to_string();
    let effects = v.handle(Event::KeysAgreed { confirm: "c".repeat(22), code: code.clone() }, 20);
    assert!(
        matches!(&effects[..], [Effect::Send(KioskToServer::KeyConfirm { visit_id, .. })] if visit_id == V),
        "{effects:?}"
    );
    assert_eq!(v.patient().security_code.as_deref(), Some(code.as_str()));

    let check = SecurityCheck::KeyConfirmation;
    let effects = v.handle(Event::SecurityCheckFailed { check }, 30);
    assert!(effects.contains(&Effect::StopMedia), "{effects:?}");
    let end = KioskToServer::End { visit_id: V.into(), reason: EndReason::SecurityCheckFailed };
    assert!(effects.contains(&Effect::Send(end)), "{effects:?}");
    assert!(matches!(v.state(), State::Ended { reason: EndReason::SecurityCheckFailed, .. }));
    assert_eq!(v.patient().security_code, None, "the code is forgotten with the visit");
}

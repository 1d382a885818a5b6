//! Router requirements of clinic scope: a console sees and joins only its user's clinics'
//! visits; fleet admins and auditors get no queue and cannot join; emergency access needs a
//! reason and is noted loudly; place names come from the registry.

use super::*;

fn waiting_in(device_id: &str, visit_id: &str, clinic: &str) -> Input {
    let msg = K2S::Waiting {
        visit_id: visit_id.into(),
        clinic: clinic.into(),
        room: "2".into(),
        language: None,
        visit_code: None,
    };
    kiosk(device_id, msg)
}
fn south_queue(conn: u64, rows: &[(&str, &str, u64)]) -> Output {
    let waiting = rows.iter().map(|&(visit_id, device_id, waiting_secs)| WaitingVisit {
        visit_id: visit_id.into(),
        device_id: device_id.into(),
        clinic: "South".into(),
        room: "2".into(),
        waiting_secs,
        language: None,
        for_you: false,
    });
    to_console(conn, S2C::Queue { waiting: waiting.collect() })
}
fn emergency(conn: u64, visit_id: &str, reason: &str) -> Input {
    console(conn, C2S::EmergencyJoin { visit_id: visit_id.into(), reason: reason.into() })
}
fn accepted(device_id: &str, visit_id: &str, clinician: &str) -> Output {
    let msg = S2K::Accepted { visit_id: visit_id.into(), clinician: clinician.into() };
    to_kiosk(device_id, msg)
}
fn south_joined(conn: u64, visit_id: &str) -> Output {
    let (clinic, room, ice) = ("South".into(), "2".into(), IceSettings::default());
    to_console(conn, S2C::Joined { visit_id: visit_id.into(), clinic, room, ice })
}

#[test]
fn a_clinician_sees_only_the_waiting_visits_of_their_clinics() {
    let south = Scope::new(Role::Clinician, ["South"]);
    let both = Scope::new(Role::Clinician, ["North", "South"]);
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, connect_as(2, "sam", south), vec![queue(2, &[])]),
        (0, connect_as(3, "bo", both), vec![queue(3, &[])]),
        // North's kiosk: alice and bo hear of it, sam is not told anything.
        (
            1,
            waiting("kiosk-a", "v1"),
            vec![queue(1, &[("v1", "kiosk-a", 0)]), queue(3, &[("v1", "kiosk-a", 0)])],
        ),
        // South's kiosk: sam and bo hear of it, alice is not told anything.
        (
            2,
            waiting_in("kiosk-b", "v2", "South"),
            vec![
                south_queue(2, &[("v2", "kiosk-b", 0)]),
                to_console(
                    3,
                    S2C::Queue {
                        waiting: vec![
                            WaitingVisit {
                                visit_id: "v1".into(),
                                device_id: "kiosk-a".into(),
                                clinic: "North".into(),
                                room: "2".into(),
                                waiting_secs: 1,
                                language: None,
                                for_you: false,
                            },
                            WaitingVisit {
                                visit_id: "v2".into(),
                                device_id: "kiosk-b".into(),
                                clinic: "South".into(),
                                room: "2".into(),
                                waiting_secs: 0,
                                language: None,
                                for_you: false,
                            },
                        ],
                    },
                ),
            ],
        ),
        // A console connecting later gets its clinics' queue only.
        (3, connect(4, "ann"), vec![queue(4, &[("v1", "kiosk-a", 2)])]),
    ]);
}

#[test]
fn joining_a_visit_of_another_clinic_is_refused_with_the_way_to_emergency_access() {
    let notes = run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, waiting_in("kiosk-b", "v2", "South"), vec![]),
        (2, join(1, "v2"), vec![error(1, NOT_YOUR_CLINIC)]),
    ]);
    let refused = notes.iter().find(|n| n.what.contains("outside the clinician's clinics"));
    assert!(refused.is_some_and(|n| n.level == NoteLevel::Warn), "{notes:?}");
}

#[test]
fn a_fleet_admin_or_auditor_console_gets_no_queue_and_cannot_join() {
    for role in [Role::FleetAdmin, Role::Auditor] {
        let scope = Scope::new(role, ["North"]);
        run(vec![
            (0, connect_as(1, "it", scope), vec![error(1, MAY_NOT_JOIN)]),
            (1, waiting("kiosk-a", "v1"), vec![]),
            (2, join(1, "v1"), vec![error(1, MAY_NOT_JOIN)]),
            (3, emergency(1, "v1", "covering the night shift"), vec![error(1, MAY_NOT_JOIN)]),
        ]);
    }
}

#[test]
fn emergency_access_joins_a_visit_of_another_clinic_and_is_noted_loudly_with_the_reason() {
    let notes = run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, waiting_in("kiosk-b", "v2", "South"), vec![]),
        (
            2,
            emergency(1, "v2", "South's clinician is ill"),
            vec![south_joined(1, "v2"), accepted("kiosk-b", "v2", "alice")],
        ),
    ]);
    let loud: Vec<_> = notes.iter().filter(|n| n.what.contains("EMERGENCY ACCESS")).collect();
    assert_eq!(loud.len(), 1, "{notes:?}");
    assert_eq!(loud[0].level, NoteLevel::Warn);
    assert_eq!(loud[0].user.as_deref(), Some("alice"));
    assert!(loud[0].what.contains("South's clinician is ill"), "{}", loud[0].what);
}

#[test]
fn emergency_access_without_a_reason_is_refused_by_the_decoder() {
    let empty = br#"{"type":"emergency_join","visit_id":"v2","reason":"  "}"#;
    assert!(decode::<C2S>(empty).is_err());
    let missing = br#"{"type":"emergency_join","visit_id":"v2"}"#;
    assert!(decode::<C2S>(missing).is_err());
}

#[test]
fn the_clinic_and_room_come_from_the_registry_never_from_the_kiosk() {
    let claimed = K2S::Waiting {
        visit_id: "v1".into(),
        clinic: "North".into(),
        room: "1".into(),
        language: None,
        visit_code: None,
    };
    let place = Some(("South".to_string(), "Room 9".to_string()));
    let placed = place_from_registry(claimed.clone(), place).unwrap();
    let expected = K2S::Waiting {
        visit_id: "v1".into(),
        clinic: "South".into(),
        room: "Room 9".into(),
        language: None,
        visit_code: None,
    };
    assert_eq!(placed, expected);
    let in_visit = K2S::InVisit {
        visit_id: "v1".into(),
        clinic: "North".into(),
        room: "1".into(),
        clinician: "alice".into(),
    };
    let placed = place_from_registry(in_visit, Some(("South".into(), "9".into()))).unwrap();
    assert!(
        matches!(placed, K2S::InVisit { clinic, room, .. } if clinic == "South" && room == "9")
    );
    assert!(place_from_registry(claimed, None).is_err(), "an unknown kiosk was queued");
    let end = K2S::End { visit_id: "v1".into(), reason: EndReason::PatientEnded };
    assert_eq!(place_from_registry(end.clone(), None).unwrap(), end);
}

//! Visits that survive blips and a fleetd restart: a console or a kiosk that drops keeps its
//! visit for the grace period and takes it up again, in either order after a restart; one that
//! does not come back ends it.

use super::*;

fn resume(conn: u64, visit_id: &str) -> Input {
    console(conn, C2S::Resume { visit_id: visit_id.into() })
}
fn resumed(conn: u64, visit_id: &str) -> Output {
    to_console(
        conn,
        S2C::Resumed { visit_id: visit_id.into(), clinic: "North".into(), room: "2".into() },
    )
}
fn in_visit(device_id: &str, visit_id: &str, clinician: &str) -> Input {
    let msg = K2S::InVisit {
        visit_id: visit_id.into(),
        clinic: "North".into(),
        room: "2".into(),
        clinician: clinician.into(),
    };
    kiosk(device_id, msg)
}

#[test]
fn a_console_that_drops_keeps_its_visit_and_its_clinician_resumes_it() {
    run(then(
        in_call(),
        vec![
            // Its socket drops: the call goes on (peer to peer); nobody else may take it.
            (20, gone(1), vec![]),
            (21, join(2, "v1"), vec![to_console(2, S2C::AlreadyTaken { visit_id: "v1".into() })]),
            (22, resume(2, "v1"), vec![error(2, NOT_YOUR_VISIT)]),
            // Alice is back on a new connection: the visit is hers again, relays resume.
            (25, connect(3, "alice"), vec![queue(3, &[])]),
            (26, resume(3, "v1"), vec![resumed(3, "v1")]),
            (27, offer("v1"), vec![offer_out(3, "v1")]),
            (90, Input::Tick, vec![]),
        ],
    ));
}

#[test]
fn a_console_that_does_not_come_back_within_the_grace_ends_the_visit_for_the_kiosk() {
    run(then(
        in_call(),
        vec![
            (20, gone(1), vec![]),
            (79, Input::Tick, vec![]),
            (80, Input::Tick, vec![end_kiosk("kiosk-a", "v1", EndReason::ClinicianLeft)]),
            (81, join(2, "v1"), vec![error(2, NO_LONGER_WAITING)]),
        ],
    ));
}

#[test]
fn a_kiosk_going_offline_mid_call_keeps_the_visit_until_the_grace_runs_out() {
    run(then(
        in_call(),
        vec![
            (20, offline("kiosk-a"), vec![]),
            // It comes back within the grace and says it is still in the visit.
            (30, in_visit("kiosk-a", "v1", "alice"), vec![]),
            (95, Input::Tick, vec![]),
            (96, offline("kiosk-a"), vec![]),
            (156, Input::Tick, vec![ended(1, "v1", EndReason::ConnectionLost)]),
        ],
    ));
}

#[test]
fn after_a_fleetd_restart_the_kiosk_and_the_console_re_attach_in_either_order() {
    // Console first: its claim waits for the kiosk.
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, resume(1, "v1"), vec![]),
        (2, in_visit("kiosk-a", "v1", "alice"), vec![resumed(1, "v1")]),
        (3, offer("v1"), vec![offer_out(1, "v1")]),
    ]);
    // Kiosk first: the visit waits for its clinician, and is in nobody's queue.
    run(vec![
        (0, connect(2, "bob"), vec![queue(2, &[])]),
        (1, in_visit("kiosk-a", "v1", "alice"), vec![]),
        (2, join(2, "v1"), vec![to_console(2, S2C::AlreadyTaken { visit_id: "v1".into() })]),
        (3, connect(1, "alice"), vec![queue(1, &[])]),
        (4, resume(1, "v1"), vec![resumed(1, "v1")]),
    ]);
}

#[test]
fn a_claim_for_a_visit_no_kiosk_takes_up_again_ends_after_the_grace() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (1, resume(1, "v1"), vec![]),
        // Another clinician's kiosk announcement does not satisfy alice's claim.
        (2, in_visit("kiosk-a", "v1", "bob"), vec![]),
        (61, Input::Tick, vec![ended(1, "v1", EndReason::ConnectionLost)]),
    ]);
}

#[test]
fn a_kiosk_going_offline_while_waiting_leaves_the_queue() {
    run(vec![
        (0, connect(1, "alice"), vec![queue(1, &[])]),
        (0, waiting("kiosk-a", "v1"), vec![queue(1, &[("v1", "kiosk-a", 0)])]),
        (3, offline("kiosk-a"), vec![queue(1, &[])]),
    ]);
}

//! Router requirement of review L10: at most [`MAX_ICE_PER_VISIT`] candidates are relayed per
//! visit in each direction; the rest are dropped with one warning, and the other direction and
//! other messages of the visit are not affected.

use super::*;

fn kiosk_ice() -> Input {
    kiosk("kiosk-a", K2S::Ice { visit_id: "v1".into(), ice: ice() })
}
fn console_ice() -> Input {
    console(1, C2S::Ice { visit_id: "v1".into(), ice: ice() })
}

#[test]
fn candidates_past_the_cap_are_dropped_with_one_warning_per_direction() {
    let to_owner = || vec![to_console(1, S2C::Ice { visit_id: "v1".into(), ice: ice() })];
    let to_kiosk_a = || vec![to_kiosk("kiosk-a", S2K::Ice { visit_id: "v1".into(), ice: ice() })];
    let mut steps = in_call();
    for _ in 0..MAX_ICE_PER_VISIT {
        steps.push((6, kiosk_ice(), to_owner()));
    }
    // Past the cap from the kiosk: dropped, three times over.
    for _ in 0..3 {
        steps.push((6, kiosk_ice(), vec![]));
    }
    // The console's candidates still go through, up to their own cap.
    for _ in 0..MAX_ICE_PER_VISIT {
        steps.push((7, console_ice(), to_kiosk_a()));
    }
    steps.push((7, console_ice(), vec![]));
    steps.push((7, console_ice(), vec![]));
    // The visit itself goes on: the clinician can still end it.
    steps.push((
        8,
        console(1, C2S::End { visit_id: "v1".into() }),
        vec![
            end_kiosk("kiosk-a", "v1", EndReason::ClinicianEnded),
            ended(1, "v1", EndReason::ClinicianEnded),
        ],
    ));
    let notes = run(steps);
    let dropped: Vec<_> =
        notes.iter().filter(|n| n.what.contains("the rest are dropped")).collect();
    assert_eq!(dropped.len(), 2, "one warning per direction: {dropped:?}");
    assert!(dropped[0].what.starts_with("kiosk sent more than"), "{dropped:?}");
    assert!(dropped[1].what.starts_with("console sent more than"), "{dropped:?}");
    assert!(
        dropped.iter().all(|n| n.level == NoteLevel::Warn && n.visit_id.as_deref() == Some("v1"))
    );
}

//! Table tests of the technician screen's rules: gesture, access, back-off, keypads, grades.

use std::time::{Duration, Instant};

use super::Enrolment;
use super::code::{Verdict, verify};
use super::rules::*;
use crate::ui::view::ScreenId;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_corner_listens_on_idle_closed_and_out_of_service_only() {
    use ScreenId::*;
    for (screen, allowed) in [
        (Idle, true),
        (Closed, true),
        (OutOfService, true),
        (Waiting, false),
        (Connecting, false),
        (InCall, false),
        (Ended, false),
    ] {
        assert_eq!(gesture_allowed(screen), allowed, "{screen:?}");
    }
}

#[test]
fn five_taps_within_three_seconds_open_the_keypad_and_slower_ones_do_not() {
    // Tap times in ms; whether the last one opens.
    for (taps, opens) in [
        (vec![0, 200, 400, 600, 800], true),
        (vec![0, 700, 1400, 2100, 2800], true),
        (vec![0, 700, 1400, 2100], false),
        (vec![0, 800, 1600, 2400, 3200], false),
        // An early stray tap falls out of the window; the five after it count.
        (vec![0, 3500, 3700, 3900, 4100, 4300], true),
    ] {
        let (start, mut g) = (Instant::now(), Gesture::default());
        let mut opened = false;
        for t in &taps {
            opened = g.down(start + ms(*t));
            g.up();
        }
        assert_eq!(opened, opens, "{taps:?}");
    }
}

#[test]
fn holding_the_corner_three_seconds_opens_the_keypad_and_lifting_earlier_does_not() {
    // (lifted before the timer asks, asked at ms after the touch, opens)
    for (lifted, asked_at, opens) in
        [(false, 3000, true), (false, 2999, false), (true, 3050, false), (false, 10_000, true)]
    {
        let (start, mut g) = (Instant::now(), Gesture::default());
        assert!(!g.down(start));
        if lifted {
            g.up();
        }
        assert_eq!(g.held(start + ms(asked_at)), opens, "{lifted} {asked_at}");
    }
}

#[test]
fn an_opened_gesture_starts_again_from_nothing() {
    let (start, mut g) = (Instant::now(), Gesture::default());
    for t in 0..5 {
        g.down(start + ms(t * 100));
        g.up();
    }
    assert!(!g.down(start + ms(600)), "a sixth tap right after must not open again");
}

#[test]
fn a_code_is_asked_of_an_enrolled_kiosk_and_an_unfinished_one_stays_shut() {
    use Enrolment::*;
    for (enrolment, hash, expected) in [
        (NotSetUp, "", Access::Open),
        (NotEnrolled, "", Access::Open),
        (NotEnrolled, "$argon2id$v=19$m=19456,t=2,p=1$abc$def", Access::Open),
        (Enrolling, "", Access::Disabled),
        (Enrolled, "", Access::Disabled),
        (Enrolled, "   ", Access::Disabled),
        (Enrolled, "$argon2id$x", Access::Code("$argon2id$x".into())),
    ] {
        assert_eq!(access(enrolment, hash), expected, "{enrolment:?} {hash:?}");
    }
}

#[test]
fn three_wrong_codes_lock_for_30_s_doubling_up_to_15_min() {
    for (wrong, lock_secs) in [
        (0, 0),
        (1, 0),
        (2, 0),
        (3, 30),
        (4, 60),
        (5, 120),
        (6, 240),
        (7, 480),
        (8, 900),
        (9, 900),
        (40, 900),
        (u32::MAX, 900),
    ] {
        assert_eq!(lock_after(wrong), Duration::from_secs(lock_secs), "{wrong} wrong");
    }
}

#[test]
fn the_keypad_waits_out_the_lock_and_the_right_code_forgets_the_wrong_ones() {
    let (t0, mut b) = (Instant::now(), Backoff::default());
    assert_eq!(b.wrong(t0), None);
    assert_eq!(b.wrong(t0), None);
    assert_eq!(b.wait(t0), None, "two wrong codes do not lock");
    assert_eq!(b.wrong(t0), Some(Duration::from_secs(30)));
    assert_eq!(b.wait(t0 + Duration::from_secs(10)), Some(Duration::from_secs(20)));
    assert_eq!(b.wait(t0 + Duration::from_secs(30)), None, "the lock ends");
    assert_eq!(b.wrong(t0 + Duration::from_secs(31)), Some(Duration::from_secs(60)));
    b.right();
    assert_eq!((b.wait(t0 + Duration::from_secs(32)), b.wrong_count()), (None, 0));
    assert_eq!(b.wrong(t0), None, "after the right code, three tries again");
}

#[test]
fn keypads_take_only_their_symbols_up_to_their_length() {
    let mut code = String::new();
    for key in ["1", "a", "23", "", "9", "-"] {
        push_code_digit(&mut code, key);
    }
    assert_eq!(code, "19");
    for _ in 0..20 {
        push_code_digit(&mut code, "7");
    }
    assert_eq!(code.len(), MAX_CODE_DIGITS);

    let mut enrol = String::new();
    for key in ["k", "7", "0", "1", "I", "O", "q", "2", "X", "Y", "Z", "A", "B", "C"] {
        push_enrol_symbol(&mut enrol, key);
    }
    assert_eq!(enrol, "K7Q2XYZA");
    assert_eq!(shown_enrol_code(&enrol), "K7Q2-XYZA");
    assert_eq!(shown_enrol_code("K7Q"), "K7Q");
}

#[test]
fn network_grades_follow_round_trip_and_throughput() {
    for (rtt_ms, mbit, expected) in [
        (23, 41.0, Grade::Good),
        (149, 4.0, Grade::Good),
        (150, 40.0, Grade::Fair),
        (40, 3.9, Grade::Fair),
        (399, 1.0, Grade::Fair),
        (400, 50.0, Grade::Poor),
        (20, 0.5, Grade::Poor),
    ] {
        assert_eq!(grade(ms(rtt_ms), mbit), expected, "{rtt_ms} ms {mbit} Mbit/s");
    }
}

#[test]
fn the_round_trip_is_the_median_and_throughput_is_bits_per_second() {
    assert_eq!(median(vec![ms(90), ms(10), ms(30), ms(20), ms(500)]), Some(ms(30)));
    assert_eq!(median(vec![ms(10), ms(20)]), Some(ms(10)));
    assert_eq!(median(vec![]), None);
    assert!((mbit_per_s(1_000_000, Duration::from_secs(1)) - 8.0).abs() < 1e-9);
    assert_eq!(mbit_per_s(1000, Duration::ZERO), 0.0);
    for (mbit, shown) in [(41.4, "41"), (10.0, "10"), (9.96, "10.0"), (2.34, "2.3"), (0.0, "0.0")] {
        assert_eq!(shown_mbit(mbit), shown, "{mbit}");
    }
}

#[test]
fn the_meter_maps_minus_60_db_to_empty_and_full_scale_to_full() {
    for (db, fraction, shown) in [
        (f64::NEG_INFINITY, 0.0, -60),
        (-700.0, 0.0, -60),
        (-60.0, 0.0, -60),
        (-30.0, 0.5, -30),
        (0.0, 1.0, 0),
        (3.0, 1.0, 3),
        (f64::NAN, 0.0, -60),
    ] {
        assert!((meter_fraction(db) - fraction).abs() < 1e-6, "{db}");
        assert_eq!(meter_db(db), shown, "{db}");
    }
}

#[test]
fn an_unreadable_hash_opens_nothing() {
    for hash in ["", "plain-code", "$pbkdf2-sha256$i=1000$abc$def", "$argon2id$broken"] {
        assert_eq!(verify(hash, "1234"), Verdict::BadHash, "{hash:?}");
    }
}

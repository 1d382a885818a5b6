//! The rules of visit codes, as tables: drawing digits, checking a stored code, and the waits
//! after wrong codes for one kiosk and for the fleet.

use super::*;

#[test]
fn codes_are_six_digits_with_leading_zeros_and_biased_draws_are_skipped() {
    let cases: [(u32, Option<&str>); 5] = [
        (0, Some("000000")),
        (42, Some("000042")),
        (1_234_567, Some("234567")),
        (u32::MAX - u32::MAX % 1_000_000 - 1, Some("999999")),
        (u32::MAX, None),
    ];
    for (n, want) in cases {
        assert_eq!(code_from(n.to_le_bytes()).as_deref(), want, "{n}");
    }
}

#[test]
fn a_code_lets_in_only_its_own_clinic_before_it_expires_and_once() {
    let code = |clinic: &str, used_by: Option<&str>| Stored {
        clinic: clinic.into(),
        expires_at: 1000,
        used_by: used_by.map(Into::into),
    };
    let north = code("North", None);
    let used = code("North", Some("v-1"));
    /// (the code found, the visit asking, now, what the rules say)
    type Row<'a> = (Option<&'a Stored>, &'a str, i64, Result<(), CodeRefusal>);
    #[rustfmt::skip]
    let table: [Row; 7] = [
        (None,          "v-2", 10,   Err(CodeRefusal::Unknown)),
        (Some(&north),  "v-2", 10,   Ok(())),
        (Some(&north),  "v-2", 999,  Ok(())),
        (Some(&north),  "v-2", 1000, Err(CodeRefusal::Expired)),
        (Some(&used),   "v-2", 10,   Err(CodeRefusal::Used)),
        // The visit that holds it says Waiting again (a reconnect): still its code.
        (Some(&used),   "v-1", 10,   Ok(())),
        (Some(&code("South", None)), "v-2", 10, Err(CodeRefusal::OtherClinic)),
    ];
    for (n, (found, visit, now, want)) in table.into_iter().enumerate() {
        assert_eq!(check(found, "North", visit, now), want, "row {n}");
    }
}

#[test]
fn three_wrong_codes_make_a_kiosk_wait_30_s_then_doubling_to_15_min() {
    let t0 = Instant::now();
    let mut tries = Tries::default();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // (second, wait told after this wrong code)
    let table = [
        (0, 0),
        (1, 0),
        (2, 30),
        (32, 60),
        (92, 120),
        (212, 240),
        (452, 480),
        (932, 900),
        (1832, 900),
    ];
    for (s, want) in table {
        assert_eq!(tries.may_try("kiosk-a", at(s)), Ok(()), "second {s}: should be let try");
        assert_eq!(tries.wrong("kiosk-a", at(s)), want, "second {s}");
    }
    // Meanwhile, another kiosk is not held back.
    assert_eq!(tries.may_try("kiosk-b", at(1833)), Ok(()));
    // During its wait the kiosk is told how long is left.
    assert_eq!(tries.may_try("kiosk-a", at(1832 + 600)), Err(300));
}

#[test]
fn a_right_code_or_a_quiet_hour_forgets_a_kiosks_wrong_codes() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut tries = Tries::default();
    tries.wrong("kiosk-a", at(0));
    tries.wrong("kiosk-a", at(1));
    tries.right("kiosk-a");
    assert_eq!(tries.wrong("kiosk-a", at(2)), 0, "the right code did not reset the count");
    tries.wrong("kiosk-a", at(3));
    assert_eq!(tries.wrong("kiosk-a", at(3 + 3600)), 0, "an hour later the count goes on");
}

#[test]
fn the_fleet_as_a_whole_may_send_only_so_many_wrong_codes_an_hour() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut tries = Tries::default();
    // Each from a different kiosk, so no kiosk's own wait applies.
    for n in 0..FLEET_WRONG_PER_WINDOW {
        assert_eq!(tries.may_try(&format!("kiosk-{n}"), at(n as u64)), Ok(()), "kiosk {n}");
        tries.wrong(&format!("kiosk-{n}"), at(n as u64));
    }
    let wait = tries.may_try("kiosk-new", at(100));
    assert_eq!(wait, Err(3600 - 100), "a fresh kiosk must wait for the oldest to age out");
    assert_eq!(tries.may_try("kiosk-new", at(3600)), Ok(()));
}

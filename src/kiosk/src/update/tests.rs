use super::*;

fn order(v: &str) -> UpdateOrder {
    UpdateOrder {
        version: v.into(),
        sha256: "ab".repeat(32),
        size: 1000,
        reboot_in_opening_hours: false,
        health_timeout_secs: 600,
    }
}

fn booted(v: &str, slot: &str) -> Booted {
    Booted { version: v.into(), slot: slot.into(), trial: false, trial_failed: None }
}

fn kinds(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .map(|a| match a {
            Action::Keep(_) => "keep",
            Action::Fetch(_) => "fetch",
            Action::CancelFetch => "cancel",
            Action::Install { .. } => "install",
            Action::Reboot { .. } => "reboot",
            Action::Clean => "clean",
            Action::ForgetTrial => "forget_trial",
        })
        .collect()
}

/// An updater on 1.0 (slot A) that has fetched and installed 2.0.
fn installed() -> Updater {
    let (mut u, _) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    u.order(order("2.0"));
    u.fetched("2.0", Ok(()));
    u.tick(false, true);
    u.installed("2.0", Ok(()));
    u
}

#[test]
fn an_order_is_kept_before_it_is_fetched_and_then_installed_outside_visits_only() {
    let (mut u, first) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    assert!(first.is_empty());
    let (answer, actions) = u.order(order("2.0"));
    assert_eq!(answer, Answer::Accepted("fetching version 2.0".into()));
    assert_eq!(kinds(&actions), ["keep", "fetch"]);
    u.progress(400);
    let p = u.state().update.unwrap();
    assert_eq!((p.phase, p.done_bytes, p.total_bytes), (UpdatePhase::Downloading, 400, 1000));
    assert_eq!(kinds(&u.fetched("2.0", Ok(()))), ["keep"]);
    assert_eq!(u.state().update.unwrap().phase, UpdatePhase::WaitingForVisit);
    // A visit in progress: nothing happens, however long it lasts.
    assert!(u.tick(true, true).is_empty());
    assert!(u.tick(true, false).is_empty());
    let actions = u.tick(false, false);
    assert_eq!(kinds(&actions), ["keep", "install"]);
    assert_eq!(u.state().update.unwrap().phase, UpdatePhase::Installing);
    // Only one install request.
    assert!(u.tick(false, false).is_empty());
}

#[test]
fn the_reboot_waits_for_no_visit_and_for_closing_time_unless_the_order_allows_opening_hours() {
    let mut u = installed();
    assert_eq!(u.state().update.unwrap().phase, UpdatePhase::WaitingToReboot);
    assert!(u.tick(false, false).is_empty(), "open: wait");
    assert!(u.tick(true, true).is_empty(), "closed but a visit: wait");
    let actions = u.tick(false, true);
    assert_eq!(kinds(&actions), ["keep", "reboot"]);
    assert_eq!(actions[1], Action::Reboot { version: "2.0".into(), health_timeout_secs: 600 });

    let (mut u, _) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    u.order(UpdateOrder { reboot_in_opening_hours: true, ..order("2.0") });
    u.fetched("2.0", Ok(()));
    u.tick(false, false);
    u.installed("2.0", Ok(()));
    assert!(u.tick(true, false).is_empty(), "never during a visit");
    assert_eq!(kinds(&u.tick(false, false)), ["keep", "reboot"]);
}

#[test]
fn after_the_reboot_the_running_version_says_whether_the_update_took() {
    let mut u = installed();
    let Action::Keep(kept) = u.tick(false, true).remove(0) else { panic!() };
    assert_eq!(kept.stage, Some(Stage::Rebooting));

    // Up on 2.0 (slot B, on trial): done; the health check marks it good.
    let on_b = Booted { trial: true, ..booted("2.0", "B") };
    let (u2, actions) = Updater::start(on_b, kept.clone(), Leftovers::default());
    assert_eq!(kinds(&actions), ["keep", "forget_trial"]);
    let s = u2.state();
    assert_eq!((s.version.as_str(), s.slot.as_str(), s.trial), ("2.0", "B", true));
    assert_eq!((s.update, s.failed), (None, None));

    // Back on 1.0: 2.0 failed, with the health check's reason when it gave one.
    let back = Booted {
        trial_failed: Some(("2.0".into(), "telekiosk did not report healthy within 600 s".into())),
        ..booted("1.0", "A")
    };
    let (u3, _) = Updater::start(back, kept.clone(), Leftovers::default());
    let failed = u3.state().failed.unwrap();
    assert_eq!(failed.version, "2.0");
    assert_eq!(failed.reason, "telekiosk did not report healthy within 600 s");
    // ... and a plain reason when the new version never got as far as the check.
    let (u4, _) = Updater::start(booted("1.0", "A"), kept, Leftovers::default());
    assert!(u4.state().failed.unwrap().reason.contains("went back to 1.0"));
}

#[test]
fn a_failed_fetch_or_install_is_reported_and_the_files_are_removed() {
    let (mut u, _) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    u.order(order("2.0"));
    let actions = u.fetched("2.0", Err("the bundle does not match its SHA-256".into()));
    assert_eq!(kinds(&actions), ["keep", "clean"]);
    let s = u.state();
    assert_eq!(s.update, None);
    assert_eq!(s.failed.unwrap().reason, "the bundle does not match its SHA-256");

    let (mut u, _) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    u.order(order("2.0"));
    u.fetched("2.0", Ok(()));
    u.tick(false, true);
    let actions = u.installed("2.0", Err("signature verification failed".into()));
    assert_eq!(kinds(&actions), ["keep", "clean"]);
    let failed = u.state().failed.unwrap();
    assert_eq!(failed.reason, "the install of version 2.0 failed: signature verification failed");
    // Nothing more happens for it.
    assert!(u.tick(false, true).is_empty());
}

#[test]
fn orders_are_refused_off_an_appliance_and_taken_once_on_one() {
    let (mut u, _) = Updater::start(booted("", ""), Kept::default(), Leftovers::default());
    let (answer, actions) = u.order(order("2.0"));
    assert!(matches!(answer, Answer::Refused(r) if r.contains("A/B")));
    assert!(actions.is_empty());

    let (mut u, _) = Updater::start(booted("2.0", "B"), Kept::default(), Leftovers::default());
    let (answer, actions) = u.order(order("2.0"));
    assert_eq!(answer, Answer::Accepted("version 2.0 is already running".into()));
    assert!(actions.is_empty());

    let (mut u, _) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    u.order(order("2.0"));
    let (answer, actions) = u.order(order("2.0"));
    assert!(matches!(answer, Answer::Accepted(a) if a.contains("already in hand")));
    assert!(actions.is_empty(), "a resent command does not start the fetch over");
}

#[test]
fn a_newer_order_replaces_a_fetch_but_not_an_install_in_progress() {
    let (mut u, _) = Updater::start(booted("1.0", "A"), Kept::default(), Leftovers::default());
    u.order(order("2.0"));
    let (answer, actions) = u.order(order("3.0"));
    assert_eq!(answer, Answer::Accepted("fetching version 3.0".into()));
    assert_eq!(kinds(&actions), ["cancel", "clean", "keep", "fetch"]);
    // The old fetch's late report is ignored.
    assert!(u.fetched("2.0", Ok(())).is_empty());
    u.fetched("3.0", Ok(()));
    u.tick(false, true);
    let (answer, _) = u.order(order("4.0"));
    assert!(matches!(answer, Answer::Refused(r) if r.contains("3.0 is being installed")));
}

#[test]
fn a_restart_goes_on_where_the_kept_stage_says() {
    let none = Leftovers::default();
    let kept = |stage| Kept { order: Some(order("2.0")), stage: Some(stage), failed: None };
    let (_, actions) = Updater::start(booted("1.0", "A"), kept(Stage::Download), none);
    assert_eq!(actions, vec![Action::Fetch(order("2.0"))]);

    // Stopped while installing, with the bundle still there: install again.
    let left = Leftovers { install_result: false, bundle: true };
    let (mut u, actions) = Updater::start(booted("1.0", "A"), kept(Stage::Installing), left);
    assert_eq!(kinds(&actions), ["keep"]);
    assert_eq!(kinds(&u.tick(false, false)), ["keep", "install"], "installs again");
    // ... its result already there: wait for it to be read.
    let left = Leftovers { install_result: true, bundle: false };
    let (mut u, actions) = Updater::start(booted("1.0", "A"), kept(Stage::Installing), left);
    assert!(actions.is_empty());
    assert_eq!(u.state().update.unwrap().phase, UpdatePhase::Installing);
    assert_eq!(kinds(&u.installed("2.0", Ok(()))), ["keep"]);
    // ... nothing left (a power cut after the unit took the bundle): fetch it again.
    let (_, actions) = Updater::start(booted("1.0", "A"), kept(Stage::Installing), none);
    assert_eq!(kinds(&actions), ["keep", "fetch"]);

    let (mut u, actions) = Updater::start(booted("1.0", "A"), kept(Stage::Reboot), none);
    assert!(actions.is_empty());
    assert_eq!(kinds(&u.tick(false, true)), ["keep", "reboot"]);
}

//! Table tests of the rollout engine: a simulated fleet answers each step.

use std::collections::HashMap;

use super::*;

/// How a simulated device answers version V.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kiosk {
    Accepts,
    Refuses,
    Silent,
}

fn fleet(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dev-{i:02}")).collect()
}

fn rollout(n: usize, plan: Plan) -> Rollout {
    Rollout::new("North", 7, fleet(n), plan).unwrap()
}

/// What each device reports, given what it was sent: `sent` holds the devices published to.
fn reports(sent: &[String], kiosks: &HashMap<String, Kiosk>) -> HashMap<String, Seen> {
    sent.iter()
        .map(|d| {
            let seen = match kiosks.get(d).copied().unwrap_or(Kiosk::Accepts) {
                Kiosk::Accepts => Seen::config(7, 7, None),
                Kiosk::Refuses => Seen::config(7, 3, Some((7, "bad".into()))),
                Kiosk::Silent => Seen::config(7, 3, None),
            };
            (d.clone(), seen)
        })
        .collect()
}

/// Steps until nothing changes; returns every effect and the devices published to, in order.
fn run(
    r: &mut Rollout,
    kiosks: &HashMap<String, Kiosk>,
    mut now: i64,
) -> (Vec<Effect>, Vec<String>) {
    let (mut all, mut sent) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let seen = reports(&sent, kiosks);
        let effects = r.step(|d| seen.get(d).cloned(), now);
        for e in &effects {
            if let Effect::Publish { devices, .. } = e {
                sent.extend(devices.iter().cloned());
            }
        }
        if effects.is_empty() && now > 10_000 {
            break;
        }
        all.extend(effects);
        now += 60;
    }
    (all, sent)
}

fn waves_published(effects: &[Effect]) -> Vec<usize> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish { devices, .. } => Some(devices.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn when_every_device_acknowledges_the_rollout_completes_in_doubling_waves() {
    // (devices, plan, expected wave sizes)
    let cases = [
        (10, Plan::default(), vec![1, 2, 4, 3]),
        (1, Plan::default(), vec![1]),
        (100, Plan::default(), vec![10, 20, 40, 30]),
        (20, Plan { first_wave_percent: 100, ..Plan::default() }, vec![20]),
        (
            10,
            Plan { canary: vec!["dev-09".into(), "dev-03".into()], ..Plan::default() },
            vec![2, 4, 4],
        ),
    ];
    for (n, plan, expected) in cases {
        let mut r = rollout(n, plan.clone());
        let (effects, sent) = run(&mut r, &HashMap::new(), 0);
        assert_eq!(waves_published(&effects), expected, "{n} devices, {plan:?}");
        assert_eq!(r.status, RolloutStatus::Completed);
        assert_eq!(effects.last(), Some(&Effect::Completed { acked: n, failed: 0 }));
        assert_eq!(sent.len(), n, "each device sent once");
        if !plan.canary.is_empty() {
            assert_eq!(sent[..2], plan.canary[..], "the canaries go first");
        }
    }
}

#[test]
fn a_wave_starts_only_once_every_device_of_the_one_before_has_answered() {
    let mut r = rollout(10, Plan::default());
    let first = r.step(|_| None, 0);
    assert_eq!(first, vec![Effect::Publish { wave: 1, devices: vec!["dev-00".into()] }]);
    // Offline (no report) or still on the old version: pending, nothing more is sent.
    assert_eq!(r.step(|_| None, 10), vec![]);
    let old = |_: &str| Some(Seen::config(7, 6, None));
    assert_eq!(r.step(old, 20), vec![]);
    let acked = |_: &str| Some(Seen::config(7, 7, None));
    assert!(
        matches!(&r.step(acked, 30)[..], [Effect::Publish { wave: 2, devices }] if devices.len() == 2)
    );
}

#[test]
fn refusals_past_the_threshold_halt_the_rollout_and_no_further_wave_is_published() {
    // (devices, plan, refusing devices, waves published before the halt)
    let canary = Plan {
        canary: ["dev-00", "dev-01", "dev-02", "dev-03"].map(String::from).into(),
        ..Plan::default()
    };
    let cases = [
        (10, Plan::default(), vec!["dev-00"], vec![1]),
        (10, canary, vec!["dev-00", "dev-01", "dev-02"], vec![4]),
        // 1 of 3 targeted = 33 % > 20 %: halts in wave 2.
        (10, Plan::default(), vec!["dev-02"], vec![1, 2]),
        // 2 of 7 = 28 %.
        (10, Plan::default(), vec!["dev-05", "dev-06"], vec![1, 2, 4]),
        // 3 of 100 never pass 20 %: completes with failures.
        (100, Plan::default(), vec!["dev-50", "dev-60", "dev-70"], vec![10, 20, 40, 30]),
    ];
    for (n, plan, refusing, expected) in cases {
        let kiosks = refusing.iter().map(|d| (d.to_string(), Kiosk::Refuses)).collect();
        let mut r = rollout(n, plan);
        let (effects, sent) = run(&mut r, &kiosks, 0);
        assert_eq!(waves_published(&effects), expected, "refusing {refusing:?}");
        let total: usize = expected.iter().sum();
        assert_eq!(sent.len(), total);
        if total < n {
            assert_eq!(r.status, RolloutStatus::Halted, "{refusing:?}");
            assert!(matches!(effects.last(), Some(Effect::Halted { .. })));
            let reason = r.halt_reason.clone().unwrap();
            assert!(reason.contains("more than the 20 % threshold"), "{reason}");
            // However long it waits, nothing more goes out.
            assert_eq!(r.step(|_| None, 1_000_000), vec![]);
        } else {
            assert_eq!(r.status, RolloutStatus::Completed);
            assert_eq!(r.failed(), refusing.len());
        }
    }
}

#[test]
fn silent_devices_time_out_and_count_as_failures() {
    let plan = Plan { wave_timeout_secs: 300, failure_threshold_percent: 50, ..Plan::default() };
    let kiosks: HashMap<_, _> = [("dev-00".to_string(), Kiosk::Silent)].into();
    let mut r = rollout(4, plan);
    assert!(matches!(&r.step(|_| None, 0)[..], [Effect::Publish { wave: 1, .. }]));
    assert_eq!(r.step(|_| None, 299), vec![], "still within the time-out");
    let effects = r.step(|d| reports(&[d.to_string()], &kiosks).get(d).cloned(), 300);
    assert_eq!(effects[0], Effect::TimedOut { wave: 1, devices: vec!["dev-00".into()] });
    // 1 of 1 > 50 %.
    assert!(matches!(effects[1], Effect::Halted { .. }), "{effects:?}");
}

#[test]
fn a_timed_out_device_that_acknowledges_later_counts_as_acknowledged() {
    let plan = Plan { wave_timeout_secs: 60, failure_threshold_percent: 100, ..Plan::default() };
    let mut r = rollout(2, plan);
    r.step(|_| None, 0);
    r.step(|_| None, 60);
    assert_eq!(r.failed(), 1);
    r.step(|_| Some(Seen::config(7, 7, None)), 70);
    assert_eq!((r.failed(), r.waves()[0].acked), (0, 1));
}

#[test]
fn pause_stops_new_waves_resume_restarts_the_timeout_and_abort_ends_it() {
    let acked = |_: &str| Some(Seen::config(7, 7, None));
    let mut r = rollout(10, Plan { wave_timeout_secs: 100, ..Plan::default() });
    r.step(|_| None, 0);
    r.admin(Control::Pause, 5).unwrap();
    assert_eq!(r.step(acked, 10), vec![], "no wave starts while paused");
    assert_eq!(r.step(|_| None, 500), vec![], "no time-out while paused");
    assert_eq!(r.waves()[0].acked, 1, "acknowledgements still count");
    assert_eq!(
        r.admin(Control::Pause, 6),
        Err(RolloutError::WrongStatus { status: "paused", wanted: "running", action: "paused" })
    );
    r.admin(Control::Resume, 600).unwrap();
    assert!(matches!(&r.step(acked, 601)[..], [Effect::Publish { wave: 2, .. }]));
    assert_eq!(r.wave_started_at, 601);
    r.admin(Control::Abort, 602).unwrap();
    assert_eq!(r.status, RolloutStatus::Aborted);
    assert_eq!(r.step(acked, 700), vec![], "an aborted rollout sends nothing");
    assert!(r.admin(Control::Resume, 701).is_err());
    assert!(r.admin(Control::Abort, 701).is_err());
}

#[test]
fn a_rollout_needs_devices_and_canaries_from_the_group() {
    assert_eq!(
        Rollout::new("North", 1, vec![], Plan::default()),
        Err(RolloutError::NoDevices { group: "North".into() })
    );
    let plan = Plan { canary: vec!["dev-99".into()], ..Plan::default() };
    assert!(matches!(
        Rollout::new("North", 1, fleet(3), plan),
        Err(RolloutError::UnknownCanary { device, .. }) if device == "dev-99"
    ));
}

#[test]
fn a_refusal_of_an_older_version_is_not_a_failure_of_this_one() {
    let mut r = rollout(1, Plan::default());
    r.step(|_| None, 0);
    let old_refusal = |_: &str| Some(Seen::config(7, 3, Some((5, "x".into()))));
    assert_eq!(r.step(old_refusal, 1), vec![]);
    assert_eq!(r.failed(), 0);
}

#[test]
fn the_engine_state_survives_a_round_trip_through_json() {
    let mut r = rollout(10, Plan::default());
    r.step(|_| Some(Seen::config(7, 3, Some((7, "no".into())))), 0);
    let back: Rollout = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

/// Review L15: one canary that falsely refuses halts the rollout; an admin can override the
/// halt, and only later failures count against the threshold.
#[test]
fn an_admin_can_override_a_halt_caused_by_one_lying_canary() {
    let plan = Plan { canary: vec!["dev-00".into()], ..Plan::default() };
    let lying: HashMap<_, _> = [("dev-00".to_string(), Kiosk::Refuses)].into();
    let answer = |d: &str| reports(&[d.to_string()], &lying).get(d).cloned();
    let mut r = rollout(8, plan);
    assert!(matches!(&r.step(|_| None, 0)[..], [Effect::Publish { wave: 1, .. }]));
    assert!(matches!(&r.step(answer, 10)[..], [Effect::Halted { .. }]));
    assert_eq!(r.status, RolloutStatus::Halted);
    assert!(r.admin(Control::Resume, 20).is_err(), "a plain resume does not lift a halt");
    r.admin(Control::OverrideHalt, 20).unwrap();
    assert_eq!((r.status, r.forgiven, r.wave_started_at), (RolloutStatus::Running, 1, 20));
    let effects = r.step(answer, 21);
    assert!(matches!(&effects[..], [Effect::Publish { wave: 2, .. }]), "{effects:?}");
    assert!(r.admin(Control::OverrideHalt, 22).is_err(), "only a halted rollout");
    // Later failures count again: every kiosk of wave 2 refusing halts it once more.
    let all_refuse = |_: &str| Some(Seen::config(7, 3, Some((7, "bad".into()))));
    assert!(matches!(&r.step(all_refuse, 30)[..], [Effect::Halted { .. }]));
}

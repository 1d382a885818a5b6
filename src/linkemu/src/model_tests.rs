//! Unit tests of the link model (`model.rs`).

use std::time::Duration;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Offers `count` packets of `size` bytes every `gap`, starting at `gap`.
fn run(direction: &mut Direction, count: u32, size: usize, gap: Duration) -> Vec<Verdict> {
    run_from(direction, gap, count, size, gap)
}

/// Offers `count` packets of `size` bytes every `gap`, starting at `start`.
fn run_from(
    direction: &mut Direction,
    start: Duration,
    count: u32,
    size: usize,
    gap: Duration,
) -> Vec<Verdict> {
    (0..count).map(|i| direction.offer(start + gap * i, size)).collect()
}

fn delivery_times(verdicts: &[Verdict]) -> Vec<Duration> {
    verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Deliver { at } => Some(*at),
            Verdict::Drop(_) => None,
        })
        .collect()
}

#[test]
fn random_loss_matches_its_mean() {
    let ge = |p_good_to_bad, p_bad_to_good, loss_in_good, loss_in_bad| Loss::GilbertElliott {
        p_good_to_bad,
        p_bad_to_good,
        loss_in_good,
        loss_in_bad,
    };
    // (loss, packets, expected fraction, tolerance)
    let cases = [
        (Loss::None, 10_000, 0.0, 0.0),
        (Loss::Bernoulli { p: 0.05 }, 10_000, 0.05, 0.01),
        (Loss::Bernoulli { p: 0.5 }, 10_000, 0.5, 0.02),
        (Loss::Bernoulli { p: 1.0 }, 10_000, 1.0, 0.0),
        (ge(0.01, 0.3, 0.0, 0.5), 200_000, 0.5 * 0.01 / 0.31, 0.003),
        (ge(0.05, 0.2, 0.01, 0.8), 200_000, (0.2 * 0.01 + 0.05 * 0.8) / 0.25, 0.01),
        (ge(0.0, 0.0, 0.02, 1.0), 200_000, 0.02, 0.003),
    ];
    for (loss, packets, expected, tolerance) in cases {
        assert!((loss.mean() - expected).abs() < 1e-12, "{loss:?}: stationary mean");
        for seed in [1, 2, 3] {
            let profile = LinkProfile { loss, ..LinkProfile::clean() };
            let mut direction = Direction::new(profile, seed);
            run(&mut direction, packets, 100, MS);
            let summary = direction.summary();
            let lost = summary.loss_fraction();
            assert!((lost - expected).abs() <= tolerance, "{loss:?} seed {seed}: lost {lost}");
            assert_eq!(summary.dropped_queue_full, 0, "{loss:?}: unlimited rate never queues");
        }
    }
}

#[test]
fn gilbert_elliott_loss_comes_in_bursts() {
    let loss = Loss::GilbertElliott {
        p_good_to_bad: 0.01,
        p_bad_to_good: 0.1,
        loss_in_good: 0.0,
        loss_in_bad: 1.0,
    };
    let mut direction = Direction::new(LinkProfile { loss, ..LinkProfile::clean() }, 7);
    let verdicts = run(&mut direction, 100_000, 100, MS);
    let dropped = |v: &Verdict| matches!(v, Verdict::Drop(_));
    let losses = verdicts.iter().filter(|v| dropped(v)).count();
    let bursts = verdicts.windows(2).filter(|w| !dropped(&w[0]) && dropped(&w[1])).count();
    let mean_burst = losses as f64 / bursts as f64;
    assert!((8.0..12.0).contains(&mean_burst), "mean burst {mean_burst}, expected about 10");
}

#[test]
fn a_rate_limited_link_never_delivers_faster_than_its_rate() {
    // (rate, offered packets per second, packet size)
    let cases = [(300_000, 75, 1000), (300_000, 300, 200), (1_000_000, 200, 1200)];
    for (rate, per_second, size) in cases {
        let profile = LinkProfile { rate_bps: Some(rate), queue: 100 * MS, ..LinkProfile::clean() };
        let mut direction = Direction::new(profile, 1);
        let verdicts =
            run(&mut direction, per_second * 10, size, Duration::from_secs(1) / per_second);
        let summary = direction.summary();
        let one_packet = 8 * size as u64; // a window may hold one packet more than the rate
        for (i, bps) in summary.delivered_bps.iter().enumerate() {
            assert!(*bps <= rate + one_packet, "{rate} b/s: window {i} delivered {bps} b/s");
        }
        let offered = per_second as u64 * size as u64 * 8;
        assert!(summary.dropped_queue_full > 0, "{rate} b/s offered {offered}: no overflow");
        assert!(summary.queue_delay_p95_ms <= 100.0, "{rate} b/s: {summary:?}");
        let delivered = summary.bytes_delivered * 8 / 10;
        assert!(delivered as f64 > rate as f64 * 0.95, "{rate} b/s: only {delivered} b/s");
        let times = delivery_times(&verdicts);
        let tx = direction.profile().serialisation(size);
        assert!(times.windows(2).all(|w| w[1] - w[0] >= tx), "{rate} b/s: spacing below {tx:?}");
    }
}

#[test]
fn traffic_under_the_rate_is_neither_queued_nor_dropped() {
    let mut direction = Direction::new(LinkProfile::floor(), 3);
    direction.set_profile(LinkProfile { loss: Loss::None, ..LinkProfile::floor() });
    let verdicts = run(&mut direction, 500, 1000, 50 * MS); // 160 kb/s on 300 kb/s
    for (i, verdict) in verdicts.iter().enumerate() {
        let sent = 50 * MS * (i as u32 + 1);
        let expected = sent + LinkProfile::floor().serialisation(1000) + 150 * MS;
        assert_eq!(*verdict, Verdict::Deliver { at: expected }, "packet {i}");
    }
    assert_eq!(direction.summary().queue_delay_p95_ms, 0.0);
}

#[test]
fn delay_and_jitter_never_reorder() {
    // (delay, jitter, rate)
    let cases = [
        (60 * MS, 30 * MS, None),
        (60 * MS, 30 * MS, Some(600_000)),
        (5 * MS, 20 * MS, None),
        (Duration::ZERO, 10 * MS, Some(2_000_000)),
    ];
    for (delay, jitter, rate_bps) in cases {
        let profile = LinkProfile { delay, jitter, rate_bps, ..LinkProfile::clean() };
        let mut direction = Direction::new(profile, 11);
        let verdicts = run(&mut direction, 5_000, 100, 2 * MS); // 400 kb/s: no queueing
        let times = delivery_times(&verdicts);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{delay:?}±{jitter:?}: reordered");
        let one_way: Vec<Duration> =
            direction.log().iter().zip(&times).map(|(r, at)| *at - r.t_in).collect();
        let (min, max) = (one_way.iter().min().unwrap(), one_way.iter().max().unwrap());
        assert!(*min >= delay.saturating_sub(jitter), "{delay:?}±{jitter:?}: min {min:?}");
        assert!(*max <= delay + jitter + 5 * MS, "{delay:?}±{jitter:?}: max {max:?}");
        assert!(*max - *min >= jitter / 2, "{delay:?}±{jitter:?}: no jitter ({min:?}..{max:?})");
    }
}

#[test]
fn same_seed_same_verdicts() {
    let verdicts = |seed| {
        let mut direction = Direction::new(LinkProfile::lte_poor(), seed);
        run(&mut direction, 2_000, 1200, 10 * MS)
    };
    assert_eq!(verdicts(42), verdicts(42));
    assert_ne!(verdicts(42), verdicts(43));
}

#[test]
fn set_profile_mid_stream() {
    let mut direction = Direction::new(LinkProfile::satellite(), 5);
    let before = run(&mut direction, 100, 1000, 10 * MS); // 800 kb/s on 1 Mb/s
    assert!(delivery_times(&before).iter().all(|at| *at >= 300 * MS));

    // An outage drops everything; nothing offered before changes.
    direction.set_profile(LinkProfile::outage());
    let t = |i: u32| Duration::from_secs(1) + 10 * MS * i;
    for i in 0..100 {
        assert_eq!(direction.offer(t(i), 1000), Verdict::Drop(DropReason::Random));
    }
    let log = direction.log();
    assert_eq!(log.iter().map(|r| r.verdict).take(100).collect::<Vec<_>>(), before);

    // A rate step to 100 kb/s: packets are now spaced 80 ms apart and the queue overflows.
    direction.set_profile(LinkProfile { rate_bps: Some(100_000), ..LinkProfile::satellite() });
    let after = run_from(&mut direction, Duration::from_secs(2), 100, 1000, 10 * MS);
    let times = delivery_times(&after);
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 80 * MS));
    assert_eq!(direction.summary().dropped_queue_full as usize, 100 - times.len());
    assert_eq!(direction.profile().rate_bps, Some(100_000));
}

#[test]
fn presets_have_their_documented_values() {
    let floor = LinkProfile::preset("floor").unwrap();
    assert_eq!(floor.rate_bps, Some(300_000));
    assert_eq!((floor.delay, floor.queue), (150 * MS, 100 * MS));
    assert_eq!(floor.loss, Loss::Bernoulli { p: 0.05 });
    assert_eq!(LinkProfile::preset("outage").unwrap().loss.mean(), 1.0);
    for name in PRESETS {
        assert!(LinkProfile::preset(name).is_some(), "{name}");
    }
    assert_eq!(LinkProfile::preset("nope"), None);
    assert_eq!(LinkProfile::good().serialisation(1500), Duration::from_micros(600));
    assert_eq!(LinkProfile::clean().serialisation(1500), Duration::ZERO);
}

#[test]
fn a_zero_rate_drops_everything() {
    let profile = LinkProfile { rate_bps: Some(0), ..LinkProfile::clean() };
    let mut direction = Direction::new(profile, 1);
    let verdicts = run(&mut direction, 10, 100, MS);
    assert!(verdicts.iter().all(|v| *v == Verdict::Drop(DropReason::QueueFull)), "{verdicts:?}");
}

//! Bandwidth estimation from transport-wide congestion control feedback: plain arithmetic over
//! what the clinician's side reports (sent vs received bitrate, loss, the trend of inter-packet
//! delay), fed by [`super::control`] each time a feedback report is processed.
//!
//! Why not Google congestion control as gst-plugins-rs' `rtpgccbwe` implements it: measured on
//! the floor link (5 % random loss), its loss controller holds between 2 and 10 % loss and only
//! ever decreases above, so one burst of queue drops lowered the estimate for good (63 kb/s,
//! video paused for the rest of the call). Rural links lose packets at random (radio, DSL noise)
//! without being full; here loss alone is not taken as congestion. Congestion shows as the link
//! delivering less than it is given, or as queueing delay growing, and both are answered at once.

use std::time::Duration;

/// Delivered-rate shortfall (beyond random loss), as a share of what was sent, that means the
/// link is full. Each report covers a tenth of a second, so single reports are noisy: the
/// signals are smoothed over about half a second first.
const SHORTFALL: f64 = 0.12;
/// Below this share of what was sent arriving, the link is far too small whatever the loss
/// says (a step down: a full drop-tail queue drops most of what it is given).
const DELIVERED_FLOOR: f64 = 0.6;
/// Average growth of the inter-packet delay that means a queue is building (1 ms).
const DELAY_GROWTH_NS: f64 = 1_000_000.0;
/// Weight of a new report in the smoothed signals.
const SMOOTHING: f64 = 0.3;
/// Reports on fewer packets say nothing about congestion (voice alone: 5 packets a report).
const MIN_PACKETS: u32 = 12;
/// Decreases at most this often, so one congestion event is not answered twice.
const DECREASE_EVERY: Duration = Duration::from_millis(500);
/// Increase per second when nothing says the link is full.
const INCREASE_PER_SEC: f64 = 0.08;

/// One transport-wide feedback summary (GStreamer's `twcc-stats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    /// Packets the report covers.
    pub packets: u32,
    /// What the kiosk sent, bit/s, over the reported packets.
    pub sent_bps: u32,
    /// What arrived at the far end, bit/s.
    pub received_bps: u32,
    /// Share of the reported packets that never arrived, 0.0–1.0.
    pub loss: f64,
    /// Average growth of the inter-packet delay, ns (positive: a queue is building).
    pub delay_growth_ns: i64,
}

/// The estimator: its target, between a floor and a cap, and the smoothed signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimator {
    target: f64,
    min: f64,
    max: f64,
    shortfall: f64,
    delivered_share: f64,
    delay_growth: f64,
    loss: f64,
    received: Option<f64>,
    last_update: Option<Duration>,
    last_decrease: Option<Duration>,
}

impl Estimator {
    /// Starts at `start` bit/s, never leaving `[min, max]`.
    pub fn new(start: u32, min: u32, max: u32) -> Self {
        let (min, max) = (min as f64, max.max(min) as f64);
        Self {
            target: (start as f64).clamp(min, max),
            min,
            max,
            shortfall: 0.0,
            delivered_share: 1.0,
            delay_growth: 0.0,
            loss: 0.0,
            received: None,
            last_update: None,
            last_decrease: None,
        }
    }

    /// The estimate, bit/s.
    pub fn target(&self) -> u32 {
        self.target as u32
    }

    /// The loss the feedback reports, smoothed, 0.0–1.0.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Takes one feedback summary at time `now` and returns the new estimate.
    pub fn update(&mut self, now: Duration, f: Feedback) -> u32 {
        let elapsed = self.last_update.map_or(Duration::ZERO, |t| now.saturating_sub(t));
        self.last_update = Some(now);
        let (sent, received) = (f.sent_bps as f64, f.received_bps as f64);
        let loss = f.loss.clamp(0.0, 1.0);
        let significant = f.packets >= MIN_PACKETS && sent > 0.0;
        if significant {
            // What the link failed to deliver beyond what random loss explains.
            let shortfall = ((sent * (1.0 - loss) - received) / sent).max(0.0);
            let smooth = |old: f64, new: f64| old + SMOOTHING * (new - old);
            self.shortfall = smooth(self.shortfall, shortfall);
            self.delivered_share = smooth(self.delivered_share, (received / sent).min(1.0));
            self.delay_growth = smooth(self.delay_growth, f.delay_growth_ns as f64);
            self.loss = smooth(self.loss, loss);
            self.received = Some(self.received.map_or(received, |r| smooth(r, received)));
        }
        // Small reports (voice alone) only let the estimate grow; they say nothing of a queue.
        // The reported loss counts packets still in flight on a long link (measured 18 % on the
        // floor link's 5 %), so it is no congestion signal here; a link that drops what it cannot
        // carry shows a shortfall anyway.
        let swamped = self.delivered_share < DELIVERED_FLOOR;
        let full = significant && (self.shortfall > SHORTFALL || swamped);
        let queueing = significant && self.delay_growth > DELAY_GROWTH_NS;
        let delivered = self.received.unwrap_or(self.target);
        if full || queueing {
            let may = self.last_decrease.is_none_or(|t| now.saturating_sub(t) >= DECREASE_EVERY);
            if may {
                self.last_decrease = Some(now);
                self.target = if swamped || self.shortfall > 0.5 {
                    // Far above the link (a step down): straight to what it delivers.
                    delivered * 0.9
                } else {
                    (delivered * 0.9).clamp(self.target * 0.7, self.target * 0.95)
                };
            }
        } else {
            let secs = elapsed.as_secs_f64().min(1.0);
            let mut next = self.target * (1.0 + INCREASE_PER_SEC * secs);
            if sent < 0.6 * self.target {
                // Sending far less than the target (video paused, a still picture): the target
                // may run ahead of what was tried, but not without bound.
                // Room for the ladder's last rung on top of the voice, so video can resume.
                next = next.min((1.5 * received + 60_000.0).max(self.target));
            } else {
                // Never far ahead of what the link has shown it delivers.
                next = next.min((1.3 * delivered).max(self.target));
            }
            self.target = next;
        }
        self.target = self.target.clamp(self.min, self.max);
        self.target()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A link of `capacity` bit/s with `random_loss`: what feedback the sender would see when it
    /// sends at the estimate (queue drops and delay growth once above the capacity).
    fn link(capacity: f64, random_loss: f64) -> impl Fn(u32) -> Feedback {
        move |sent| {
            let offered = sent as f64 * (1.0 - random_loss);
            let over = offered > capacity;
            Feedback {
                packets: 30,
                sent_bps: sent,
                received_bps: offered.min(capacity) as u32,
                loss: if over { 1.0 - capacity / sent as f64 } else { random_loss },
                delay_growth_ns: if over { 4_000_000 } else { 0 },
            }
        }
    }

    /// Runs `seconds` of feedback every 100 ms; returns the estimates, one per feedback.
    fn run(
        e: &mut Estimator,
        from: Duration,
        seconds: u64,
        link: &dyn Fn(u32) -> Feedback,
    ) -> Vec<u32> {
        (0..seconds * 10)
            .map(|i| {
                let sent = e.target();
                e.update(from + Duration::from_millis(100 * i), link(sent))
            })
            .collect()
    }

    #[test]
    fn random_loss_alone_does_not_lower_the_estimate() {
        let mut e = Estimator::new(300_000, 60_000, 3_000_000);
        let seen = run(&mut e, Duration::ZERO, 5, &link(10_000_000.0, 0.05));
        assert!(seen.windows(2).all(|w| w[1] >= w[0]), "{seen:?}");
        assert!(e.target() > 400_000, "{}", e.target());
    }

    #[test]
    fn on_the_floor_link_it_settles_just_under_the_link() {
        let mut e = Estimator::new(300_000, 60_000, 3_000_000);
        let seen = run(&mut e, Duration::ZERO, 60, &link(300_000.0, 0.05));
        let tail = &seen[300..];
        let (lo, hi) = (tail.iter().min().unwrap(), tail.iter().max().unwrap());
        assert!(*lo >= 200_000 && *hi <= 340_000, "settled between {lo} and {hi}");
    }

    #[test]
    fn a_step_down_is_followed_within_three_seconds_and_a_step_up_within_thirty() {
        let mut e = Estimator::new(2_500_000, 60_000, 2_500_000);
        run(&mut e, Duration::ZERO, 10, &link(2_600_000.0, 0.0));
        assert!(e.target() >= 2_300_000, "{}", e.target());
        let down = run(&mut e, Duration::from_secs(10), 3, &link(300_000.0, 0.0));
        assert!(down.iter().any(|&b| b <= 300_000), "not below 300 kb/s within 3 s: {down:?}");
        let up = run(&mut e, Duration::from_secs(13), 30, &link(2_600_000.0, 0.0));
        let first_above = up.iter().position(|&b| b > 1_000_000).expect("never above 1 Mb/s");
        assert!(first_above <= 300, "above 1 Mb/s only after {} s", first_above / 10);
    }

    #[test]
    fn a_shortfall_and_growing_delay_each_lower_it() {
        let quiet = Feedback {
            packets: 30,
            sent_bps: 500_000,
            received_bps: 500_000,
            loss: 0.0,
            delay_growth_ns: 0,
        };
        let mut e = Estimator::new(500_000, 60_000, 3_000_000);
        let short = Feedback { received_bps: 200_000, ..quiet };
        assert!(e.update(100 * MS, short) < 500_000);
        let mut e = Estimator::new(500_000, 60_000, 3_000_000);
        let queueing = Feedback { delay_growth_ns: 5_000_000, ..quiet };
        assert_eq!(e.update(100 * MS, queueing), 450_000);
        // Not twice within half a second.
        assert_eq!(e.update(300 * MS, queueing), 450_000);
        assert!(e.update(600 * MS, queueing) < 450_000);
        // One noisy report is not enough: the signals are smoothed.
        let mut e = Estimator::new(500_000, 60_000, 3_000_000);
        let blip = Feedback { delay_growth_ns: 2_000_000, ..quiet };
        assert!(e.update(100 * MS, blip) >= 500_000);
    }

    #[test]
    fn while_the_video_is_paused_the_estimate_still_recovers_but_not_without_bound() {
        let mut e = Estimator::new(63_000, 60_000, 3_000_000);
        // Voice alone: 40 kb/s sent and delivered, whatever the estimate.
        let voice = Feedback {
            packets: 5,
            sent_bps: 40_000,
            received_bps: 40_000,
            loss: 0.05,
            delay_growth_ns: 0,
        };
        let seen: Vec<u32> =
            (0..200).map(|i| e.update(Duration::from_millis(100 * i), voice)).collect();
        // What the ladder's last rung needs to resume (see `rate`).
        let last = *seen.last().unwrap();
        assert!(last >= 119_000, "never enough to resume video: {seen:?}");
        assert!(last <= 120_000, "ran away: {last}");
        let resume = crate::media::rate::allocate(last, 0.05, false).video_bps;
        assert!(resume as u64 * 100 >= crate::media::rate::LADDER[4].min_video_bps as u64 * 120);
    }

    #[test]
    fn the_estimate_stays_within_its_bounds() {
        let mut e = Estimator::new(10_000_000, 60_000, 2_000_000);
        assert_eq!(e.target(), 2_000_000);
        let dead = Feedback {
            packets: 30,
            sent_bps: 2_000_000,
            received_bps: 0,
            loss: 1.0,
            delay_growth_ns: 0,
        };
        for i in 0..40 {
            e.update(Duration::from_millis(300 * i), dead);
        }
        assert_eq!(e.target(), 60_000);
    }
}

//! Bandwidth estimation from transport-wide congestion control feedback: plain arithmetic over
//! what the clinician's side reports (which packets arrived, the trend of inter-packet delay),
//! fed by [`super::control`] each time a feedback report is processed.
//!
//! Why not Google congestion control as gst-plugins-rs' `rtpgccbwe` implements it: measured on
//! the floor link (5 % random loss), its loss controller holds between 2 and 10 % loss and only
//! ever decreases above, so one burst of queue drops lowered the estimate for good (63 kb/s,
//! video paused for the rest of the call). Rural links lose packets at random (radio, DSL noise)
//! without being full. So here the share of what arrives is compared with what this link
//! usually delivers (its random loss, learned while it is not full): a full link delivers
//! clearly less than usual. That, or queueing delay growing, is answered at once.
//!
//! The share is taken from the packets the report says arrived, not from its sent and received
//! bitrates: over the few packets a report covers (4 to 13, Chromium and GStreamer alike) the
//! received bitrate read 20 % under the sent one on a link that was not full, which lowered the
//! estimate until the video paused. Reports are gathered until they cover enough packets to say
//! anything.

use std::time::Duration;

/// Fewer arriving than usual by this share (of what was sent) means the link is full. Each
/// report covers about a tenth of a second, so reports are smoothed over about half a second.
const SHORTFALL: f64 = 0.10;
/// Below this share of what was sent arriving, the link is far too small whatever is usual
/// (a step down: a full drop-tail queue drops most of what it is given).
const DELIVERED_FLOOR: f64 = 0.6;
/// Average growth of the inter-packet delay that means a queue is building (1 ms).
const DELAY_GROWTH_NS: f64 = 1_000_000.0;
/// Weight of a new report in the smoothed signals, and in the usual share (slow).
const SMOOTHING: f64 = 0.3;
const USUAL_SMOOTHING: f64 = 0.03;
/// Reports are gathered until they cover this many packets before they are judged: Chromium
/// sends one every few packets (4 to 13 measured on the floor link), and voice alone is 5 a
/// report; judged one by one they said nothing and the estimate ran past the link.
const MIN_PACKETS: u32 = 12;
/// Decreases at most this often, so one congestion event is not answered twice.
const DECREASE_EVERY: Duration = Duration::from_millis(500);
/// Increase per second when nothing says the link is full (from 300 kb/s to 1.2 Mb/s in about
/// 20 s). Faster starts overshot the floor link by three times for seconds (retransmissions of
/// the queue's drops included) before the first feedback could say so.
const INCREASE_PER_SEC: f64 = 0.08;
/// Near where the link last filled up (from 15 % below to 20 % above), the increase is gentle:
/// probing the limit at 8 %/s overshot the floor link for seconds each time, and so did going
/// back to 8 %/s once only 10 % past it (seen at 1.2 times the floor link, on a 270p rung).
const NEAR_LIMIT: (f64, f64) = (0.85, 1.20);
const NEAR_LIMIT_INCREASE_PER_SEC: f64 = 0.03;
/// A limit not met again for this long is forgotten (the link may have got better).
const LIMIT_MEMORY: Duration = Duration::from_secs(30);

/// One transport-wide feedback summary (GStreamer's `twcc-stats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    /// Packets the report covers.
    pub packets: u32,
    /// The video is paused: only voice is sent, whatever the target.
    pub voice_only: bool,
    /// What the kiosk sent, bit/s, over the reported packets.
    pub sent_bps: u32,
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
    /// Share of what was sent that arrived: smoothed, and what this link usually delivers.
    delivered_share: f64,
    usual_share: Option<f64>,
    delay_growth: f64,
    loss: f64,
    /// What arrives, bit/s (sent less lost), smoothed.
    delivered: Option<f64>,
    /// While only voice is sent the estimate grows up to this, where video can resume.
    resume: f64,
    last_update: Option<Duration>,
    /// Reports gathered since the last judgement, merged.
    pending: Option<Feedback>,
    last_decrease: Option<Duration>,
    /// The target when the link last filled up.
    limit: Option<f64>,
}

impl Estimator {
    /// Starts at `start` bit/s, never leaving `[min, max]`.
    pub fn new(start: u32, min: u32, max: u32) -> Self {
        let (min, max) = (min as f64, max.max(min) as f64);
        Self {
            target: (start as f64).clamp(min, max),
            min,
            max,
            delivered_share: 1.0,
            usual_share: None,
            delay_growth: 0.0,
            loss: 0.0,
            delivered: None,
            resume: min,
            last_update: None,
            pending: None,
            last_decrease: None,
            limit: None,
        }
    }

    /// While the video is paused the estimate may grow up to `bps` (what the last rung needs to
    /// resume), and no further: voice alone says little of the link.
    pub fn resume_at(mut self, bps: u32) -> Self {
        self.resume = (bps as f64).clamp(self.min, self.max);
        self
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
        // Voice alone (the video paused) is never gathered: five packets a report say nothing
        // of a queue, and summed they only add up noise; they let the estimate grow, capped.
        let f = if f.voice_only {
            f
        } else {
            let f = self.pending.take().map_or(f, |p| merge(p, f));
            if f.packets < MIN_PACKETS {
                self.pending = Some(f);
                return self.target();
            }
            f
        };
        let elapsed = self.last_update.map_or(Duration::ZERO, |t| now.saturating_sub(t));
        self.last_update = Some(now);
        let sent = f.sent_bps as f64;
        let loss = f.loss.clamp(0.0, 1.0);
        let significant = !f.voice_only && f.packets >= MIN_PACKETS && sent > 0.0;
        if significant {
            let smooth = |old: f64, new: f64, w: f64| old + w * (new - old);
            let share = 1.0 - loss;
            let delivered = sent * share;
            self.delivered_share = smooth(self.delivered_share, share, SMOOTHING);
            self.delay_growth = smooth(self.delay_growth, f.delay_growth_ns as f64, SMOOTHING);
            self.loss = smooth(self.loss, loss, SMOOTHING);
            self.delivered =
                Some(self.delivered.map_or(delivered, |d| smooth(d, delivered, SMOOTHING)));
        }
        let usual = self.usual_share.unwrap_or(1.0);
        let swamped = self.delivered_share < DELIVERED_FLOOR;
        let full = significant && (self.delivered_share < usual - SHORTFALL || swamped);
        let queueing = significant && self.delay_growth > DELAY_GROWTH_NS;
        let delivered = self.delivered.unwrap_or(self.target);
        if full || queueing {
            let may = self.last_decrease.is_none_or(|t| now.saturating_sub(t) >= DECREASE_EVERY);
            if may {
                self.last_decrease = Some(now);
                self.limit = Some(self.target);
                self.target = if swamped {
                    // Far above the link (a step down): straight to what it delivers.
                    delivered * 0.9
                } else {
                    (delivered * 0.9).clamp(self.target * 0.7, self.target * 0.95)
                };
            }
        } else {
            let forgotten = self.last_decrease.is_none_or(|t| now.saturating_sub(t) > LIMIT_MEMORY);
            let near = self.limit.is_some_and(|l| {
                !forgotten && self.target >= NEAR_LIMIT.0 * l && self.target <= NEAR_LIMIT.1 * l
            });
            if significant && !near {
                // Clearly below any limit: what arrives now is what this link delivers (its
                // random loss). Near the limit a slight overload would teach it to expect less.
                let learned = self.usual_share.map_or(self.delivered_share, |u| {
                    u + USUAL_SMOOTHING * (self.delivered_share - u)
                });
                self.usual_share = Some(learned);
            }
            // Voice alone is reported on rarely (GStreamer's feedback statistics came every 12 s
            // with the video paused): count all the time since, as the cap below bounds it.
            let most = if f.voice_only { 15.0 } else { 1.0 };
            let secs = elapsed.as_secs_f64().min(most);
            let rate = if near { NEAR_LIMIT_INCREASE_PER_SEC } else { INCREASE_PER_SEC };
            let mut next = self.target * (1.0 + rate * secs);
            // Voice alone says little of the link: the target may run ahead of it, but only as
            // far as the ladder's last rung needs to resume. (A still picture also sends less
            // than its share; that is not capped, or the ladder and the estimate would each wait
            // for the other.)
            if f.voice_only {
                next = next.min(self.resume.max(self.target));
            }
            self.target = next;
        }
        self.target = self.target.clamp(self.min, self.max);
        self.target()
    }
}

/// Two reports as one, each figure weighted by the packets it covers.
fn merge(a: Feedback, b: Feedback) -> Feedback {
    let (wa, wb) = (a.packets as f64, b.packets as f64);
    let total = (wa + wb).max(1.0);
    let mean = |x: f64, y: f64| (x * wa + y * wb) / total;
    Feedback {
        packets: a.packets + b.packets,
        voice_only: b.voice_only,
        sent_bps: mean(a.sent_bps as f64, b.sent_bps as f64) as u32,
        loss: mean(a.loss, b.loss),
        delay_growth_ns: mean(a.delay_growth_ns as f64, b.delay_growth_ns as f64) as i64,
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
                voice_only: false,
                sent_bps: sent,
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
    fn a_full_queue_is_found_by_its_drops_when_the_delay_no_longer_grows() {
        // A drop-tail queue that has filled: constant delay, losses on top of the random ones.
        let full = |sent: u32| {
            let mut f = link(300_000.0, 0.05)(sent);
            f.delay_growth_ns = 0;
            f
        };
        let mut e = Estimator::new(300_000, 60_000, 3_000_000);
        let seen = run(&mut e, Duration::ZERO, 60, &full);
        let tail = &seen[300..];
        let (lo, hi) = (tail.iter().min().unwrap(), tail.iter().max().unwrap());
        // Without a delay signal the drops alone hold it within a third of the link.
        assert!(*lo >= 180_000 && *hi <= 410_000, "settled between {lo} and {hi}");
    }

    #[test]
    fn small_reports_are_judged_together() {
        // Chromium's feedback: four packets a report, a full link in every one of them.
        let small = Feedback {
            packets: 4,
            voice_only: false,
            sent_bps: 600_000,
            loss: 0.5,
            delay_growth_ns: 3_000_000,
        };
        let mut e = Estimator::new(600_000, 60_000, 3_000_000);
        let seen: Vec<u32> =
            (0..6).map(|i| e.update(Duration::from_millis(50 * i), small)).collect();
        assert_eq!(&seen[..2], &[600_000, 600_000], "not judged before 12 packets");
        assert!(seen[2] < 600_000, "judged on the third: {seen:?}");
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
            voice_only: false,
            sent_bps: 500_000,
            loss: 0.0,
            delay_growth_ns: 0,
        };
        let mut e = Estimator::new(500_000, 60_000, 3_000_000);
        let short = Feedback { loss: 0.6, ..quiet };
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
        let resume = crate::media::rate::estimate_to_resume();
        let mut e = Estimator::new(63_000, 60_000, 3_000_000).resume_at(resume);
        // Voice alone: 16 kb/s sent (its payload), whatever the estimate.
        let voice = Feedback {
            packets: 5,
            voice_only: true,
            sent_bps: 16_000,
            loss: 0.05,
            delay_growth_ns: 0,
        };
        let seen: Vec<u32> =
            (0..200).map(|i| e.update(Duration::from_millis(100 * i), voice)).collect();
        // What the ladder's last rung needs to resume (see `rate`).
        let last = *seen.last().unwrap();
        assert_eq!(last, resume, "grows to where video resumes, and no further: {seen:?}");
        let video = crate::media::rate::allocate(last, 0.05, false).video_bps;
        assert!(video as u64 * 100 >= crate::media::rate::LADDER[4].min_video_bps as u64 * 120);
    }

    #[test]
    fn rare_voice_reports_still_bring_the_estimate_to_where_video_resumes() {
        let resume = crate::media::rate::estimate_to_resume();
        let mut e = Estimator::new(63_000, 60_000, 3_000_000).resume_at(resume);
        let voice = Feedback {
            packets: 600,
            voice_only: true,
            sent_bps: 16_000,
            loss: 0.05,
            delay_growth_ns: 0,
        };
        e.update(Duration::ZERO, voice);
        // From the floor, two reports 12 s apart (GStreamer's cadence with the video paused).
        assert!(e.update(Duration::from_secs(12), voice) > 110_000, "the first report counts 12 s");
        assert_eq!(e.update(Duration::from_secs(24), voice), resume, "the second reaches it");
    }

    #[test]
    fn the_estimate_stays_within_its_bounds() {
        let mut e = Estimator::new(10_000_000, 60_000, 2_000_000);
        assert_eq!(e.target(), 2_000_000);
        let dead = Feedback {
            packets: 30,
            voice_only: false,
            sent_bps: 2_000_000,
            loss: 1.0,
            delay_growth_ns: 0,
        };
        for i in 0..40 {
            e.update(Duration::from_millis(300 * i), dead);
        }
        assert_eq!(e.target(), 60_000);
    }
}

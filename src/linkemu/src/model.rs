//! The pure model of one direction of a link: no I/O and no clock.
//!
//! Time is a [`Duration`] since an arbitrary epoch chosen by the caller, and every random choice
//! comes from a [`fastrand::Rng`] seeded at construction, so the same seed and the same sequence
//! of [`Direction::offer`] calls always give the same verdicts.
//!
//! A packet goes through three stages, in this order:
//! 1. **random loss** ([`Loss`]): a lost packet never reaches the queue;
//! 2. **bottleneck** (`rate_bps`): packets are serialised one after the other, each occupying the
//!    link for `size * 8 / rate` seconds; a packet that would wait in the queue longer than
//!    `queue` is dropped (drop-tail);
//! 3. **propagation**: `delay` plus a uniform jitter in `[-jitter, +jitter]`, clamped so that a
//!    packet never leaves before the one offered before it (no reordering).

use std::time::Duration;

use crate::record::{DropReason, PacketRecord, Summary, Verdict};

/// Queue limit of the presets that do not name one: 200 ms of traffic at the link's rate.
pub const DEFAULT_QUEUE: Duration = Duration::from_millis(200);

/// Names accepted by [`LinkProfile::preset`], in the order of the README's table.
pub const PRESETS: [&str; 7] = ["clean", "good", "dsl", "lte-poor", "satellite", "floor", "outage"];

/// Random packet loss.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    /// No random loss.
    #[default]
    None,
    /// Each packet is lost independently with probability `p` (0..=1).
    Bernoulli {
        /// Loss probability.
        p: f64,
    },
    /// Two-state Markov chain (bursty loss). The state changes before each packet, then the
    /// packet is lost with the probability of the state it is in. The chain starts good.
    GilbertElliott {
        /// Probability of moving from the good to the bad state, per packet.
        p_good_to_bad: f64,
        /// Probability of moving from the bad to the good state, per packet.
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_in_good: f64,
        /// Loss probability in the bad state.
        loss_in_bad: f64,
    },
}

impl Loss {
    /// Long-run fraction of packets lost. For Gilbert-Elliott this is the stationary mean
    /// `π_G · loss_in_good + π_B · loss_in_bad` with `π_B = p_gb / (p_gb + p_bg)`.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Bernoulli { p } => p.clamp(0.0, 1.0),
            Loss::GilbertElliott { p_good_to_bad, p_bad_to_good, loss_in_good, loss_in_bad } => {
                let moves = p_good_to_bad + p_bad_to_good;
                if moves <= 0.0 {
                    return loss_in_good; // the chain never leaves the good state
                }
                let bad = p_good_to_bad / moves;
                (1.0 - bad) * loss_in_good + bad * loss_in_bad
            }
        }
    }
}

/// Everything that shapes one direction of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkProfile {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Uniform jitter added to `delay`, in `[-jitter, +jitter]`; never reorders packets.
    pub jitter: Duration,
    /// Random loss, applied before the queue.
    pub loss: Loss,
    /// Bottleneck rate in bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Drop-tail queue limit, as the longest a packet may wait for the bottleneck.
    pub queue: Duration,
}

impl Default for LinkProfile {
    /// The `clean` preset: no delay, no loss, unlimited rate.
    fn default() -> Self {
        Self::clean()
    }
}

impl LinkProfile {
    /// `clean`: unlimited rate, no delay, no loss.
    pub fn clean() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::None,
            rate_bps: None,
            queue: DEFAULT_QUEUE,
        }
    }

    /// `good`: 20 Mb/s, 10 ms one way.
    pub fn good() -> Self {
        Self { rate_bps: Some(20_000_000), delay: ms(10), ..Self::clean() }
    }

    /// `dsl`: 1.5 Mb/s, 30 ms one way, 0.5 % loss.
    pub fn dsl() -> Self {
        Self {
            rate_bps: Some(1_500_000),
            delay: ms(30),
            loss: Loss::Bernoulli { p: 0.005 },
            ..Self::clean()
        }
    }

    /// `lte-poor`: 600 kb/s, 60 ms one way, ±30 ms jitter, 2 % loss.
    pub fn lte_poor() -> Self {
        Self {
            rate_bps: Some(600_000),
            delay: ms(60),
            jitter: ms(30),
            loss: Loss::Bernoulli { p: 0.02 },
            ..Self::clean()
        }
    }

    /// `satellite`: 1 Mb/s, 300 ms one way.
    pub fn satellite() -> Self {
        Self { rate_bps: Some(1_000_000), delay: ms(300), ..Self::clean() }
    }

    /// `floor`: the worst link a visit must survive: 300 kb/s, 150 ms one way, 5 % loss, 100 ms
    /// queue.
    pub fn floor() -> Self {
        Self {
            rate_bps: Some(300_000),
            delay: ms(150),
            loss: Loss::Bernoulli { p: 0.05 },
            queue: ms(100),
            ..Self::clean()
        }
    }

    /// `outage`: every packet is lost.
    pub fn outage() -> Self {
        Self { loss: Loss::Bernoulli { p: 1.0 }, ..Self::clean() }
    }

    /// The preset called `name` (one of [`PRESETS`]), if there is one.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "clean" => Self::clean(),
            "good" => Self::good(),
            "dsl" => Self::dsl(),
            "lte-poor" => Self::lte_poor(),
            "satellite" => Self::satellite(),
            "floor" => Self::floor(),
            "outage" => Self::outage(),
            _ => return None,
        })
    }

    /// Time the bottleneck needs to send `size` bytes (zero when the rate is unlimited).
    pub fn serialisation(&self, size: usize) -> Duration {
        match self.rate_bps {
            Some(rate) if rate > 0 => {
                let nanos = size as u128 * 8 * 1_000_000_000 / u128::from(rate);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            Some(_) => Duration::MAX, // 0 b/s: never done (`offer` drops every packet)
            None => Duration::ZERO,
        }
    }
}

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// One direction of a link: its profile, random state, bottleneck state and packet log.
#[derive(Debug)]
pub struct Direction {
    profile: LinkProfile,
    rng: fastrand::Rng,
    /// Gilbert-Elliott state.
    in_bad_state: bool,
    /// When the bottleneck finishes sending the last packet it accepted.
    link_free_at: Duration,
    /// Delivery time of the last delivered packet; later packets never leave before it.
    last_delivery: Duration,
    log: Vec<PacketRecord>,
}

impl Direction {
    /// A direction with `profile`, its random choices drawn from `seed`.
    pub fn new(profile: LinkProfile, seed: u64) -> Self {
        Self {
            profile,
            rng: fastrand::Rng::with_seed(seed),
            in_bad_state: false,
            link_free_at: Duration::ZERO,
            last_delivery: Duration::ZERO,
            log: Vec::new(),
        }
    }

    /// The current profile.
    pub fn profile(&self) -> &LinkProfile {
        &self.profile
    }

    /// Replaces the profile from now on. Packets already accepted keep their delivery times and
    /// still occupy the bottleneck; the Gilbert-Elliott state carries over if the new loss model
    /// is Gilbert-Elliott too.
    pub fn set_profile(&mut self, profile: LinkProfile) {
        if !matches!(profile.loss, Loss::GilbertElliott { .. }) {
            self.in_bad_state = false;
        }
        self.profile = profile;
    }

    /// Offers a packet of `size` bytes at time `now`, records it in the log and returns what
    /// happens to it. `now` must not go backwards between calls.
    pub fn offer(&mut self, now: Duration, size: usize) -> Verdict {
        let (verdict, queue_delay) = self.decide(now, size);
        self.log.push(PacketRecord { t_in: now, size, verdict, queue_delay });
        verdict
    }

    /// Every packet offered so far, in order.
    pub fn log(&self) -> &[PacketRecord] {
        &self.log
    }

    /// Counters, bitrates and queueing delays of every packet offered so far.
    pub fn summary(&self) -> Summary {
        Summary::from_records(&self.log)
    }

    fn decide(&mut self, now: Duration, size: usize) -> (Verdict, Duration) {
        if self.lose() {
            return (Verdict::Drop(DropReason::Random), Duration::ZERO);
        }
        let start = now.max(self.link_free_at);
        let waited = start - now;
        if waited > self.profile.queue || self.profile.rate_bps == Some(0) {
            return (Verdict::Drop(DropReason::QueueFull), Duration::ZERO);
        }
        let sent = start.saturating_add(self.profile.serialisation(size));
        self.link_free_at = sent;
        // The offset is never negative, so a packet never leaves before it has been sent.
        let at = sent.saturating_add(self.propagation_offset()).max(self.last_delivery);
        self.last_delivery = at;
        (Verdict::Deliver { at }, waited)
    }

    /// Draws the loss decision for the next packet.
    fn lose(&mut self) -> bool {
        match self.profile.loss {
            Loss::None => false,
            Loss::Bernoulli { p } => p > 0.0 && self.rng.f64() < p,
            Loss::GilbertElliott { p_good_to_bad, p_bad_to_good, loss_in_good, loss_in_bad } => {
                let flip = if self.in_bad_state { p_bad_to_good } else { p_good_to_bad };
                if self.rng.f64() < flip {
                    self.in_bad_state = !self.in_bad_state;
                }
                let p = if self.in_bad_state { loss_in_bad } else { loss_in_good };
                p > 0.0 && self.rng.f64() < p
            }
        }
    }

    /// `delay` plus uniform jitter, never negative.
    fn propagation_offset(&mut self) -> Duration {
        let delay = self.profile.delay.as_nanos() as i128;
        let jitter = self.profile.jitter.as_nanos().min(u128::from(u64::MAX / 2)) as u64;
        let offset = if jitter == 0 {
            0
        } else {
            i128::from(self.rng.u64(0..=2 * jitter)) - i128::from(jitter)
        };
        Duration::from_nanos(u64::try_from((delay + offset).max(0)).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;

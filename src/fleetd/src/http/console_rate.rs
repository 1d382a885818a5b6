//! How fast one console connection may send (review L10): a token bucket per socket, so one
//! console flooding the hub's shared queue is closed instead of delaying everyone's signalling.
//!
//! Plain data: the caller gives the time. It owns the bucket's arithmetic only; it must never
//! touch the socket, the hub or the clock itself.

use std::time::Instant;

/// Messages a console may send at once: joining, an answer and a few dozen candidates fit
/// several times over.
pub const BURST: f64 = 200.0;
/// Messages per second once the burst is spent: far above what a clinician's page sends.
pub const RATE: f64 = 20.0;
/// Close code for a console that sent too fast (the WebSocket "policy violation" code).
pub const TOO_FAST: u16 = 1008;

/// One connection's bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    burst: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `burst` tokens, refilled at `rate` per second from `now`.
    pub fn new(burst: f64, rate: f64, now: Instant) -> Self {
        Self { burst, rate, tokens: burst, at: now }
    }

    /// Takes one token at `now`; false if the bucket is empty (the message must be refused).
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3.0, 2.0, t0);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0), "a fourth message at once passed");
        assert!(!b.take(t0 + Duration::from_millis(400)), "refilled too fast");
        assert!(b.take(t0 + Duration::from_millis(500)), "half a second at 2/s is one token");
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| b.take(later)));
        assert!(!b.take(later));
    }
}

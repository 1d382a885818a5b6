//! Whether the clinician's media still arrives: the call's receive counters, read every half
//! second, turned into "stalled" and "flowing again" visit events. Plain data, tested alone.

use crate::visit::Event;

/// No media received for this long means the call has stalled (the patient sees
/// "Reconnecting…"; the visit machine decides what to do about it).
pub const STALL_AFTER_MS: u64 = 3_000;

/// The receive counters of one media pipeline and when they last moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    last: u64,
    moved_ms: Option<u64>,
    stalled: bool,
}

impl Liveness {
    /// Takes the pipeline's received count (frames + audio buffers) at `now_ms`; returns the
    /// event a change of state is, if any. Nothing is judged before media first arrives.
    pub fn observe(&mut self, received: u64, now_ms: u64) -> Option<Event> {
        if received != self.last {
            self.last = received;
            self.moved_ms = Some(now_ms);
            if self.stalled {
                self.stalled = false;
                return Some(Event::MediaFlowing);
            }
            return None;
        }
        let moved = self.moved_ms?;
        if !self.stalled && now_ms.saturating_sub(moved) >= STALL_AFTER_MS {
            self.stalled = true;
            return Some(Event::MediaStalled);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_seconds_without_media_is_a_stall_and_media_again_ends_it_once() {
        let mut l = Liveness::default();
        let seen: Vec<(u64, Option<Event>)> = [
            (0, 0),
            (5_000, 0), // nothing yet: a call still connecting has not stalled
            (5_500, 40),
            (6_000, 90),
            (8_500, 90),
            (9_000, 90),
            (9_500, 90),
            (10_000, 90),
            (10_500, 95),
            (11_000, 120),
        ]
        .into_iter()
        .map(|(t, n)| (t, l.observe(n, t)))
        .filter(|(_, e)| e.is_some())
        .collect();
        assert_eq!(seen, [(9_000, Some(Event::MediaStalled)), (10_500, Some(Event::MediaFlowing))]);
    }
}

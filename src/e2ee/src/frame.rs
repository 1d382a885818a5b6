//! Sealing and opening whole media frames: `clear prefix || SFrame header || ciphertext || tag`,
//! the clear prefix being the SFrame metadata (bound into the AAD).
//!
//! `Sender` owns one KID's key and its counter: it never reuses a counter and refuses to wrap.
//! `Receiver` owns the peers' keys by KID and a replay window per KID; it drops (and counts)
//! frames that fail authentication, replays and unknown KIDs. Neither decides when to rekey or
//! asks for a keyframe: the caller reads the counters and does that (rate-limited).

use std::collections::HashMap;

use crate::Error;
use crate::codec::{Codec, clear_prefix_len};
use crate::header::Header;
use crate::keys::FrameKey;

/// How many counters behind the highest seen a late frame may still arrive.
pub const REPLAY_WINDOW: u64 = 128;

/// One sender's key and counter.
#[derive(Debug)]
pub struct Sender {
    key: FrameKey,
    next: Option<u64>,
}

impl Sender {
    pub fn new(base_key: &[u8], kid: u64) -> Result<Sender, Error> {
        Ok(Sender { key: FrameKey::derive(base_key, kid)?, next: Some(0) })
    }

    /// The counter the next frame will carry (None once exhausted).
    pub fn next_counter(&self) -> Option<u64> {
        self.next
    }

    fn take_counter(&mut self) -> Result<u64, Error> {
        let ctr = self.next.ok_or(Error::CounterExhausted)?;
        self.next = ctr.checked_add(1);
        Ok(ctr)
    }

    /// Protects one encoded frame of `codec`.
    pub fn protect(&mut self, codec: Codec, frame: &[u8]) -> Result<Vec<u8>, Error> {
        match codec {
            Codec::H264 => crate::h264::protect(self, frame),
            _ => self.protect_with_prefix(clear_prefix_len(codec, frame), frame),
        }
    }

    /// Protects `frame` leaving its first `clear` bytes readable; a frame shorter than that is
    /// refused (and no counter is spent).
    pub fn protect_with_prefix(&mut self, clear: usize, frame: &[u8]) -> Result<Vec<u8>, Error> {
        if frame.len() < clear {
            return Err(Error::TooShort);
        }
        let ctr = self.take_counter()?;
        let (prefix, body) = frame.split_at(clear);
        let mut out = Vec::with_capacity(frame.len() + 32);
        out.extend_from_slice(prefix);
        out.extend_from_slice(&self.key.seal(ctr, prefix, body));
        Ok(out)
    }

    #[cfg(test)]
    pub(crate) fn set_counter_for_test(&mut self, next: u64) {
        self.next = Some(next);
    }
}

/// What a receiver dropped, for the stats and the keyframe request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverStats {
    pub opened: u64,
    pub auth_failures: u64,
    pub replays: u64,
    pub unknown_kid: u64,
    pub malformed: u64,
}

#[derive(Debug, Default)]
struct Window {
    highest: Option<u64>,
    /// Bit i set: `highest - i` was accepted.
    seen: u128,
}

impl Window {
    fn check(&self, ctr: u64) -> bool {
        match self.highest {
            None => true,
            Some(h) if ctr > h => true,
            Some(h) => h - ctr < REPLAY_WINDOW && self.seen & (1u128 << (h - ctr)) == 0,
        }
    }

    fn accept(&mut self, ctr: u64) {
        match self.highest {
            Some(h) if ctr <= h => self.seen |= 1u128 << (h - ctr),
            Some(h) => {
                let shift = ctr - h;
                self.seen = if shift >= REPLAY_WINDOW { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.highest = Some(ctr);
            }
            None => {
                self.seen = 1;
                self.highest = Some(ctr);
            }
        }
    }
}

/// The peers' keys by KID, with a replay window each.
#[derive(Debug, Default)]
pub struct Receiver {
    keys: HashMap<u64, (FrameKey, Window)>,
    stats: ReceiverStats,
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver::default()
    }

    /// Installs (or replaces, on rekey) the key for `kid`; its replay window starts afresh.
    pub fn set_key(&mut self, base_key: &[u8], kid: u64) -> Result<(), Error> {
        self.keys.insert(kid, (FrameKey::derive(base_key, kid)?, Window::default()));
        Ok(())
    }

    pub fn remove_key(&mut self, kid: u64) {
        self.keys.remove(&kid);
    }

    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Opens a frame protected for `codec`; the clear prefix is recomputed from the frame.
    pub fn unprotect(&mut self, codec: Codec, frame: &[u8]) -> Result<Vec<u8>, Error> {
        match codec {
            Codec::H264 => crate::h264::unprotect(self, frame),
            _ => self.unprotect_with_prefix(clear_prefix_len(codec, frame), frame),
        }
    }

    /// Counts a frame whose layout is wrong before any key was tried.
    pub(crate) fn count_malformed(&mut self) -> Error {
        self.stats.malformed += 1;
        Error::MalformedHeader
    }

    /// Opens a frame whose first `clear` bytes were left readable. Any error drops the frame.
    pub fn unprotect_with_prefix(&mut self, clear: usize, frame: &[u8]) -> Result<Vec<u8>, Error> {
        let result =
            if frame.len() < clear { Err(Error::TooShort) } else { self.open(clear, frame) };
        let stats = &mut self.stats;
        match &result {
            Ok(_) => stats.opened += 1,
            Err(Error::Authentication) => stats.auth_failures += 1,
            Err(Error::Replay(_)) => stats.replays += 1,
            Err(Error::UnknownKid(_)) => stats.unknown_kid += 1,
            Err(_) => stats.malformed += 1,
        }
        result
    }

    fn open(&mut self, clear: usize, frame: &[u8]) -> Result<Vec<u8>, Error> {
        let (prefix, sframe) = frame.split_at(clear);
        let (header, len) = Header::decode(sframe)?;
        let (key, window) = self.keys.get_mut(&header.kid).ok_or(Error::UnknownKid(header.kid))?;
        if !window.check(header.ctr) {
            return Err(Error::Replay(header.ctr));
        }
        let body = key.open(&sframe[..len], header.ctr, prefix, &sframe[len..])?;
        window.accept(header.ctr);
        let mut out = Vec::with_capacity(clear + body.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(&body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_refuses_to_wrap() {
        let mut s = Sender::new(&[1; 32], 3).unwrap();
        s.set_counter_for_test(u64::MAX);
        assert!(s.protect(Codec::Opus, &[1, 2, 3]).is_ok());
        assert_eq!(s.next_counter(), None);
        assert_eq!(s.protect(Codec::Opus, &[1, 2, 3]), Err(Error::CounterExhausted));
    }

    #[test]
    fn the_window_takes_late_frames_once() {
        let mut w = Window::default();
        for c in [5, 3, 9] {
            assert!(w.check(c));
            w.accept(c);
        }
        assert!(!w.check(3) && !w.check(5) && !w.check(9));
        assert!(w.check(4) && w.check(10));
        w.accept(9 + REPLAY_WINDOW);
        assert!(!w.check(9) && !w.check(8));
        assert!(w.check(10));
    }
}

//! Console WebSockets per session (review M6): at most [`PER_SESSION`] open at once, so one
//! stolen or buggy session cannot hold unbounded sockets and hub connections.
//!
//! It owns only the counts, keyed by a keyed hash of the session token; it must never keep or
//! print the token itself.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// Console WebSockets one session may have open at once (tabs, windows, reconnects).
pub const PER_SESSION: usize = 4;

/// Open console sockets per session.
pub struct WsSlots {
    keys: RandomState,
    max: usize,
    open: Mutex<HashMap<u64, usize>>,
}

impl std::fmt::Debug for WsSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSlots").field("max", &self.max).finish_non_exhaustive()
    }
}

impl WsSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { keys: RandomState::new(), max, open: Mutex::default() })
    }

    /// A slot for one more socket of the session `token`, or `None` if it has `max` open.
    pub fn take(self: &Arc<Self>, token: &str) -> Option<WsSlot> {
        let key = self.keys.hash_one(token);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(WsSlot { slots: self.clone(), key })
    }
}

/// One open socket's slot, given back when dropped.
#[derive(Debug)]
pub struct WsSlot {
    slots: Arc<WsSlots>,
    key: u64,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_socket_of_a_session_is_refused_and_a_closed_one_frees_its_slot() {
        let slots = WsSlots::new(PER_SESSION);
        let mut held: Vec<_> = (0..4).map(|_| slots.take("session-a").unwrap()).collect();
        assert!(slots.take("session-a").is_none());
        assert!(slots.take("session-b").is_some(), "another session is not affected");
        held.pop();
        assert!(slots.take("session-a").is_some());
    }
}

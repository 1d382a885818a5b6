//! Sign-in throttling, pure: failed attempts in, a decision out, the clock (Unix seconds) passed
//! in. After a few free failures each further one doubles the wait before the next attempt is
//! heard (exponential back-off, capped); after `lock_after` failures the key is locked for
//! `lock_for`. One [`Policy`] per kind of key: accounts (their [`Attempts`] kept in the store, so
//! `fleetd user unlock` can lift a lock) and source addresses (kept in memory, [`ByAddress`]).
//! Never sees a password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// How failures slow down further attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures with no wait after them.
    pub free: u32,
    /// The wait after the first failure past `free`; doubles with each further one.
    pub base: Duration,
    /// The longest back-off wait.
    pub max: Duration,
    /// Failures that lock the key.
    pub lock_after: u32,
    /// How long a lock lasts.
    pub lock_for: Duration,
}

impl Policy {
    /// Per account: 3 free failures, then 1 s, 2 s, … up to 30 s; 10 failures lock it 15 min.
    pub const ACCOUNT: Policy = Policy {
        free: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(30),
        lock_after: 10,
        lock_for: Duration::from_secs(15 * 60),
    };
    /// Per source address (a clinic's NAT carries many people): 10 free failures, then 1 s, 2 s,
    /// … up to 60 s; 100 failures lock it 15 min.
    pub const ADDRESS: Policy = Policy {
        free: 10,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        lock_after: 100,
        lock_for: Duration::from_secs(15 * 60),
    };

    /// Per source address for kiosk enrolment (a kiosk retries a failed code rarely): 5 free
    /// failures, then 1 s, 2 s, … up to 60 s; 30 failures lock it 15 min.
    pub const ENROL: Policy = Policy {
        free: 5,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        lock_after: 30,
        lock_for: Duration::from_secs(15 * 60),
    };

    /// This policy with another first back-off wait (0: lockouts only; tests use it).
    pub fn with_base(self, base: Duration) -> Self {
        Self { base, ..self }
    }

    fn wait_after(&self, failures: u32) -> Duration {
        if failures >= self.lock_after {
            return self.lock_for;
        }
        let Some(past_free) = failures.checked_sub(self.free) else { return Duration::ZERO };
        if failures == self.free || self.base.is_zero() {
            return Duration::ZERO;
        }
        let doubled = self.base.saturating_mul(1u32 << (past_free - 1).min(20));
        doubled.min(self.max)
    }

    /// Whether an attempt may be heard at `now`.
    pub fn decide(&self, a: &Attempts, now: i64) -> Decision {
        let until = a.last_failure.saturating_add(self.wait_after(a.failures).as_secs() as i64);
        if now >= until {
            return Decision::Go;
        }
        let secs = (until - now) as u64;
        if a.failures >= self.lock_after {
            Decision::Locked { secs }
        } else {
            Decision::Wait { secs }
        }
    }

    /// `a` after a failure at `now`; the second value says whether this failure locked the key.
    pub fn failed(&self, a: Attempts, now: i64) -> (Attempts, bool) {
        let failures = a.failures.saturating_add(1);
        (Attempts { failures, last_failure: now }, failures == self.lock_after)
    }
}

/// Failed attempts since the last success (or unlock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// How many.
    pub failures: u32,
    /// When the last was, Unix seconds.
    pub last_failure: i64,
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hear it.
    Go,
    /// Refuse it without checking anything: back off for `secs`.
    Wait { secs: u64 },
    /// Refuse it: the key is locked for `secs` more (or until an admin unlocks it).
    Locked { secs: u64 },
}

impl Decision {
    /// Seconds to wait before trying again, if refused.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Decision::Go => None,
            Decision::Wait { secs } | Decision::Locked { secs } => Some(secs.max(1)),
        }
    }
}

/// Failures per source address, in memory, bounded: when full, addresses whose waits are over
/// are forgotten first.
#[derive(Debug)]
pub struct ByAddress {
    policy: Policy,
    seen: HashMap<IpAddr, Attempts>,
}

/// Addresses remembered at most.
const MAX_ADDRESSES: usize = 100_000;

impl ByAddress {
    /// No failures yet.
    pub fn new(policy: Policy) -> Self {
        Self { policy, seen: HashMap::new() }
    }

    /// Whether an attempt from `ip` may be heard at `now`.
    pub fn decide(&self, ip: IpAddr, now: i64) -> Decision {
        self.seen.get(&ip).map_or(Decision::Go, |a| self.policy.decide(a, now))
    }

    /// Records a failure from `ip`; true if it locked the address.
    pub fn failed(&mut self, ip: IpAddr, now: i64) -> bool {
        if self.seen.len() >= MAX_ADDRESSES {
            let policy = self.policy;
            self.seen.retain(|_, a| policy.decide(a, now) != Decision::Go);
        }
        let before = self.seen.get(&ip).copied().unwrap_or_default();
        let (after, locked) = self.policy.failed(before, now);
        self.seen.insert(ip, after);
        locked
    }

    /// A success from `ip` clears its failures.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.seen.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_n(p: &Policy, n: u32, now: i64) -> Attempts {
        (0..n).fold(Attempts::default(), |a, _| p.failed(a, now).0)
    }

    #[test]
    fn the_first_failures_are_free_then_each_wait_doubles_up_to_the_cap() {
        let p = Policy::ACCOUNT;
        let waits: Vec<_> = (1..10).map(|n| p.decide(&fail_n(&p, n, 100), 100)).collect();
        assert_eq!(waits[..3], [Decision::Go; 3]);
        let secs: Vec<_> = waits[3..].iter().map(|d| d.retry_after().unwrap()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30]);
    }

    #[test]
    fn a_wait_ends_when_its_time_has_passed() {
        let p = Policy::ACCOUNT;
        let a = fail_n(&p, 5, 100); // 2 s
        assert_eq!(p.decide(&a, 101), Decision::Wait { secs: 1 });
        assert_eq!(p.decide(&a, 102), Decision::Go);
    }

    #[test]
    fn ten_failures_lock_the_account_for_fifteen_minutes_and_say_so_once() {
        let p = Policy::ACCOUNT;
        let a = fail_n(&p, 9, 0);
        let (locked, newly) = p.failed(a, 1000);
        assert!(newly);
        assert_eq!(p.decide(&locked, 1000), Decision::Locked { secs: 900 });
        assert_eq!(p.decide(&locked, 1899), Decision::Locked { secs: 1 });
        assert_eq!(p.decide(&locked, 1900), Decision::Go);
        assert!(!p.failed(locked, 1900).1, "a lock is announced once");
        assert_eq!(p.decide(&Attempts::default(), 1000), Decision::Go, "unlocked");
    }

    #[test]
    fn without_back_off_only_the_lock_remains() {
        let p = Policy::ACCOUNT.with_base(Duration::ZERO);
        assert_eq!(p.decide(&fail_n(&p, 9, 5), 5), Decision::Go);
        assert!(matches!(p.decide(&fail_n(&p, 10, 5), 5), Decision::Locked { .. }));
    }

    #[test]
    fn addresses_are_throttled_apart_and_a_success_clears_one() {
        let mut by = ByAddress::new(Policy::ADDRESS);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..12 {
            by.failed(a, 50);
        }
        assert_eq!(by.decide(a, 50), Decision::Wait { secs: 2 });
        assert_eq!(by.decide(b, 50), Decision::Go);
        by.succeeded(a);
        assert_eq!(by.decide(a, 50), Decision::Go);
    }
}

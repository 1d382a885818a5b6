//! The rules of visit codes, as plain functions over plain data: how six digits are drawn from
//! random bytes ([`code_from`]), whether a stored code lets a visit in ([`check`]), and how
//! long a kiosk, or the whole fleet, must wait after wrong codes ([`Tries`]).
//!
//! Pure: no I/O, no clock (the caller passes `now`), no logging. Never sees a code in the
//! clear except in [`code_from`], which makes one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use telekiosk_protocol::visit::CodeRefusal;

/// Six digits, uniformly, from four random bytes; `None` for the few values that would make
/// some codes likelier than others (the caller draws again).
pub fn code_from(random: [u8; 4]) -> Option<String> {
    const SPACE: u32 = 1_000_000;
    // The largest multiple of SPACE that fits in a u32: values from it up are skipped.
    const LIMIT: u32 = u32::MAX - u32::MAX % SPACE;
    let n = u32::from_le_bytes(random);
    (n < LIMIT).then(|| format!("{:06}", n % SPACE))
}

/// What the store holds of one code (never the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The clinic it is for.
    pub clinic: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// The visit that holds it now, if a patient used it.
    pub used_by: Option<String>,
}

/// Whether the code found (`None`: no such code) lets visit `visit_id` at `clinic` in at `now`
/// (Unix seconds). The visit that already holds the code is let in again (the kiosk says
/// `Waiting` again after a reconnect).
pub fn check(
    found: Option<&Stored>,
    clinic: &str,
    visit_id: &str,
    now: i64,
) -> Result<(), CodeRefusal> {
    let code = found.ok_or(CodeRefusal::Unknown)?;
    if code.clinic != clinic {
        return Err(CodeRefusal::OtherClinic);
    }
    match &code.used_by {
        Some(v) if v == visit_id => Ok(()),
        Some(_) => Err(CodeRefusal::Used),
        None if now >= code.expires_at => Err(CodeRefusal::Expired),
        None => Ok(()),
    }
}

/// Wrong codes a kiosk may send before it must wait.
pub const FREE_TRIES: u32 = 3;
/// The first wait, after [`FREE_TRIES`] wrong codes; each further wrong code doubles it.
pub const FIRST_WAIT: Duration = Duration::from_secs(30);
/// The longest wait a kiosk is given.
pub const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
/// A kiosk's wrong codes are forgotten after this long without one (the next patient starts
/// afresh).
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Wrong codes the whole fleet may send in [`FLEET_WINDOW`]; then every kiosk waits. With
/// 10^6 codes, this holds a fleet (or a stolen kiosk identity on many machines) to at most
/// 720 guesses a day: with 100 codes active at once, one chance in about 14 a day of hitting
/// one, instead of certainty within hours.
pub const FLEET_WRONG_PER_WINDOW: usize = 30;
/// See [`FLEET_WRONG_PER_WINDOW`].
pub const FLEET_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Wrong codes per kiosk and for the whole fleet, and the waits they impose. In memory: a
/// fleetd restart forgets them.
#[derive(Debug, Default)]
pub struct Tries {
    devices: HashMap<String, Wrong>,
    fleet: VecDeque<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Wrong {
    count: u32,
    last: Instant,
}

impl Tries {
    /// Whether `device` may try a code at `now`; `Err(seconds)` to wait first.
    pub fn may_try(&self, device: &str, now: Instant) -> Result<(), u32> {
        let own = self.devices.get(device).map_or(Duration::ZERO, |w| {
            if now.saturating_duration_since(w.last) >= FORGET_AFTER {
                return Duration::ZERO;
            }
            (w.last + wait_after(w.count)).saturating_duration_since(now)
        });
        let fleet = match self.fleet.len() >= FLEET_WRONG_PER_WINDOW {
            true => self.fleet.front().map_or(Duration::ZERO, |first| {
                (*first + FLEET_WINDOW).saturating_duration_since(now)
            }),
            false => Duration::ZERO,
        };
        match own.max(fleet) {
            wait if wait.is_zero() => Ok(()),
            wait => Err(u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX)),
        }
    }

    /// Counts a wrong code from `device` at `now`; returns the wait it now has (0: none).
    pub fn wrong(&mut self, device: &str, now: Instant) -> u32 {
        while self.fleet.front().is_some_and(|t| now.saturating_duration_since(*t) >= FLEET_WINDOW)
        {
            self.fleet.pop_front();
        }
        self.fleet.push_back(now);
        // Old entries go, so a stream of kiosks cannot grow the map for ever.
        if self.devices.len() > 10_000 {
            self.devices.retain(|_, w| now.saturating_duration_since(w.last) < FORGET_AFTER);
        }
        let w = self.devices.entry(device.to_string()).or_insert(Wrong { count: 0, last: now });
        if now.saturating_duration_since(w.last) >= FORGET_AFTER {
            w.count = 0;
        }
        (w.count, w.last) = (w.count + 1, now);
        self.may_try(device, now).err().unwrap_or(0)
    }

    /// A right code from `device`: its wrong ones are forgotten (the fleet's are not).
    pub fn right(&mut self, device: &str) {
        self.devices.remove(device);
    }
}

/// The wait after `count` wrong codes in a row.
fn wait_after(count: u32) -> Duration {
    match count.checked_sub(FREE_TRIES) {
        None => Duration::ZERO,
        Some(doublings) => FIRST_WAIT.saturating_mul(1 << doublings.min(10)).min(LONGEST_WAIT),
    }
}

#[cfg(test)]
mod tests;

//! The technician screen's rules, as plain functions over plain data: when the hidden gesture
//! counts, which screens allow it, whether a maintenance code is asked for, the back-off after
//! wrong codes, what a keypad accepts, and how a network or microphone reading is graded.
//!
//! Time is passed in (`now`), never read here, so every rule is table-tested without waiting.
//! Must never: hold or compare a code itself (that is `code`), or touch Slint or GStreamer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Enrolment;
use crate::ui::view::ScreenId;

/// How long the corner must be held.
pub const HOLD: Duration = Duration::from_secs(3);
/// How many taps on the corner open the keypad…
pub const TAPS: usize = 5;
/// …within this long.
pub const TAP_WINDOW: Duration = Duration::from_secs(3);
/// The technician screen closes after this long untouched.
pub const IDLE_CLOSE: Duration = Duration::from_secs(5 * 60);
/// Wrong codes allowed before the first lock.
pub const FREE_TRIES: u32 = 3;
/// The first lock; each further wrong code doubles it…
pub const FIRST_LOCK: Duration = Duration::from_secs(30);
/// …up to this.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// The longest maintenance code the keypad takes.
pub const MAX_CODE_DIGITS: usize = 12;
/// Symbols of a fleet enrolment code (fleetd's alphabet: no 0, 1, I or O).
pub const ENROL_ALPHABET: &str = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Symbols in a fleet enrolment code.
pub const ENROL_CHARS: usize = 8;

/// Whether the hidden corner listens on this screen: idle, closed and out of service only, never
/// while a visit runs. (The not-set-up screen is shown before the visit exists and allows it too.)
pub fn gesture_allowed(screen: ScreenId) -> bool {
    matches!(screen, ScreenId::Idle | ScreenId::Closed | ScreenId::OutOfService)
}

/// The hidden corner: held for [`HOLD`], or tapped [`TAPS`] times within [`TAP_WINDOW`].
#[derive(Debug, Default, Clone)]
pub struct Gesture {
    taps: VecDeque<Instant>,
    down_since: Option<Instant>,
}

impl Gesture {
    /// A finger touches the corner; true when this touch is the last of the taps.
    pub fn down(&mut self, now: Instant) -> bool {
        self.down_since = Some(now);
        self.taps.retain(|t| now.saturating_duration_since(*t) <= TAP_WINDOW);
        self.taps.push_back(now);
        if self.taps.len() >= TAPS {
            self.reset();
            return true;
        }
        false
    }

    /// The finger leaves the corner.
    pub fn up(&mut self) {
        self.down_since = None;
    }

    /// True when the finger has stayed on the corner for [`HOLD`] (asked by a timer).
    pub fn held(&mut self, now: Instant) -> bool {
        let held = self.down_since.is_some_and(|t| now.saturating_duration_since(t) >= HOLD);
        if held {
            self.reset();
        }
        held
    }

    /// Forgets every touch (the keypad opened, or the screen changed).
    pub fn reset(&mut self) {
        self.taps.clear();
        self.down_since = None;
    }
}

/// What the gesture leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Not set up or not enrolled: nothing on this kiosk to protect yet (no identity, no config,
    /// no visits), and the fleet cannot have sent a code, so the screen opens without one.
    Open,
    /// The keypad, checked against this Argon2 hash.
    Code(String),
    /// Enrolled without a maintenance code in the fleet config, or bring-up unfinished (an
    /// enrolled kiosk whose identity failed cannot read its config): the screen stays shut.
    Disabled,
}

/// Whether a code is asked for, given enrolment and the config's `maintenance_code_hash`.
pub fn access(enrolment: Enrolment, maintenance_code_hash: &str) -> Access {
    match (enrolment, maintenance_code_hash.trim()) {
        (Enrolment::NotSetUp | Enrolment::NotEnrolled, _) => Access::Open,
        (Enrolment::Enrolling, _) | (Enrolment::Enrolled, "") => Access::Disabled,
        (Enrolment::Enrolled, hash) => Access::Code(hash.to_string()),
    }
}

/// How long the keypad stays locked after `wrong` wrong codes in a row: nothing for the first
/// [`FREE_TRIES`] - 1, then [`FIRST_LOCK`] doubling with each one, at most [`MAX_LOCK`].
pub fn lock_after(wrong: u32) -> Duration {
    if wrong < FREE_TRIES {
        return Duration::ZERO;
    }
    let doublings = (wrong - FREE_TRIES).min(16);
    FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK)
}

/// Wrong codes in a row and the lock they earned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backoff {
    wrong: u32,
    locked_until: Option<Instant>,
}

impl Backoff {
    /// The time left before another code may be tried; `None`: try now.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        let left = self.locked_until?.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    /// A wrong code: counts it and returns the lock it starts, if any.
    pub fn wrong(&mut self, now: Instant) -> Option<Duration> {
        self.wrong = self.wrong.saturating_add(1);
        let lock = lock_after(self.wrong);
        if lock.is_zero() {
            return None;
        }
        self.locked_until = Some(now + lock);
        Some(lock)
    }

    /// The right code: the count starts again.
    pub fn right(&mut self) {
        *self = Backoff::default();
    }

    /// Wrong codes in a row so far.
    pub fn wrong_count(&self) -> u32 {
        self.wrong
    }
}

/// The maintenance code keypad: digits only, at most [`MAX_CODE_DIGITS`].
pub fn push_code_digit(entry: &mut String, key: &str) {
    if key.len() == 1 && key.bytes().all(|b| b.is_ascii_digit()) && entry.len() < MAX_CODE_DIGITS {
        entry.push_str(key);
    }
}

/// The enrolment keypad: fleetd's symbols only, at most [`ENROL_CHARS`].
pub fn push_enrol_symbol(entry: &mut String, key: &str) {
    let key = key.to_ascii_uppercase();
    if key.len() == 1 && ENROL_ALPHABET.contains(&key) && entry.len() < ENROL_CHARS {
        entry.push_str(&key);
    }
}

/// An enrolment code as shown while typed: `ABCD-EF`.
pub fn shown_enrol_code(entry: &str) -> String {
    match entry.len() {
        0..=4 => entry.to_string(),
        _ => format!("{}-{}", &entry[..4], &entry[4..]),
    }
}

/// How the network to fleetd is, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    Poor = 1,
    Fair = 2,
    Good = 3,
}

/// Grades a network test: good for video visits (RTT < 150 ms and ≥ 4 Mbit/s), fair (< 400 ms
/// and ≥ 1 Mbit/s: video may be reduced), otherwise poor.
pub fn grade(rtt: Duration, mbit_per_s: f64) -> Grade {
    let ms = rtt.as_millis();
    if ms < 150 && mbit_per_s >= 4.0 {
        Grade::Good
    } else if ms < 400 && mbit_per_s >= 1.0 {
        Grade::Fair
    } else {
        Grade::Poor
    }
}

/// The median of round trips (the middle one; the lower middle of an even count).
pub fn median(mut samples: Vec<Duration>) -> Option<Duration> {
    samples.sort();
    samples.get(samples.len().saturating_sub(1) / 2).copied()
}

/// Throughput in Mbit/s of `bytes` fetched in `elapsed`.
pub fn mbit_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 { 0.0 } else { bytes as f64 * 8.0 / secs / 1e6 }
}

/// A throughput as the screen prints it: whole Mbit/s from 10 on, one decimal below.
pub fn shown_mbit(mbit_per_s: f64) -> String {
    if mbit_per_s >= 10.0 { format!("{mbit_per_s:.0}") } else { format!("{mbit_per_s:.1}") }
}

/// The quietest level the meter shows, in dB below full scale.
pub const METER_FLOOR_DB: f64 = -60.0;

/// A microphone level (RMS, dBFS) as a fraction of the meter's bar: 0 at [`METER_FLOOR_DB`] and
/// below (digital silence is -inf), 1 at full scale.
pub fn meter_fraction(db: f64) -> f32 {
    if db.is_nan() {
        return 0.0;
    }
    ((db - METER_FLOOR_DB) / -METER_FLOOR_DB).clamp(0.0, 1.0) as f32
}

/// A level as the meter prints it: whole dB, never below the floor.
pub fn meter_db(db: f64) -> i32 {
    if db.is_nan() { METER_FLOOR_DB as i32 } else { db.max(METER_FLOOR_DB).round() as i32 }
}

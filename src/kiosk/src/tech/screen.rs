//! Slint adapter of the technician screen, the way in and out: wires the `Tech` global's
//! callbacks (the open screen's to [`super::panel`]), runs the corner, the keypad and the code
//! check, and keeps the timers (the hold, the 5-minute close, the lock countdown). Runs on the UI thread; the code check, the config
//! read and the network test run elsewhere and post their answer back.
//!
//! Must never: open while a visit runs (the corner is off then, and a visit screen closes it),
//! show a typed digit, or keep the camera or microphone open once closed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slint::{ComponentHandle, Timer, TimerMode};

use super::code::{self, Verdict};
use super::panel::{
    enrol_key, enrol_submit, identify, network_test, open_main, toggle_camera, tone,
};
use super::rules::{self, Access};
use super::session::{Inner, TECH, close, keep_open, later, with};
use super::{SharedFacts, action};
use crate::ui::view::ScreenId;
use crate::ui::{CodeState, KioskWindow, Tech, TechPage};

/// Wires the technician screen to `window`: `facts` is what it shows, `runtime` runs the network
/// test, `restart` ends the app with the code systemd restarts it on. Call once, on the UI thread.
pub fn install(
    window: &KioskWindow,
    facts: SharedFacts,
    runtime: tokio::runtime::Handle,
    restart: Arc<dyn Fn() + Send + Sync>,
) {
    let inner = Rc::new(Inner {
        window: window.as_weak(),
        facts,
        runtime,
        restart,
        state: RefCell::default(),
        hold: Timer::default(),
        idle: Timer::default(),
        lock: Timer::default(),
        identify: Timer::default(),
        tone: Timer::default(),
    });
    TECH.with(|t| *t.borrow_mut() = Some(inner));
    let tech = window.global::<Tech>();
    tech.on_corner_down(|| with(corner_down));
    tech.on_corner_up(|| with(|inner, _| inner.state.borrow_mut().gesture.up()));
    tech.on_touched(|| with(|inner, _| keep_open(inner)));
    tech.on_close(|| with(|inner, tech| close(inner, tech, "closed")));
    tech.on_code_key(|key| with(move |inner, tech| code_key(inner, tech, &key)));
    tech.on_code_erase(|| {
        with(|inner, tech| {
            keep_open(inner);
            let mut state = inner.state.borrow_mut();
            state.entry.pop();
            tech.set_code_length(state.entry.len() as i32);
        })
    });
    tech.on_code_submit(|| with(code_submit));
    tech.on_toggle_camera(|| with(toggle_camera));
    tech.on_tone(|| with(tone));
    tech.on_network(|| with(network_test));
    tech.on_identify(|| with(identify));
    tech.on_restart(|| {
        with(|inner, tech| {
            action("restart", serde_json::json!({}));
            close(inner, tech, "restart");
            (inner.restart)();
        })
    });
    tech.on_open_enrol(|| {
        with(|inner, tech| {
            keep_open(inner);
            tech.set_enrol_sent(false);
            tech.set_page(TechPage::Enrol);
        })
    });
    tech.on_enrol_key(|key| with(move |inner, tech| enrol_key(inner, tech, Some(&key))));
    tech.on_enrol_erase(|| with(|inner, tech| enrol_key(inner, tech, None)));
    tech.on_enrol_submit(|| with(enrol_submit));
    tech.on_enrol_cancel(|| {
        with(|inner, tech| {
            keep_open(inner);
            inner.state.borrow_mut().enrol_entry.clear();
            tech.set_enrol_entry("".into());
            tech.set_page(TechPage::Main);
        })
    });
}

/// Turns the hidden corner on or off (the screen up decides); turning it off closes the
/// technician screen. On the UI thread.
pub fn allow(window: &KioskWindow, allowed: bool) {
    let tech = window.global::<Tech>();
    tech.set_corner_enabled(allowed);
    if !allowed {
        with(|inner, tech| {
            inner.state.borrow_mut().gesture.reset();
            if tech.get_open() {
                close(inner, tech, "screen_changed");
            }
        });
    }
}

/// The controller showed `screen` (fleet link up or not). On the UI thread.
pub fn screen_changed(window: &KioskWindow, screen: ScreenId, online: bool) {
    window.global::<Tech>().set_online(online);
    allow(window, rules::gesture_allowed(screen));
}

fn corner_down(inner: &Rc<Inner>, _tech: &Tech<'_>) {
    if inner.state.borrow_mut().gesture.down(Instant::now()) {
        return begin(inner, "taps");
    }
    let weak = Rc::downgrade(inner);
    inner.hold.start(TimerMode::SingleShot, rules::HOLD + Duration::from_millis(50), move || {
        let Some(inner) = weak.upgrade() else { return };
        let held = inner.state.borrow_mut().gesture.held(Instant::now());
        if held {
            begin(&inner, "hold");
        }
    });
}

/// The gesture is complete: the keypad, or straight to the screen on a kiosk not enrolled.
fn begin(inner: &Rc<Inner>, how: &str) {
    let Some(window) = inner.window.upgrade() else { return };
    let tech = window.global::<Tech>();
    if tech.get_open() || !tech.get_corner_enabled() {
        return;
    }
    action("gesture", serde_json::json!({ "how": how }));
    let facts = inner.facts.get();
    tech.set_open(true);
    tech.set_page(TechPage::Code);
    tech.set_code_length(0);
    tech.set_code_state(CodeState::Checking);
    keep_open(inner);
    let (enrolment, source) = (facts.enrolment, facts.config);
    std::thread::spawn(move || {
        let loaded = source.filter(|_| enrolment.enrolled()).map(|read| read());
        let (version, hash) = loaded.unwrap_or_default();
        later(move |inner, tech| {
            if !tech.get_open() {
                return;
            }
            tech.set_config_version(version.min(i32::MAX as u64) as i32);
            match rules::access(enrolment, &hash) {
                Access::Open => open_main(inner, tech, version),
                Access::Disabled => {
                    let reason =
                        if enrolment.enrolled() { "no_maintenance_code" } else { "starting" };
                    action("refused", serde_json::json!({ "reason": reason }));
                    tech.set_code_state(if enrolment.enrolled() {
                        CodeState::Disabled
                    } else {
                        CodeState::Starting
                    });
                }
                Access::Code(hash) => {
                    inner.state.borrow_mut().hash = Some(hash);
                    show_lock(inner, tech);
                }
            }
        })
    });
}

fn code_key(inner: &Rc<Inner>, tech: &Tech<'_>, key: &str) {
    keep_open(inner);
    let mut state = inner.state.borrow_mut();
    rules::push_code_digit(&mut state.entry, key);
    tech.set_code_length(state.entry.len() as i32);
}

fn code_submit(inner: &Rc<Inner>, tech: &Tech<'_>) {
    keep_open(inner);
    let mut state = inner.state.borrow_mut();
    let busy = tech.get_code_state() == CodeState::Checking;
    if busy || state.backoff.wait(Instant::now()).is_some() || state.entry.is_empty() {
        return;
    }
    let Some(hash) = state.hash.clone() else { return };
    let typed = std::mem::take(&mut *state.entry);
    tech.set_code_length(0);
    tech.set_code_state(CodeState::Checking);
    code::check(hash, typed, |verdict| later(move |inner, tech| verdict_in(inner, tech, verdict)));
}

fn verdict_in(inner: &Rc<Inner>, tech: &Tech<'_>, verdict: Verdict) {
    if !tech.get_open() {
        return;
    }
    match verdict {
        Verdict::Right => {
            inner.state.borrow_mut().backoff.right();
            action("code_accepted", serde_json::json!({}));
            let version = tech.get_config_version().max(0) as u64;
            open_main(inner, tech, version);
        }
        Verdict::Wrong => {
            let lock = inner.state.borrow_mut().backoff.wrong(Instant::now());
            let wrong = inner.state.borrow().backoff.wrong_count();
            let lock_secs = lock.map_or(0, |l| l.as_secs());
            if lock.is_some() {
                // A warning, so it is among the recent errors fleet diagnostics report.
                tracing::warn!(
                    target: "audit",
                    wrong,
                    lock_secs,
                    "technician keypad locked after wrong maintenance codes"
                );
            }
            action(
                "code_refused",
                serde_json::json!({ "wrong_in_a_row": wrong, "lock_secs": lock_secs }),
            );
            tech.set_code_state(CodeState::Wrong);
            show_lock(inner, tech);
        }
        Verdict::BadHash => {
            action("refused", serde_json::json!({ "reason": "maintenance_code_hash_unreadable" }));
            tech.set_code_state(CodeState::BadHash);
        }
    }
}

/// Shows the keypad locked with a countdown while the back-off lasts, else ready.
fn show_lock(inner: &Rc<Inner>, tech: &Tech<'_>) {
    let Some(left) = inner.state.borrow().backoff.wait(Instant::now()) else {
        inner.lock.stop();
        if tech.get_code_state() != CodeState::Wrong {
            tech.set_code_state(CodeState::Typing);
        }
        return;
    };
    tech.set_code_state(CodeState::Locked);
    tech.set_locked_secs(left.as_secs_f64().ceil() as i32);
    let weak = Rc::downgrade(inner);
    inner.lock.start(TimerMode::Repeated, Duration::from_millis(500), move || {
        if let Some(inner) = weak.upgrade()
            && let Some(window) = inner.window.upgrade()
        {
            let tech = window.global::<Tech>();
            if tech.get_code_state() == CodeState::Locked {
                tech.set_code_state(CodeState::Typing);
            }
            show_lock(&inner, &tech);
        }
    });
}

//! The technician screen while it is open: its shared state, the way to reach it from any
//! thread, and the two things every part of it does — keep it open while touched, close it
//! (camera and microphone released, everything typed gone). [`super::screen`] (the way in) and
//! [`super::panel`] (the open screen's checks) both build on it; it knows neither. Runs on the
//! UI thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use slint::{ComponentHandle, Image, Timer, TimerMode};
use zeroize::Zeroizing;

use super::checks::{MicMeter, Preview};
use super::rules::{self, Backoff, Gesture};
use super::{SharedFacts, action};
use crate::ui::{KioskWindow, Tech, TechPage};

/// True while the camera preview runs: screenshots are refused then, as during a visit.
pub(super) static PREVIEW_ON: AtomicBool = AtomicBool::new(false);

/// Whether the camera preview is on screen (screenshots and the virtual screen refuse then).
pub fn preview_on() -> bool {
    PREVIEW_ON.load(Ordering::Acquire)
}

/// What runs while the screen is open.
#[derive(Default)]
pub(super) struct State {
    pub(super) gesture: Gesture,
    pub(super) backoff: Backoff,
    /// The maintenance code's hash once read, for the keypad.
    pub(super) hash: Option<String>,
    pub(super) entry: Zeroizing<String>,
    pub(super) enrol_entry: Zeroizing<String>,
    pub(super) meter: Option<MicMeter>,
    pub(super) preview: Option<Preview>,
    /// While the test tone plays: the loudest the microphone heard (dBFS).
    pub(super) tone_peak: Option<f64>,
}

pub(super) struct Inner {
    pub(super) window: slint::Weak<KioskWindow>,
    pub(super) facts: SharedFacts,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) restart: Arc<dyn Fn() + Send + Sync>,
    pub(super) state: RefCell<State>,
    pub(super) hold: Timer,
    pub(super) idle: Timer,
    pub(super) lock: Timer,
    pub(super) identify: Timer,
    pub(super) tone: Timer,
}

thread_local! {
    pub(super) static TECH: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

pub(super) fn with(f: impl FnOnce(&Rc<Inner>, &Tech<'_>)) {
    let Some(inner) = TECH.with(|t| t.borrow().clone()) else { return };
    let Some(window) = inner.window.upgrade() else { return };
    f(&inner, &window.global::<Tech>());
}

/// Runs `f` on the UI thread with the technician screen (from any thread).
pub(super) fn later(f: impl FnOnce(&Rc<Inner>, &Tech<'_>) + Send + 'static) {
    let _ = slint::invoke_from_event_loop(move || with(f));
}

/// Restarts the 5-minute close.
pub(super) fn keep_open(inner: &Rc<Inner>) {
    let weak = Rc::downgrade(inner);
    inner.idle.start(TimerMode::SingleShot, rules::IDLE_CLOSE, move || {
        if let Some(inner) = weak.upgrade()
            && let Some(window) = inner.window.upgrade()
        {
            close(&inner, &window.global::<Tech>(), "untouched");
        }
    });
}

pub(super) fn stop_camera(inner: &Rc<Inner>, tech: &Tech<'_>) {
    tech.set_camera_on(false);
    inner.state.borrow_mut().preview = None;
    tech.set_preview(Image::default());
    PREVIEW_ON.store(false, Ordering::Release);
}

/// Closes the screen: checks stopped, camera and microphone released, everything typed gone.
pub(super) fn close(inner: &Rc<Inner>, tech: &Tech<'_>, reason: &str) {
    if !tech.get_open() {
        return;
    }
    stop_camera(inner, tech);
    {
        let mut state = inner.state.borrow_mut();
        state.meter = None;
        state.entry.clear();
        state.enrol_entry.clear();
        state.hash = None;
        state.gesture.reset();
    }
    for timer in [&inner.idle, &inner.lock, &inner.hold] {
        timer.stop();
    }
    tech.set_mic_on(false);
    tech.set_mic_level(0.0);
    tech.set_code_length(0);
    tech.set_enrol_entry("".into());
    tech.set_page(TechPage::Code);
    tech.set_open(false);
    action("closed", serde_json::json!({ "reason": reason }));
}

//! Slint adapter of the technician screen: wires the `Tech` global's callbacks to the rules,
//! the code check and the checks, keeps its timers (the hold, the 5-minute close, the lock
//! countdown, identify) and shows results. Runs on the UI thread; the code check, the config
//! read and the network test run elsewhere and post their answer back.
//!
//! Must never: open while a visit runs (the corner is off then, and a visit screen closes it),
//! show a typed digit, or keep the camera or microphone open once closed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use slint::{ComponentHandle, Image, Rgb8Pixel, SharedPixelBuffer, Timer, TimerMode};
use zeroize::Zeroizing;

use super::checks::{self, MicMeter, Preview};
use super::code::{self, Verdict};
use super::rules::{self, Access, Backoff, Gesture};
use super::{Enrolment, KeyHolder, SharedFacts, action, network};
use crate::ui::view::ScreenId;
use crate::ui::{self, Api, CodeState, KioskWindow, NetState, Tech, TechPage};

/// How long after the tone ends its loudness is still counted (the room's latency).
const TONE_TAIL: Duration = Duration::from_millis(500);
/// How long "Identify" shows the banner.
const IDENTIFY_FOR: Duration = Duration::from_secs(10);

/// True while the camera preview runs: screenshots are refused then, as during a visit.
static PREVIEW_ON: AtomicBool = AtomicBool::new(false);

/// Whether the camera preview is on screen (screenshots and the virtual screen refuse then).
pub fn preview_on() -> bool {
    PREVIEW_ON.load(Ordering::Acquire)
}

/// What runs while the screen is open.
#[derive(Default)]
struct State {
    gesture: Gesture,
    backoff: Backoff,
    /// The maintenance code's hash once read, for the keypad.
    hash: Option<String>,
    entry: Zeroizing<String>,
    enrol_entry: Zeroizing<String>,
    meter: Option<MicMeter>,
    preview: Option<Preview>,
    /// While the test tone plays: the loudest the microphone heard (dBFS).
    tone_peak: Option<f64>,
}

struct Inner {
    window: slint::Weak<KioskWindow>,
    facts: SharedFacts,
    runtime: tokio::runtime::Handle,
    restart: Arc<dyn Fn() + Send + Sync>,
    state: RefCell<State>,
    hold: Timer,
    idle: Timer,
    lock: Timer,
    identify: Timer,
    tone: Timer,
}

thread_local! {
    static TECH: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

fn with(f: impl FnOnce(&Rc<Inner>, &Tech<'_>)) {
    let Some(inner) = TECH.with(|t| t.borrow().clone()) else { return };
    let Some(window) = inner.window.upgrade() else { return };
    f(&inner, &window.global::<Tech>());
}

/// Runs `f` on the UI thread with the technician screen (from any thread).
fn later(f: impl FnOnce(&Rc<Inner>, &Tech<'_>) + Send + 'static) {
    let _ = slint::invoke_from_event_loop(move || with(f));
}

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

/// Restarts the 5-minute close.
fn keep_open(inner: &Rc<Inner>) {
    let weak = Rc::downgrade(inner);
    inner.idle.start(TimerMode::SingleShot, rules::IDLE_CLOSE, move || {
        if let Some(inner) = weak.upgrade()
            && let Some(window) = inner.window.upgrade()
        {
            close(&inner, &window.global::<Tech>(), "untouched");
        }
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

/// The technician screen itself: the facts, and the microphone and camera started.
fn open_main(inner: &Rc<Inner>, tech: &Tech<'_>, config_version: u64) {
    let facts = inner.facts.get();
    action("opened", serde_json::json!({}));
    tech.set_page(TechPage::Main);
    tech.set_device_id(facts.device_id.as_str().into());
    tech.set_key_fingerprint(facts.key_fingerprint.as_str().into());
    tech.set_enrolment(match facts.enrolment {
        Enrolment::Enrolled => crate::ui::Enrolment::Enrolled,
        Enrolment::Enrolling => crate::ui::Enrolment::Enrolling,
        Enrolment::NotEnrolled => crate::ui::Enrolment::NotEnrolled,
        Enrolment::NotSetUp => crate::ui::Enrolment::NotSetUp,
    });
    tech.set_broker(facts.broker.as_str().into());
    tech.set_tpm_known(facts.tpm != KeyHolder::Unknown);
    tech.set_tpm_present(matches!(facts.tpm, KeyHolder::Tpm(_)));
    if let KeyHolder::Tpm(maker) = &facts.tpm {
        tech.set_tpm_vendor(maker.trim().into());
    }
    tech.set_config_version(config_version.min(i32::MAX as u64) as i32);
    tech.set_software(env!("CARGO_PKG_VERSION").into());
    tech.set_profile(facts.profile.as_ref().map(|p| p.name.as_str()).unwrap_or("").into());
    tech.set_net_state(NetState::NotRun);
    tech.set_check_problem("".into());
    start_meter(inner, tech);
    if !tech.get_camera_on() {
        toggle_camera(inner, tech);
    }
}

fn problem(tech: &Tech<'_>, e: impl std::fmt::Display) {
    tracing::warn!("technician check: {e}");
    tech.set_check_problem(e.to_string().into());
}

fn start_meter(inner: &Rc<Inner>, tech: &Tech<'_>) {
    let Some(profile) = inner.facts.get().profile else { return };
    let meter = MicMeter::start(&profile.audio, move |db| {
        later(move |inner, tech| {
            if !tech.get_mic_on() {
                return;
            }
            tech.set_mic_level(rules::meter_fraction(db));
            tech.set_mic_db(rules::meter_db(db));
            if let Some(peak) = &mut inner.state.borrow_mut().tone_peak {
                *peak = peak.max(db);
            }
        })
    });
    match meter {
        Ok(meter) => {
            inner.state.borrow_mut().meter = Some(meter);
            tech.set_mic_on(true);
        }
        Err(e) => problem(tech, e),
    }
}

fn toggle_camera(inner: &Rc<Inner>, tech: &Tech<'_>) {
    keep_open(inner);
    if tech.get_camera_on() {
        stop_camera(inner, tech);
        return action("camera", serde_json::json!({ "on": false }));
    }
    let Some(profile) = inner.facts.get().profile else { return };
    let (window, queued) = (inner.window.clone(), Arc::new(AtomicBool::new(false)));
    let preview = Preview::start(&profile.video.source, move |frame| {
        if queued.swap(true, Ordering::AcqRel) {
            return; // the previous picture is not shown yet: drop this one
        }
        let pixels =
            SharedPixelBuffer::<Rgb8Pixel>::clone_from_slice(&frame.rgb, frame.width, frame.height);
        let (window, queued) = (window.clone(), queued.clone());
        let _ = slint::invoke_from_event_loop(move || {
            queued.store(false, Ordering::Release);
            if let Some(window) = window.upgrade() {
                let tech = window.global::<Tech>();
                if tech.get_camera_on() {
                    tech.set_preview(Image::from_rgb8(pixels));
                }
            }
        });
    });
    match preview {
        Ok(preview) => {
            PREVIEW_ON.store(true, Ordering::Release);
            inner.state.borrow_mut().preview = Some(preview);
            tech.set_camera_on(true);
            action("camera", serde_json::json!({ "on": true }));
        }
        Err(e) => problem(tech, e),
    }
}

fn stop_camera(inner: &Rc<Inner>, tech: &Tech<'_>) {
    tech.set_camera_on(false);
    inner.state.borrow_mut().preview = None;
    tech.set_preview(Image::default());
    PREVIEW_ON.store(false, Ordering::Release);
}

fn tone(inner: &Rc<Inner>, tech: &Tech<'_>) {
    keep_open(inner);
    let Some(profile) = inner.facts.get().profile else { return };
    action("test_tone", serde_json::json!({}));
    match checks::play_tone(&profile.audio) {
        Ok(()) => {
            tech.set_tone_playing(true);
            inner.state.borrow_mut().tone_peak = Some(f64::NEG_INFINITY);
            // A little after the tone, for the room's latency: what the microphone heard of it.
            let weak = Rc::downgrade(inner);
            inner.tone.start(TimerMode::SingleShot, checks::TONE + TONE_TAIL, move || {
                let Some(inner) = weak.upgrade() else { return };
                let peak = inner.state.borrow_mut().tone_peak.take();
                if let Some(window) = inner.window.upgrade() {
                    window.global::<Tech>().set_tone_playing(false);
                }
                if let Some(peak) = peak {
                    action(
                        "test_tone_heard",
                        serde_json::json!({ "mic_peak_db": rules::meter_db(peak) }),
                    );
                }
            });
        }
        Err(e) => problem(tech, e),
    }
}

fn network_test(inner: &Rc<Inner>, tech: &Tech<'_>) {
    keep_open(inner);
    let Some(link) = inner.facts.get().fleet else { return };
    tech.set_net_state(NetState::Running);
    inner.runtime.spawn(async move {
        let result = network::run(&link.server, link.tls).await;
        later(move |_, tech| match result {
            Ok(report) => {
                let rtt_ms = report.rtt.as_millis().min(i32::MAX as u128) as i32;
                let mbits = rules::shown_mbit(report.mbit_per_s);
                action(
                    "network_test",
                    serde_json::json!({ "rtt_ms": rtt_ms, "mbit_per_s": mbits, "grade": report.grade as u8 }),
                );
                tech.set_rtt_ms(rtt_ms);
                tech.set_mbits(mbits.into());
                tech.set_net_grade(report.grade as i32);
                tech.set_net_state(NetState::Done);
            }
            Err(e) => {
                action("network_test", serde_json::json!({ "failed": true }));
                tech.set_net_problem(e.to_string().into());
                tech.set_net_state(NetState::Failed);
            }
        });
    });
}

fn identify(inner: &Rc<Inner>, _tech: &Tech<'_>) {
    keep_open(inner);
    let Some(window) = inner.window.upgrade() else { return };
    action("identify", serde_json::json!({ "secs": IDENTIFY_FOR.as_secs() }));
    let room = window.global::<Api>().get_room();
    ui::set_identify(&window, Some(room.as_str()));
    let weak = inner.window.clone();
    inner.identify.start(TimerMode::SingleShot, IDENTIFY_FOR, move || {
        if let Some(window) = weak.upgrade() {
            ui::set_identify(&window, None);
        }
    });
}

fn enrol_key(inner: &Rc<Inner>, tech: &Tech<'_>, key: Option<&str>) {
    keep_open(inner);
    let mut state = inner.state.borrow_mut();
    match key {
        Some(key) => rules::push_enrol_symbol(&mut state.enrol_entry, key),
        None => {
            state.enrol_entry.pop();
        }
    }
    tech.set_enrol_entry(rules::shown_enrol_code(&state.enrol_entry).into());
}

fn enrol_submit(inner: &Rc<Inner>, tech: &Tech<'_>) {
    keep_open(inner);
    let code = std::mem::take(&mut *inner.state.borrow_mut().enrol_entry);
    tech.set_enrol_entry("".into());
    if code.len() != rules::ENROL_CHARS {
        return;
    }
    let sent = inner.facts.get().enrol_code.is_some_and(|tx| tx.send(code).is_ok());
    action("enrol_code_entered", serde_json::json!({ "sent": sent }));
    tech.set_enrol_sent(sent);
    if sent {
        close(inner, tech, "enrolling");
    }
}

/// Closes the screen: checks stopped, camera and microphone released, everything typed gone.
fn close(inner: &Rc<Inner>, tech: &Tech<'_>, reason: &str) {
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

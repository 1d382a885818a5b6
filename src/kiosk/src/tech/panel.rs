//! The technician screen's panel, once it is open: the device facts and the checks (microphone
//! meter, camera preview, test tone, network test), identify, and the enrolment keypad. Part of
//! the Slint adapter ([`super::screen`] opens and closes it); runs on the UI thread.
//!
//! Must never: keep the camera or microphone open after [`stop_camera`] and the meter's drop, or
//! let a preview picture be captured (screenshots are refused while [`preview_on`]).

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use slint::{ComponentHandle, Image, Rgb8Pixel, SharedPixelBuffer, TimerMode};

use super::checks::{self, MicMeter, Preview};
use super::rules;
use super::session::{Inner, PREVIEW_ON, close, keep_open, later, stop_camera};
use super::{Enrolment, KeyHolder, action, network};
use crate::ui::{self, Api, NetState, Tech, TechPage};

/// How long after the tone ends its loudness is still counted (the room's latency).
const TONE_TAIL: Duration = Duration::from_millis(500);
/// How long "Identify" shows the banner.
const IDENTIFY_FOR: Duration = Duration::from_secs(10);

/// The technician screen itself: the facts, and the microphone and camera started.
pub(super) fn open_main(inner: &Rc<Inner>, tech: &Tech<'_>, config_version: u64) {
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

pub(super) fn toggle_camera(inner: &Rc<Inner>, tech: &Tech<'_>) {
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

pub(super) fn tone(inner: &Rc<Inner>, tech: &Tech<'_>) {
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

pub(super) fn network_test(inner: &Rc<Inner>, tech: &Tech<'_>) {
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

pub(super) fn identify(inner: &Rc<Inner>, _tech: &Tech<'_>) {
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

pub(super) fn enrol_key(inner: &Rc<Inner>, tech: &Tech<'_>, key: Option<&str>) {
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

pub(super) fn enrol_submit(inner: &Rc<Inner>, tech: &Tech<'_>) {
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

//! Slint adapter: shows a [`view::ViewModel`] on the screens of `ui/`, turns button presses into
//! visit events, and carries decoded video frames to the screen. Holds no visit logic.
//!
//! `slint::Image` is not `Send`: frames cross from GStreamer's threads as pixel buffers and
//! become images on the UI thread. Only the newest frame matters, so a frame that arrives while
//! the previous one is still queued for the UI replaces nothing and is dropped.

pub mod headless;
mod press;
pub mod view;
pub mod virtual_screen;

pub use press::{Press, press, tap_label, wire_buttons};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use slint::{ComponentHandle, Image, Rgb8Pixel, SharedPixelBuffer};

use telekiosk_protocol::config::Language;
use telekiosk_protocol::visit::{CodeRefusal, EndReason};

use crate::media::{Frame, FrameSink};
use crate::visit::Help;
use view::{CallNotice, ScreenId, ViewModel};

slint::include_modules!();

/// Whether a screen that shows visit video (the patient's self-view while waiting and
/// connecting, both pictures in the call) is up. Set on the UI thread with the screen itself, so
/// a capture made there ([`headless::screen_png`]) sees the two agree.
static VIDEO_ON_SCREEN: AtomicBool = AtomicBool::new(false);

/// True while a screen that shows visit video is up: screenshots and the virtual screen are
/// refused then.
pub fn video_on_screen() -> bool {
    VIDEO_ON_SCREEN.load(Ordering::Acquire)
}

/// The screens that show visit video.
pub fn shows_video(screen: ScreenId) -> bool {
    matches!(screen, ScreenId::Waiting | ScreenId::Connecting | ScreenId::InCall)
}

/// Whether the patient hid their picture: self-view frames are then not drawn at all.
static SELF_VIEW_HIDDEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The translation in force (UI thread); `None` until one is chosen.
    static SELECTED: std::cell::Cell<Option<Language>> = const { std::cell::Cell::new(None) };
}

/// The bundled translation for `language`, in force on every screen at once (a translation
/// already in force is left as it is). Must run on the UI thread.
pub fn select_language(language: Language) {
    if SELECTED.get() == Some(language) {
        return;
    }
    SELECTED.set(Some(language));
    let code = match language {
        Language::En => "en",
        Language::Es => "es",
    };
    if let Err(e) = slint::select_bundled_translation(code) {
        tracing::warn!("cannot show the screens in {code}: {e}");
    }
}

/// Shows the view model on the window. Leaving a call clears the video images.
pub fn show(window: &KioskWindow, vm: &ViewModel, online: bool) {
    let api = window.global::<Api>();
    let screen = match vm.screen {
        ScreenId::Idle | ScreenId::Closed => Screen::Idle,
        ScreenId::Consent => Screen::Consent,
        ScreenId::CodeEntry => Screen::CodeEntry,
        ScreenId::Waiting => Screen::Waiting,
        ScreenId::Connecting => Screen::Connecting,
        ScreenId::InCall => Screen::InCall,
        ScreenId::Ended => Screen::Ended,
        ScreenId::Cleaning => Screen::Cleaning,
        ScreenId::OutOfService => Screen::OutOfService,
    };
    let video = shows_video(vm.screen);
    let hidden = vm.patient.self_view_hidden;
    if !video {
        api.set_remote_video(Image::default());
    }
    if !video || hidden {
        api.set_self_video(Image::default());
    }
    SELF_VIEW_HIDDEN.store(hidden, Ordering::Release);
    // Waiting with the picture hidden shows no visit video at all.
    let video = video && !(hidden && vm.screen != ScreenId::InCall);
    VIDEO_ON_SCREEN.store(video, Ordering::Release);
    show_patient(&api, vm);
    api.set_screen(screen);
    api.set_message(vm.message.as_str().into());
    api.set_elapsed(vm.elapsed.as_str().into());
    api.set_mic_muted(vm.mic_muted);
    api.set_camera_off(vm.camera_off);
    api.set_signal(vm.signal.into());
    api.set_notice(match vm.notice {
        CallNotice::None => Notice::None,
        CallNotice::Reconnecting => Notice::Reconnecting,
        CallNotice::VideoPaused => Notice::VideoPaused,
        CallNotice::AudioOnly => Notice::AudioOnly,
    });
    api.set_end_reason(match vm.end_reason {
        None | Some(EndReason::PatientEnded) => EndKind::PatientEnded,
        Some(EndReason::PatientCancelled) => EndKind::PatientCancelled,
        Some(EndReason::ClinicianEnded) => EndKind::ClinicianEnded,
        Some(EndReason::NoClinician) => EndKind::NoClinician,
        Some(EndReason::ConnectionLost) => EndKind::ConnectionLost,
        Some(EndReason::ClinicianLeft) => EndKind::ClinicianLeft,
        Some(EndReason::TimeLimit) => EndKind::TimeLimit,
        Some(EndReason::SecurityCheckFailed) => EndKind::SecurityCheck,
        Some(EndReason::ProtocolError | EndReason::KioskFault) => EndKind::Fault,
    });
    api.set_online(online);
    api.set_closed(vm.screen == ScreenId::Closed);
    // The controller's only out-of-service cause: media that could not start.
    api.set_camera_fault(vm.screen == ScreenId::OutOfService);
}

/// The patient's choices and where they are, on the window.
fn show_patient(api: &Api<'_>, vm: &ViewModel) {
    let p = &vm.patient;
    let spanish = p.language == Some(Language::Es);
    select_language(if spanish { Language::Es } else { Language::En });
    api.set_spanish(spanish);
    api.set_language_choice(p.language_choice);
    api.set_larger_text(p.larger_text);
    api.set_help(match p.help {
        Help::None => HelpState::None,
        Help::Told => HelpState::Told,
        Help::Coming => HelpState::Coming,
    });
    api.set_still_there(p.still_there_secs.map_or(-1, |s| s as i32));
    api.set_confirm_end(p.confirm_end);
    api.set_security_code(p.security_code.clone().unwrap_or_default().into());
    api.set_self_hidden(p.self_view_hidden);
    api.set_volume(p.volume_pct.into());
    api.set_position(p.position.map_or(-1, |n| n.min(i32::MAX as u32) as i32));
    let boxes: Vec<slint::SharedString> = (0..crate::visit::CODE_DIGITS)
        .map(|i| p.digits.get(i..i + 1).unwrap_or_default().into())
        .collect();
    api.set_code_boxes(slint::ModelRc::new(slint::VecModel::from(boxes)));
    api.set_code_complete(p.digits.len() == crate::visit::CODE_DIGITS);
    api.set_refusal(match p.refusal {
        None => Refusal::None,
        Some(CodeRefusal::Unknown) => Refusal::Unknown,
        Some(CodeRefusal::Expired) => Refusal::Expired,
        Some(CodeRefusal::Used) => Refusal::Used,
        Some(CodeRefusal::OtherClinic) => Refusal::OtherClinic,
        Some(CodeRefusal::TooManyTries) => Refusal::TooManyTries,
    });
    api.set_locked_secs(p.locked_secs.min(i32::MAX as u32) as i32);
    api.set_consent_notice(p.consent_notice.as_str().into());
    api.set_hours(p.hours.as_str().into());
}

/// Shows "This is <room>" over every screen, flashing (`None`: hides it).
pub fn set_identify(window: &KioskWindow, room: Option<&str>) {
    window.global::<Api>().set_identify(room.unwrap_or_default().into());
}

/// Shows the set-up screen (joining the fleet) with what is happening, in plain words.
pub fn show_setup(window: &KioskWindow, message: &str) {
    VIDEO_ON_SCREEN.store(false, Ordering::Release);
    let api = window.global::<Api>();
    api.set_screen(Screen::Setup);
    api.set_message(message.into());
}

/// Shows the out-of-service screen with what is wrong (before the controller runs).
pub fn show_out_of_service(window: &KioskWindow, message: &str) {
    VIDEO_ON_SCREEN.store(false, Ordering::Release);
    let api = window.global::<Api>();
    api.set_camera_fault(false);
    api.set_screen(Screen::OutOfService);
    api.set_message(message.into());
}

/// Shows "This kiosk is not set up yet" with what to do (no provisioning file).
pub fn show_not_set_up(window: &KioskWindow, message: &str) {
    VIDEO_ON_SCREEN.store(false, Ordering::Release);
    let api = window.global::<Api>();
    api.set_screen(Screen::NotSetUp);
    api.set_message(message.into());
}

/// Sets the clinic and room names shown on every screen.
pub fn set_names(window: &KioskWindow, clinic: &str, room: &str) {
    let api = window.global::<Api>();
    api.set_clinic(clinic.into());
    api.set_room(room.into());
}

/// Delivers decoded frames to the window from any thread.
pub struct UiFrames {
    window: slint::Weak<KioskWindow>,
    remote_queued: Arc<AtomicBool>,
    local_queued: Arc<AtomicBool>,
}

impl UiFrames {
    /// Frames for `window`.
    pub fn new(window: slint::Weak<KioskWindow>) -> Self {
        Self { window, remote_queued: Arc::default(), local_queued: Arc::default() }
    }

    fn deliver(
        &self,
        frame: Frame,
        queued: &Arc<AtomicBool>,
        set: fn(&Api<'_>, Image),
        local: bool,
    ) {
        if queued.swap(true, Ordering::AcqRel) {
            return; // the UI has not shown the previous frame yet: drop this one
        }
        let Some(pixels) = to_pixels(frame) else {
            queued.store(false, Ordering::Release);
            return;
        };
        let queued = queued.clone();
        let window = self.window.clone();
        let sent = slint::invoke_from_event_loop(move || {
            queued.store(false, Ordering::Release);
            if local && SELF_VIEW_HIDDEN.load(Ordering::Acquire) {
                return; // hidden since the frame was queued
            }
            if let Some(window) = window.upgrade() {
                set(&window.global::<Api>(), Image::from_rgb8(pixels));
            }
        });
        if sent.is_err() {
            tracing::debug!("UI event loop gone; frame dropped");
        }
    }
}

impl FrameSink for UiFrames {
    fn remote_frame(&self, frame: Frame) {
        self.deliver(frame, &self.remote_queued, |api, image| api.set_remote_video(image), false);
    }

    fn local_frame(&self, frame: Frame) {
        if SELF_VIEW_HIDDEN.load(Ordering::Acquire) {
            return; // the patient hid their picture: not drawn at all
        }
        self.deliver(frame, &self.local_queued, |api, image| api.set_self_video(image), true);
    }
}

/// Copies a tightly packed RGB frame into a Slint pixel buffer; `None` if its size is wrong.
fn to_pixels(frame: Frame) -> Option<SharedPixelBuffer<Rgb8Pixel>> {
    let expected = frame.width as usize * frame.height as usize * 3;
    if frame.rgb.len() != expected || expected == 0 {
        tracing::warn!(
            width = frame.width,
            height = frame.height,
            "frame of the wrong size dropped"
        );
        return None;
    }
    Some(SharedPixelBuffer::clone_from_slice(&frame.rgb, frame.width, frame.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_with_visit_video_are_the_ones_never_captured() {
        use ScreenId::*;
        for (screen, video) in [
            (Idle, false),
            (Closed, false),
            (Consent, false),
            (CodeEntry, false),
            (Cleaning, false),
            (Waiting, true),
            (Connecting, true),
            (InCall, true),
            (Ended, false),
            (OutOfService, false),
        ] {
            assert_eq!(shows_video(screen), video, "{screen:?}");
        }
    }
}

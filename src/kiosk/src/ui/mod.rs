//! Slint adapter: shows a [`view::ViewModel`] on the screens of `ui/`, turns button presses into
//! visit events, and carries decoded video frames to the screen. Holds no visit logic.
//!
//! `slint::Image` is not `Send`: frames cross from GStreamer's threads as pixel buffers and
//! become images on the UI thread. Only the newest frame matters, so a frame that arrives while
//! the previous one is still queued for the UI replaces nothing and is dropped.

pub mod headless;
pub mod view;
pub mod virtual_screen;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use slint::{ComponentHandle, Image, Rgb8Pixel, SharedPixelBuffer};

use crate::media::{Frame, FrameSink};
use view::{ScreenId, ViewModel};

slint::include_modules!();

/// Button presses from the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Join,
    Cancel,
    End,
    Mute,
    Camera,
}

impl Press {
    /// The button a name of the headless control (`tap join`) stands for.
    pub fn named(name: &str) -> Option<Press> {
        Some(match name {
            "join" => Press::Join,
            "cancel" => Press::Cancel,
            "end" => Press::End,
            "mute" => Press::Mute,
            "camera" => Press::Camera,
            _ => return None,
        })
    }
}

/// Runs a button's action, as a tap on the button does (whichever page is up: the visit
/// ignores a press that does not fit where it is). Must run on the UI thread.
pub fn press(window: &KioskWindow, press: Press) {
    let api = window.global::<Api>();
    match press {
        Press::Join => api.invoke_join(),
        Press::Cancel => api.invoke_cancel(),
        Press::End => api.invoke_end(),
        Press::Mute => api.invoke_toggle_mute(),
        Press::Camera => api.invoke_toggle_camera(),
    }
}

/// Connects each button of the window to `on_press`.
pub fn wire_buttons(window: &KioskWindow, on_press: impl Fn(Press) + Clone + 'static) {
    let api = window.global::<Api>();
    let f = on_press.clone();
    api.on_join(move || f(Press::Join));
    let f = on_press.clone();
    api.on_cancel(move || f(Press::Cancel));
    let f = on_press.clone();
    api.on_end(move || f(Press::End));
    let f = on_press.clone();
    api.on_toggle_mute(move || f(Press::Mute));
    api.on_toggle_camera(move || on_press(Press::Camera));
}

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

/// Shows the view model on the window. Leaving a call clears the video images.
pub fn show(window: &KioskWindow, vm: &ViewModel, online: bool) {
    let api = window.global::<Api>();
    let screen = match vm.screen {
        ScreenId::Idle | ScreenId::Closed => Screen::Idle,
        ScreenId::Waiting => Screen::Waiting,
        ScreenId::Connecting => Screen::Connecting,
        ScreenId::InCall => Screen::InCall,
        ScreenId::Ended => Screen::Ended,
        ScreenId::OutOfService => Screen::OutOfService,
    };
    let video = shows_video(vm.screen);
    if !video {
        api.set_remote_video(Image::default());
        api.set_self_video(Image::default());
    }
    VIDEO_ON_SCREEN.store(video, Ordering::Release);
    api.set_screen(screen);
    api.set_message(vm.message.as_str().into());
    api.set_elapsed(vm.elapsed.as_str().into());
    api.set_mic_muted(vm.mic_muted);
    api.set_camera_off(vm.camera_off);
    api.set_signal(vm.signal.into());
    api.set_call_notice(vm.call_notice.as_str().into());
    api.set_online(online);
    api.set_closed(vm.screen == ScreenId::Closed);
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

    fn deliver(&self, frame: Frame, queued: &Arc<AtomicBool>, set: fn(&Api<'_>, Image)) {
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
        self.deliver(frame, &self.remote_queued, |api, image| api.set_remote_video(image));
    }

    fn local_frame(&self, frame: Frame) {
        self.deliver(frame, &self.local_queued, |api, image| api.set_self_video(image));
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

//! Translations at the controller's edge: touches and media reports into visit events, and the
//! frame sink that marks the moment the patient first sees the clinician. No decisions here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::status;
use crate::media::{Frame, FrameSink, MediaEvent, stamp};
use crate::ui::Press;
use crate::visit::Event;

pub(super) fn press_event(press: Press) -> Event {
    let fresh = || uuid::Uuid::new_v4().to_string();
    match press {
        Press::Join => Event::JoinPressed { visit_id: fresh() },
        Press::Code => Event::CodePressed,
        Press::Digit(d) => Event::Digit(d),
        Press::Delete => Event::DeleteDigit,
        Press::CodeOk => Event::CodeOk { visit_id: fresh() },
        Press::Accept => Event::ConsentAccepted,
        Press::Decline => Event::ConsentDeclined,
        Press::Cancel => Event::CancelPressed,
        Press::End => Event::EndPressed,
        Press::EndYes => Event::EndConfirmed,
        Press::EndNo => Event::EndDeclined,
        Press::Mute => Event::MuteToggled,
        Press::Camera => Event::CameraToggled,
        Press::VolumeUp => Event::VolumeUp,
        Press::VolumeDown => Event::VolumeDown,
        Press::HideSelf => Event::SelfViewToggled,
        Press::Language => Event::LanguageToggled,
        Press::LargerText => Event::LargerTextToggled,
        Press::Help => Event::HelpPressed { visit_id: fresh() },
        Press::StillHere => Event::StillHere,
    }
}

/// The visit event a media report is, if it is one (`VideoPaused` changes how the call looks,
/// not where the visit is; the controller signs `LocalOffer` first).
pub(super) fn media_event(event: MediaEvent) -> Option<Event> {
    Some(match event {
        MediaEvent::LocalOffer { .. } => return None,
        MediaEvent::LocalIce(ice) => Event::LocalIce(ice),
        MediaEvent::Connected => Event::MediaConnected,
        MediaEvent::VideoPaused(_) => return None,
        MediaEvent::Failed { reason } => Event::MediaFailed { reason },
    })
}

/// Passes frames on and reports the call's first decoded clinician frame (`first_remote_frame`),
/// the moment the patient first sees the clinician.
pub(super) struct FirstFrame {
    pub(super) inner: Arc<dyn FrameSink>,
    pub(super) seen: AtomicBool,
    /// Bench only (profile `video.stamp_time`): print each frame's glass-to-glass latency.
    pub(super) stamped: bool,
}

impl FrameSink for FirstFrame {
    fn remote_frame(&self, frame: Frame) {
        if !self.seen.swap(true, Ordering::Relaxed) {
            status(&serde_json::json!({"event": "first_remote_frame"}));
        }
        if self.stamped
            && let Some(at) =
                stamp::read_rgb(&frame.rgb, frame.width as usize, frame.height as usize)
        {
            let ms = stamp::elapsed(at, stamp::now_ms());
            if ms < 10_000 {
                status(&serde_json::json!({"event": "g2g", "ms": ms}));
            }
        }
        self.inner.remote_frame(frame);
    }

    fn local_frame(&self, frame: Frame) {
        self.inner.local_frame(frame);
    }
}

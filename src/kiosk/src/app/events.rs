//! Translations at the controller's edge: touches and media reports into visit events, and the
//! frame sink that marks the moment the patient first sees the clinician. No decisions here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::status;
use crate::media::{Frame, FrameSink, MediaEvent};
use crate::ui::Press;
use crate::visit::Event;

pub(super) fn press_event(press: Press) -> Event {
    match press {
        Press::Join => Event::JoinPressed { visit_id: uuid::Uuid::new_v4().to_string() },
        Press::Cancel => Event::CancelPressed,
        Press::End => Event::EndPressed,
        Press::Mute => Event::MuteToggled,
        Press::Camera => Event::CameraToggled,
    }
}

pub(super) fn media_event(event: MediaEvent) -> Event {
    match event {
        MediaEvent::LocalOffer { sdp } => Event::LocalOffer { sdp },
        MediaEvent::LocalIce(ice) => Event::LocalIce(ice),
        MediaEvent::Connected => Event::MediaConnected,
        MediaEvent::Failed { reason } => Event::MediaFailed { reason },
    }
}

/// Passes frames on and reports the call's first decoded clinician frame (`first_remote_frame`),
/// the moment the patient first sees the clinician.
pub(super) struct FirstFrame {
    pub(super) inner: Arc<dyn FrameSink>,
    pub(super) seen: AtomicBool,
}

impl FrameSink for FirstFrame {
    fn remote_frame(&self, frame: Frame) {
        if !self.seen.swap(true, Ordering::Relaxed) {
            status(&serde_json::json!({"event": "first_remote_frame"}));
        }
        self.inner.remote_frame(frame);
    }

    fn local_frame(&self, frame: Frame) {
        self.inner.local_frame(frame);
    }
}

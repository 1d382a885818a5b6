//! The pipeline's bus, read on a thread of its own (the kiosk runs no GLib main loop): errors
//! become [`super::MediaEvent::Failed`] naming the element, latency changes are applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use gst::prelude::*;

use super::{MediaError, Shared};

/// How often the bus thread checks whether it should end.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(100);

/// A running bus reader; [`Watch::stop`] ends it.
pub(crate) struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watch {
    /// Starts reading the pipeline's bus. Messages posted before this call are still read.
    pub(crate) fn spawn(
        pipeline: &gst::Pipeline,
        shared: &Arc<Shared>,
    ) -> Result<Self, MediaError> {
        let bus = pipeline.bus().ok_or_else(|| MediaError::Build {
            element: pipeline.name().to_string(),
            message: "pipeline has no bus".into(),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let weak = pipeline.downgrade();
        let (flag, shared) = (Arc::clone(&stop), Arc::clone(shared));
        // A timed pop rather than a wake-up message: going to NULL sets the bus flushing, which
        // would drop such a message.
        let thread = std::thread::Builder::new()
            .name("media-bus".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    if let Some(message) = bus.timed_pop(POLL) {
                        handle(&message, &weak, &shared);
                    }
                }
            })
            .map_err(|e| MediaError::Build {
                element: "media-bus thread".into(),
                message: e.to_string(),
            })?;
        Ok(Self { stop, thread })
    }

    /// Ends the reader and waits for it (at most one poll interval).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.thread.join().is_err() {
            tracing::warn!("media bus thread panicked");
        }
    }
}

fn handle(message: &gst::Message, pipeline: &gst::glib::WeakRef<gst::Pipeline>, shared: &Shared) {
    use gst::MessageView;
    match message.view() {
        MessageView::Error(e) => {
            tracing::error!(debug = ?e.debug(), "pipeline error");
            shared.fail(format!("{} failed: {}", source_name(message), e.error()));
        }
        MessageView::Warning(w) => {
            tracing::warn!(element = %source_name(message), error = %w.error(), debug = ?w.debug());
        }
        MessageView::Eos(_) => shared.fail("the media stream ended (end of stream)".into()),
        MessageView::Latency(_) => {
            // Live sources and webrtcbin's jitterbuffers change latency as they start.
            if let Some(pipeline) = pipeline.upgrade()
                && let Err(e) = pipeline.recalculate_latency()
            {
                tracing::debug!(%e, "latency recalculation failed");
            }
        }
        _ => {}
    }
}

/// `name (factory)` of the element that posted `message`, e.g. `x264enc0 (x264enc)`.
fn source_name(message: &gst::Message) -> String {
    let Some(source) = message.src() else { return "pipeline".into() };
    let factory = source
        .downcast_ref::<gst::Element>()
        .and_then(|e| e.factory())
        .map(|f| f.name().to_string());
    match factory {
        Some(factory) if !source.name().starts_with(factory.as_str()) => {
            format!("{} ({factory})", source.name())
        }
        _ => source.name().to_string(),
    }
}

/// The first error waiting on the pipeline's bus, as (element, message): why a start failed.
pub(crate) fn first_error(pipeline: &gst::Pipeline) -> Option<(String, String)> {
    let message = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(e) => Some((source_name(&message), e.error().to_string())),
        _ => None,
    }
}

//! What the clinician sends: each stream webrtcbin exposes is decoded; video becomes RGB frames
//! for the UI (at most 1280x720, aspect kept), audio goes to the profile's speaker sink through
//! the echo-cancellation probe when there is one. Played, never stored.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::frames::{self, Target};
use super::pipeline::{add, build_error, count_buffers, from_description, link, make};
use super::{MediaError, Shared};

/// The largest remote picture handed to the UI.
const MAX_WIDTH: i32 = 1280;
const MAX_HEIGHT: i32 = 720;

/// Everything the remote side needs, shared by the `pad-added` handlers.
struct Remote {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    shared: Arc<Shared>,
    audio_sink: String,
    /// Taken by the first audio stream (one speaker, one probe).
    echo_probe: Mutex<Option<gst::Element>>,
}

/// Decodes every stream webrtcbin exposes from now on.
pub(crate) fn connect(
    webrtc: &gst::Element,
    pipeline: &gst::Pipeline,
    shared: &Arc<Shared>,
    audio_sink: &str,
    echo_probe: Option<gst::Element>,
) {
    let remote = Arc::new(Remote {
        pipeline: pipeline.downgrade(),
        shared: Arc::clone(shared),
        audio_sink: audio_sink.into(),
        echo_probe: Mutex::new(echo_probe),
    });
    webrtc.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        if let Err(e) = remote.add_decoder(pad) {
            remote.shared.fail(e.to_string());
        }
    });
}

impl Remote {
    /// webrtcbin src pad (RTP) → decodebin, which finds the depayloader and decoder.
    fn add_decoder(self: &Arc<Self>, pad: &gst::Pad) -> Result<(), MediaError> {
        let Some(pipeline) = self.pipeline.upgrade() else { return Ok(()) };
        let decodebin = make("decodebin")?;
        if let Some(bin) = decodebin.downcast_ref::<gst::Bin>() {
            bin.connect_deep_element_added(|_, _, element| recover_from_loss(element));
        }
        let this = Arc::clone(self);
        decodebin.connect_pad_added(move |_, pad| {
            if let Err(e) = this.add_output(pad) {
                this.shared.fail(e.to_string());
            }
        });
        add(&pipeline, &[&decodebin])?;
        decodebin.sync_state_with_parent().map_err(|e| build_error("decodebin", e))?;
        let sink =
            decodebin.static_pad("sink").ok_or_else(|| build_error("decodebin", "no sink"))?;
        pad.link(&sink).map_err(|e| build_error(&format!("{} → decodebin", pad.name()), e))?;
        Ok(())
    }

    /// A decoded stream: builds its video or audio output and links it.
    fn add_output(&self, pad: &gst::Pad) -> Result<(), MediaError> {
        let Some(pipeline) = self.pipeline.upgrade() else { return Ok(()) };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let kind = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        let chain = if kind.starts_with("video/") {
            self.video_chain()?
        } else if kind.starts_with("audio/") {
            self.audio_chain()?
        } else {
            tracing::warn!(%kind, "ignoring a remote stream that is neither audio nor video");
            return Ok(());
        };
        let refs: Vec<&gst::Element> = chain.iter().collect();
        let new: Vec<&gst::Element> = chain.iter().filter(|e| e.parent().is_none()).collect();
        add(&pipeline, &new)?;
        link(&refs)?;
        // Downstream first, so no element receives data before its neighbour can take it.
        for element in chain.iter().rev() {
            element.sync_state_with_parent().map_err(|e| build_error(&element.name(), e))?;
        }
        let first = chain[0].static_pad("sink").ok_or_else(|| build_error("queue", "no sink"))?;
        pad.link(&first).map_err(|e| build_error(&format!("decodebin → {kind} output"), e))?;
        tracing::info!(%kind, "remote stream playing");
        Ok(())
    }

    /// queue → convert → scale to fit 1280x720 (aspect kept) → RGB appsink (lip-synced).
    fn video_chain(&self) -> Result<Vec<gst::Element>, MediaError> {
        let fit = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", gst::IntRange::new(1, MAX_WIDTH))
            .field("height", gst::IntRange::new(1, MAX_HEIGHT))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let sink = frames::rgb_appsink("remote-video", &fit, Target::Remote, &self.shared)?;
        let queue = make("queue")?;
        Ok(vec![queue, make("videoconvert")?, make("videoscale")?, sink])
    }

    /// queue → convert → resample → (echo probe) → the profile's speaker sink, counted.
    fn audio_chain(&self) -> Result<Vec<gst::Element>, MediaError> {
        let sink = from_description("audio.sink", &self.audio_sink)?;
        count_buffers(&sink, &self.shared, |s| &s.remote_audio_buffers)?;
        let mut chain = vec![make("queue")?, make("audioconvert")?, make("audioresample")?];
        let probe = self.echo_probe.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The probe is already in the pipeline (webrtcdsp needed it at start); only linked now.
        chain.extend(probe);
        chain.push(sink);
        Ok(chain)
    }
}

/// Packet loss must not leave the picture broken until the next scheduled keyframe (2 s): the
/// depayloader and decoder ask the kiosk's peer for a keyframe (RTCP PLI) at most once a second
/// and show nothing rather than corrupted frames meanwhile. It also recovers a call whose first
/// keyframe arrived before DTLS was up.
fn recover_from_loss(element: &gst::Element) {
    let set_true = |property: &str| {
        if element.find_property(property).is_some() {
            element.set_property(property, true);
        }
    };
    if element.factory().is_some_and(|f| f.name() == "rtph264depay") {
        set_true("request-keyframe");
        set_true("wait-for-keyframe");
    }
    if element.is::<gst_video::VideoDecoder>() {
        set_true("automatic-request-sync-points");
        set_true("discard-corrupted-frames");
        if element.find_property("min-force-key-unit-interval").is_some() {
            element.set_property("min-force-key-unit-interval", gst::ClockTime::SECOND.nseconds());
        }
    }
}

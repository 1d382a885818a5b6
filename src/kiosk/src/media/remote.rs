//! What the clinician sends: each stream webrtcbin exposes is decoded (H.264 or VP8, whichever
//! the browser sends; Opus); video becomes RGB frames for the UI (at most 1280x720, aspect
//! kept), audio goes to the profile's speaker sink through the echo-cancellation probe when
//! there is one. Played, never stored.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::elements::{add, build_error, link, make};
use super::frames::{self, Target};
use super::pipeline::{count_buffers, from_description};
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
            let shared = Arc::clone(&self.shared);
            bin.connect_deep_element_added(move |_, _, element| {
                recover_from_loss(element);
                if element.factory().is_some_and(|f| f.name() == "opusdec") {
                    conceal_lost_voice(element, &shared);
                }
            });
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

    /// queue → volume (the patient's level, before the echo probe so it hears what is played)
    /// → convert → resample → (pinned rate, echo probe) → the profile's speaker sink, counted.
    fn audio_chain(&self) -> Result<Vec<gst::Element>, MediaError> {
        let sink = from_description("audio.sink", &self.audio_sink)?;
        count_buffers(&sink, &self.shared, |s| &s.remote_audio_buffers)?;
        let volume = make("volume")?;
        {
            let mut speaker = self.shared.speaker.lock().unwrap_or_else(|e| e.into_inner());
            volume.set_property("volume", f64::from(speaker.0) / 100.0);
            speaker.1 = Some(volume.clone());
        }
        let mut chain = vec![make("queue")?, volume];
        let probe = self.echo_probe.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The probe is already in the pipeline (webrtcdsp needed it at start); only linked now,
        // at the rate the microphone's DSP runs at.
        match probe {
            Some(probe) => chain.extend(super::echo::render_chain(&probe)?),
            None => chain.extend([make("audioconvert")?, make("audioresample")?]),
        }
        chain.push(sink);
        Ok(chain)
    }
}

/// Lost voice packets are rebuilt from the next packet's in-band FEC where it has one, and
/// concealed (PLC) where not, instead of clicks and gaps. What reaches the decoder (frames, and
/// gaps for lost ones) is counted for the share concealed in the call's quality.
fn conceal_lost_voice(decoder: &gst::Element, shared: &Arc<Shared>) {
    decoder.set_property("plc", true);
    decoder.set_property("use-inband-fec", true);
    let Some(sink) = decoder.static_pad("sink") else { return };
    let shared = Arc::clone(shared);
    sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut voice = shared.voice.lock().unwrap_or_else(|e| e.into_inner());
            count_voice(&mut voice, info);
            gst::PadProbeReturn::Ok
        },
    );
}

/// A buffer is one frame; a gap event stands for the 20 ms frames it covers.
pub(crate) fn count_voice(voice: &mut super::VoiceLoss, info: &gst::PadProbeInfo) {
    match &info.data {
        Some(gst::PadProbeData::Buffer(_)) => voice.frame(false),
        Some(gst::PadProbeData::Event(event)) if event.type_() == gst::EventType::Gap => {
            let gst::EventView::Gap(gap) = event.view() else { return };
            let ms = gap.get().1.map_or(20, |d| d.mseconds());
            (0..(ms + 10) / 20).for_each(|_| voice.frame(true));
        }
        _ => {}
    }
}

/// Packet loss that retransmission could not repair must not freeze the picture until the next
/// keyframe: the depayloader and decoder ask the kiosk's peer for one (RTCP PLI, at most once a
/// second) and meanwhile keep showing what decodes, with the decoder's concealment of the
/// damaged part. Measured on the floor link, waiting for the keyframe instead froze the picture
/// for over a second several times a minute. It also recovers a call whose first keyframe
/// arrived before DTLS was up.
pub fn recover_from_loss(element: &gst::Element) {
    let set_true = |property: &str| {
        if element.find_property(property).is_some() {
            element.set_property(property, true);
        }
    };
    if element
        .factory()
        .is_some_and(|f| ["rtph264depay", "rtpvp8depay"].contains(&f.name().as_str()))
    {
        set_true("request-keyframe");
    }
    if element.is::<gst_video::VideoDecoder>() {
        set_true("automatic-request-sync-points");
        // Ask for the keyframe but keep decoding meanwhile (the default also drops the input
        // until it comes: a freeze of a round trip or more).
        if let Some(pspec) = element.find_property("automatic-request-sync-point-flags")
            && let Ok(flags) = gst::glib::Value::deserialize_with_pspec("corrupt-output", &pspec)
        {
            element.set_property_from_value("automatic-request-sync-point-flags", &flags);
        }
        if element.find_property("min-force-key-unit-interval").is_some() {
            element.set_property("min-force-key-unit-interval", gst::ClockTime::SECOND.nseconds());
        }
    }
}

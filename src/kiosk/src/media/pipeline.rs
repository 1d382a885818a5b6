//! The sending side of a call: camera → H.264 → webrtcbin (with the self-view split off before
//! the encoder) and microphone → Opus → webrtcbin. Built from the hardware profile; every element
//! lives in memory only — descriptions from the profile are checked for file-writing elements.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use super::frames::{self, Target};
use super::{CallSettings, MediaError, Shared, encoder, require};
use crate::profile::{Audio, Profile, Video};

/// Payload types the offer uses (dynamic range; what browsers also pick for these codecs).
const H264_PT: i32 = 96;
const OPUS_PT: i32 = 111;
/// Width of the self-view; the height follows the camera's aspect ratio.
const SELF_VIEW_WIDTH: u32 = 320;

/// The pipeline of one call with the elements the [`super::Call`] handle drives.
pub(crate) struct Built {
    pub pipeline: gst::Pipeline,
    pub webrtc: gst::Element,
    /// `volume` element in the microphone chain; its `mute` property is the mic mute.
    pub mic_volume: gst::Element,
    /// The echo-cancellation probe for the speaker chain, when the profile asks for AEC.
    pub echo_probe: Option<gst::Element>,
}

/// Builds (but does not start) the pipeline of one call: the profile's devices, its video
/// within the config's caps, and the config's STUN/TURN servers (none: loopback and LAN only).
pub(crate) fn build(
    profile: &Profile,
    settings: &CallSettings,
    shared: &Arc<Shared>,
) -> Result<Built, MediaError> {
    let pipeline = gst::Pipeline::with_name("telekiosk-call");
    let webrtc = make("webrtcbin")?;
    webrtc.set_property_from_str("bundle-policy", "max-bundle");
    if let Some(stun) = &settings.stun {
        webrtc.set_property("stun-server", stun);
    }
    for turn in &settings.turn {
        if !webrtc.emit_by_name::<bool>("add-turn-server", &[turn]) {
            // The URL is not logged: it carries the TURN credential.
            return Err(build_error("webrtcbin", "a TURN server URL from the config was refused"));
        }
    }
    pipeline.add(&webrtc).map_err(|e| build_error("webrtcbin", e))?;

    // The speaker chain is built when the clinician's audio arrives; refuse a bad one now.
    from_description("audio.sink", &profile.audio.sink)?;
    let video = settings.cap(&profile.video);
    add_video(&pipeline, &webrtc, &video, shared)?;
    let (mic_volume, echo_probe) = add_audio(&pipeline, &webrtc, &profile.audio, shared)?;
    Ok(Built { pipeline, webrtc, mic_volume, echo_probe })
}

/// camera → convert/scale/rate → I420 at the profile's size → tee → encoder → webrtcbin,
/// and tee → small RGB self-view.
fn add_video(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    video: &Video,
    shared: &Arc<Shared>,
) -> Result<(), MediaError> {
    let camera = from_description("video.source", &video.source)?;
    let raw = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", video.width as i32)
        .field("height", video.height as i32)
        .field("framerate", gst::Fraction::new(video.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let (convert, scale, rate) = (make("videoconvert")?, make("videoscale")?, make("videorate")?);
    let raw_filter = capsfilter(&raw)?;
    let tee = make("tee")?;
    add(pipeline, &[&camera, &convert, &scale, &rate, &raw_filter, &tee])?;
    link(&[&camera, &convert, &scale, &rate, &raw_filter, &tee])?;
    camera_off_probe(&raw_filter, video, shared)?;

    // Encoder branch. The leaky queue drops old frames rather than letting delay build up
    // when the encoder falls behind.
    let name = encoder::choose_encoder(&video.encoders)?;
    let enc = make(&name)?;
    let setup = encoder::configure(&enc, video);
    let enc_queue = leaky_queue(3)?;
    let converter = make(setup.converter)?;
    let h264_filter = capsfilter(&setup.caps)?;
    let parse = make("h264parse")?;
    let pay = make("rtph264pay")?;
    pay.set_property("config-interval", -1i32); // SPS/PPS before every keyframe
    pay.set_property_from_str("aggregate-mode", "zero-latency");
    pay.set_property("pt", H264_PT as u32);
    let rtp = rtp_caps("video", "H264", H264_PT, 90_000);
    let rtp_filter = capsfilter(&rtp)?;
    let branch = [&enc_queue, &converter, &enc, &h264_filter, &parse, &pay, &rtp_filter];
    add(pipeline, &branch)?;
    link(&[&tee, &enc_queue])?;
    link(&branch)?;
    count_buffers(&enc, shared, |s| &s.local_video_frames)?;
    link_to_webrtc(&rtp_filter, webrtc)?;
    tracing::info!(encoder = %name, "video encoder chosen");

    // Self-view branch: one frame queued at most, scaled before conversion (cheaper).
    let self_height = (SELF_VIEW_WIDTH * video.height / video.width).max(2) & !1;
    let view_caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", SELF_VIEW_WIDTH as i32)
        .field("height", self_height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let view_queue = leaky_queue(1)?;
    let (view_scale, view_convert) = (make("videoscale")?, make("videoconvert")?);
    let view_sink = frames::rgb_appsink("self-view", &view_caps, Target::Local, shared)?;
    let view = [&view_queue, &view_scale, &view_convert, &view_sink];
    add(pipeline, &view)?;
    link(&[&tee, &view_queue])?;
    link(&view)
}

/// While the camera is off, every frame leaving the camera chain is swapped for a black one
/// with the same timing: the encoder and the self-view keep running (no frozen last picture).
fn camera_off_probe(
    filter: &gst::Element,
    video: &Video,
    shared: &Arc<Shared>,
) -> Result<(), MediaError> {
    let black = frames::black_i420(video.width, video.height)?;
    let shared = Arc::clone(shared);
    let pad = static_pad(filter, "src")?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if !shared.camera_on.load(Ordering::Relaxed)
            && let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut()
        {
            *buffer = frames::black_like(&black, buffer);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// mic → convert/resample → (echo cancellation) → volume (mute) → Opus → webrtcbin.
/// Returns the volume element and, with AEC, the echo probe the speaker chain must pass through.
fn add_audio(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    audio: &Audio,
    shared: &Arc<Shared>,
) -> Result<(gst::Element, Option<gst::Element>), MediaError> {
    let mic = from_description("audio.source", &audio.source)?;
    let (convert, resample) = (make("audioconvert")?, make("audioresample")?);
    let volume = make("volume")?;
    let enc = make("opusenc")?;
    let queue = make("queue")?;
    let pay = make("rtpopuspay")?;
    pay.set_property("pt", OPUS_PT as u32);
    let rtp_filter = capsfilter(&rtp_caps("audio", "OPUS", OPUS_PT, 48_000))?;

    let mut chain = vec![mic, convert, resample];
    let mut probe = None;
    if audio.echo_cancel {
        require("webrtcdsp", "gstreamer1.0-plugins-bad")?;
        require("webrtcechoprobe", "gstreamer1.0-plugins-bad")?;
        // webrtcdsp finds its probe by name, process-wide, when it starts: the probe must
        // exist by then (it is linked into the speaker chain once the clinician's audio
        // arrives) and its name must be unique among concurrent calls.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("telekiosk-echo-probe-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let echo_probe = gst::ElementFactory::make("webrtcechoprobe")
            .name(name.as_str())
            .build()
            .map_err(|e| build_error("webrtcechoprobe", e))?;
        let dsp = make("webrtcdsp")?;
        dsp.set_property("probe", name.as_str());
        pipeline.add(&echo_probe).map_err(|e| build_error("webrtcechoprobe", e))?;
        chain.push(dsp);
        probe = Some(echo_probe);
    }
    count_buffers(&enc, shared, |s| &s.local_audio_buffers)?;
    chain.extend([volume.clone(), queue, enc, pay, rtp_filter.clone()]);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    add(pipeline, &refs)?;
    link(&refs)?;
    link_to_webrtc(&rtp_filter, webrtc)?;
    Ok((volume, probe))
}

/// Links `from` to a new webrtcbin sink pad and makes its transceiver send and receive.
fn link_to_webrtc(from: &gst::Element, webrtc: &gst::Element) -> Result<(), MediaError> {
    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or_else(|| build_error("webrtcbin", "no sink pad available"))?;
    static_pad(from, "src")?
        .link(&sink)
        .map_err(|e| build_error(&format!("{} → webrtcbin", from.name()), e))?;
    // Pads made this way get a send-receive transceiver already; say so rather than rely on it.
    if sink.find_property("transceiver").is_some()
        && let Some(t) = sink.property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")
    {
        t.set_property("direction", gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv);
    }
    Ok(())
}

/// Counts buffers entering `element` into one of the [`Shared`] counters.
pub(crate) fn count_buffers(
    element: &gst::Element,
    shared: &Arc<Shared>,
    counter: fn(&Shared) -> &AtomicU64,
) -> Result<(), MediaError> {
    let shared = Arc::clone(shared);
    static_pad(element, "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter(&shared).fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

fn rtp_caps(media: &str, encoding: &str, pt: i32, clock_rate: i32) -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", media)
        .field("encoding-name", encoding)
        .field("payload", pt)
        .field("clock-rate", clock_rate)
        .build()
}

/// A bin from a profile launch description, refused if it contains an element that writes files.
pub(crate) fn from_description(
    field: &'static str,
    description: &str,
) -> Result<gst::Element, MediaError> {
    let refuse = |message: String| MediaError::Description {
        field,
        description: description.into(),
        message,
    };
    let bin =
        gst::parse::bin_from_description(description, true).map_err(|e| refuse(e.to_string()))?;
    for element in bin.iterate_recurse().into_iter().flatten() {
        if writes_files(&element) {
            let factory = element.factory().map(|f| f.name().to_string()).unwrap_or_default();
            return Err(refuse(format!("element {factory} writes files; visit media never may")));
        }
    }
    Ok(bin.upcast())
}

/// A sink that takes a file location or a URI to write to (filesink, multifilesink,
/// splitmuxsink, giosink, hlssink, …).
pub(crate) fn writes_files(element: &gst::Element) -> bool {
    let is_sink = element
        .factory()
        .and_then(|f| f.metadata("klass").map(|k| k.contains("Sink")))
        .unwrap_or(false);
    let uri_sink = element
        .dynamic_cast_ref::<gst::URIHandler>()
        .is_some_and(|h| h.uri_type() == gst::URIType::Sink);
    uri_sink || (is_sink && element.find_property("location").is_some())
}

pub(crate) fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory).build().map_err(|e| build_error(factory, e))
}

pub(crate) fn capsfilter(caps: &gst::Caps) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| build_error("capsfilter", e))
}

/// A queue holding at most `buffers` buffers that drops the oldest when full.
pub(crate) fn leaky_queue(buffers: u32) -> Result<gst::Element, MediaError> {
    let queue = make("queue")?;
    queue.set_property("max-size-buffers", buffers);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    queue.set_property_from_str("leaky", "downstream");
    Ok(queue)
}

pub(crate) fn add(bin: &impl IsA<gst::Bin>, elements: &[&gst::Element]) -> Result<(), MediaError> {
    for element in elements {
        bin.add(*element).map_err(|e| build_error(&element.name(), e))?;
    }
    Ok(())
}

/// Links each element to the next; the error names the pair that would not link.
pub(crate) fn link(elements: &[&gst::Element]) -> Result<(), MediaError> {
    for pair in elements.windows(2) {
        pair[0]
            .link(pair[1])
            .map_err(|e| build_error(&format!("{} → {}", pair[0].name(), pair[1].name()), e))?;
    }
    Ok(())
}

pub(crate) fn static_pad(element: &gst::Element, name: &str) -> Result<gst::Pad, MediaError> {
    element
        .static_pad(name)
        .ok_or_else(|| build_error(&element.name(), format!("has no {name} pad")))
}

pub(crate) fn build_error(element: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Build { element: element.into(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_with_a_file_writer_is_refused() {
        gst::init().unwrap();
        let err =
            from_description("audio.sink", "tee name=t ! queue ! fakesink t. ! queue ! filesink")
                .unwrap_err()
                .to_string();
        assert!(err.contains("filesink") && err.contains("audio.sink"), "{err}");
    }

    #[test]
    fn shipped_sources_and_sinks_are_accepted() {
        gst::init().unwrap();
        for d in ["videotestsrc is-live=true", "fakesink sync=false", "autoaudiosink"] {
            from_description("video.source", d).unwrap();
        }
    }

    #[test]
    fn unparsable_description_names_the_profile_field() {
        gst::init().unwrap();
        let err = from_description("video.source", "no-such-element-xyz").unwrap_err().to_string();
        assert!(err.contains("video.source") && err.contains("no-such-element-xyz"), "{err}");
    }
}

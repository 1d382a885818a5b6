//! The sending side of a call: camera → H.264 or VP8 (offered side by side; the answer picks) →
//! webrtcbin (with the self-view split off before the encoder) and microphone → Opus →
//! webrtcbin, audio on the offer's first m-line. Built from the hardware profile; every element
//! lives in memory only — descriptions from the profile are checked for file-writing elements.
//!
//! What the offer asks for, so a call holds on a poor link: retransmission (NACK + RTX) for
//! video, transport-wide congestion control feedback (the TWCC header extension on both
//! streams), ULPFEC when the settings ask for it, Opus with in-band FEC, and packets of at most
//! 1200 bytes (room for TURN and VPN headers without fragmenting).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use gst::prelude::*;
use gst_rtp::prelude::RTPHeaderExtensionExt;

use super::answer::VideoCodec;
use super::control::{Knobs, PictureCaps};
use super::elements::{add, build_error, capsfilter, leaky_queue, link, make, static_pad};
use super::frames::{self, Target};
use super::{CallSettings, MediaError, Shared, encoder, exists};
use crate::profile::{Audio, Profile, Video};

/// Payload types the offer uses (dynamic range; what browsers also pick for these codecs).
const H264_PT: i32 = 96;
const VP8_PT: i32 = 97;
const OPUS_PT: i32 = 111;
/// Width of the self-view; the height follows the camera's aspect ratio.
const SELF_VIEW_WIDTH: u32 = 320;
/// Largest RTP packet: 1200 bytes leaves room for TURN, VPN and PPPoE headers in a 1500 MTU.
const RTP_MTU: u32 = 1200;
/// Transport-wide congestion control: the header extension the clinician's side answers with
/// feedback on every packet's arrival time. Same id on both m-lines (BUNDLE).
const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const TWCC_ID: u32 = 1;

/// The pipeline of one call with the elements the [`super::Call`] handle drives.
pub(crate) struct Built {
    pub pipeline: gst::Pipeline,
    pub webrtc: gst::Element,
    /// `volume` element in the microphone chain; its `mute` property is the mic mute.
    pub mic_volume: gst::Element,
    /// The echo-cancellation probe for the speaker chain, when the profile asks for AEC.
    pub echo_probe: Option<gst::Element>,
    /// What the rate controller turns.
    pub knobs: Knobs,
    /// The video's codec tails, one of which the answer picks.
    pub video: VideoSend,
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
    restrict_ice(&webrtc, &settings.local_addresses);
    // The receive jitter buffers' latency; the stats thread then follows the RTT.
    webrtc.set_property("latency", super::quality::START_LATENCY_MS);
    if let Some(stun) = &settings.stun {
        webrtc.set_property("stun-server", stun);
    }
    for turn in &settings.turn {
        if !webrtc.emit_by_name::<bool>("add-turn-server", &[turn]) {
            // The URL is not logged: it carries the TURN credential.
            return Err(build_error("webrtcbin", "a TURN server URL from the config was refused"));
        }
    }
    if settings.relay_only {
        webrtc.set_property_from_str("ice-transport-policy", "relay");
    }
    if let Some((min, max)) = settings.rtp_ports {
        let ice = webrtc.property::<gst::glib::Object>("ice-agent");
        ice.set_property("min-rtp-port", u32::from(min));
        ice.set_property("max-rtp-port", u32::from(max));
    }
    pipeline.add(&webrtc).map_err(|e| build_error("webrtcbin", e))?;

    // The speaker chain is built when the clinician's audio arrives; refuse a bad one now.
    from_description("audio.sink", &profile.audio.sink)?;
    // Audio first: its m-line is then the BUNDLE tag, which carries the one transport. A browser
    // that can decode none of the video codecs rejects only the video m-line and the call keeps
    // its transport (Firefox, rejecting a first m-line, drops BUNDLE and never starts ICE).
    let audio = add_audio(&pipeline, &webrtc, &profile.audio, shared)?;
    let video = settings.cap(&profile.video);
    let (video_send, picture, video_transceiver) = add_video(&pipeline, &webrtc, &video, shared)?;
    let fec = profile.video.fec;
    if fec {
        video_transceiver.set_property_from_str("fec-type", "ulp-red");
    }
    let knobs = Knobs {
        video_encoders: video_send.tails.iter().map(|t| t.encoder.clone()).collect(),
        picture,
        opus: audio.opus,
        video_transceiver,
        camera: (video.width, video.height, video.fps),
        max_video_bps: video.bitrate_kbps.saturating_mul(1000),
        fec,
    };
    Ok(Built {
        pipeline,
        webrtc,
        mic_volume: audio.volume,
        echo_probe: audio.echo_probe,
        knobs,
        video: video_send,
    })
}

/// Limits ICE to the given local addresses (none: every interface). libnice leaves loopback out
/// unless it is named here, which is how tests keep calls on 127.0.0.1.
fn restrict_ice(webrtc: &gst::Element, addresses: &[String]) {
    if addresses.is_empty() {
        return;
    }
    let agent = webrtc.property::<gst::glib::Object>("ice-agent");
    for address in addresses {
        if !agent.emit_by_name::<bool>("add-local-ip-address", &[address]) {
            tracing::warn!(%address, "ICE refused a local address");
        }
    }
}

/// camera → convert/scale/rate → I420 at the profile's size → tee → ladder (scale/rate to the
/// rung the rate controller picks) → encoder → webrtcbin, and tee → small RGB self-view.
/// Returns the video's codec tails, the ladder's picture caps and the video transceiver.
fn add_video(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    video: &Video,
    shared: &Arc<Shared>,
) -> Result<(VideoSend, PictureCaps, Transceiver), MediaError> {
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
    if video.stamp_time {
        stamp_probe(&raw_filter, video)?;
    }

    // Encoder branch. The leaky queue drops old frames rather than letting delay build up
    // when the encoder falls behind; the ladder's scale/rate/caps come after the tee so a step
    // never renegotiates the camera or the self-view. The rate controller sets the bitrate.
    // The ladder feeds one tail per offered codec; only the one the answer picks gets frames.
    let enc_queue = leaky_queue(3)?;
    let (ladder_rate, ladder_scale) = (make("videorate")?, make("videoscale")?);
    ladder_rate.set_property("drop-only", true);
    let picture = PictureCaps::new(video)?;
    let codec_tee = make("tee")?;
    let branch =
        [&enc_queue, &ladder_rate, &picture.rate, &ladder_scale, &picture.size, &codec_tee];
    add(pipeline, &branch)?;
    link(&[&tee, &enc_queue])?;
    link(&branch)?;
    pause_gate(&enc_queue, shared)?;
    let sending = Arc::new(AtomicU8::new(SENDING_NONE));
    let h264 = add_codec_tail(pipeline, &codec_tee, VideoCodec::H264, video, shared, &sending)?;
    let vp8 = if exists("vp8enc") && exists("rtpvp8pay") {
        Some(add_codec_tail(pipeline, &codec_tee, VideoCodec::Vp8, video, shared, &sending)?)
    } else {
        tracing::warn!("vp8enc is missing (gstreamer1.0-plugins-good): offering H.264 only");
        None
    };
    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or_else(|| build_error("webrtcbin", "no sink pad available"))?;
    let transceiver = sink
        .property::<Option<Transceiver>>("transceiver")
        .ok_or_else(|| build_error("webrtcbin", "sink pad without a transceiver"))?;
    transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv);
    // The offer lists every codec of a tail; the tails link once the answer has chosen one.
    let mut offered = h264.offer.clone();
    if let Some(vp8) = &vp8 {
        offered.make_mut().append(vp8.offer.clone());
    }
    transceiver.set_property("codec-preferences", &offered);
    // Retransmission of lost video packets (RTX), asked for by the clinician's NACKs.
    transceiver.set_property("do-nack", true);
    tracing::info!(encoder = %factory(&h264.encoder), vp8 = vp8.is_some(), "video encoders ready");
    let tails = std::iter::once(h264).chain(vp8).collect();
    let send = VideoSend { tails, sink, sending, transceiver: transceiver.clone() };

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
    link(&view)?;
    Ok((send, picture, transceiver))
}

/// No codec tail gets frames yet (before the answer, or the browser rejected video).
const SENDING_NONE: u8 = u8::MAX;

/// One codec's end of the video branch: `convert ! encoder ! (parse) ! payloader ! caps`,
/// fed from the ladder's tee while its codec is the one being sent.
pub(crate) struct CodecTail {
    codec: VideoCodec,
    pub encoder: gst::Element,
    /// The last element; linked to webrtcbin once the answer picks this codec.
    out: gst::Element,
    /// What the offer lists for this codec (with the TWCC extension, as the payloader adds it).
    offer: gst::Caps,
}

/// The video's codec tails and webrtcbin's video sink pad, unlinked until the answer is in.
pub(crate) struct VideoSend {
    pub tails: Vec<CodecTail>,
    sink: gst::Pad,
    /// The index of the codec tail that gets frames ([`SENDING_NONE`]: none).
    sending: Arc<AtomicU8>,
    transceiver: Transceiver,
}

impl VideoSend {
    /// Sends video with `codec` (the answer's choice): its tail gets the frames and is linked
    /// to webrtcbin. `None` (video rejected, or no codec the kiosk can send): nothing is sent.
    pub(crate) fn choose(&self, codec: Option<VideoCodec>) -> Result<(), MediaError> {
        let Some((index, tail)) =
            self.tails.iter().enumerate().find(|(_, t)| Some(t.codec) == codec)
        else {
            return Ok(());
        };
        if self.sink.is_linked() {
            return Ok(()); // one answer per call
        }
        // The pad takes what the payloader makes (its H.264 level, sprop-parameter-sets), not
        // only what was offered.
        let (media, encoding, pt) = rtp_names(tail.codec);
        let caps = rtp_caps(media, encoding, pt, 90_000);
        self.transceiver.set_property("codec-preferences", &caps);
        static_pad(&tail.out, "src")?
            .link(&self.sink)
            .map_err(|e| build_error(&format!("{} → webrtcbin", tail.out.name()), e))?;
        self.sending.store(index as u8, Ordering::SeqCst);
        tracing::info!(?codec, encoder = %factory(&tail.encoder), "sending video");
        Ok(())
    }
}

fn rtp_names(codec: VideoCodec) -> (&'static str, &'static str, i32) {
    match codec {
        VideoCodec::H264 => ("video", "H264", H264_PT),
        VideoCodec::Vp8 => ("video", "VP8", VP8_PT),
    }
}

/// Adds the tail of `codec` after the ladder's `tee`: H.264 with the profile's preferred
/// encoder (hardware first), VP8 in software. Frames pass only while the tail is the one sent.
fn add_codec_tail(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    codec: VideoCodec,
    video: &Video,
    shared: &Arc<Shared>,
    sending: &Arc<AtomicU8>,
) -> Result<CodecTail, MediaError> {
    let index: u8 = match codec {
        VideoCodec::H264 => 0,
        VideoCodec::Vp8 => 1,
    };
    let name = match codec {
        VideoCodec::H264 => encoder::choose_encoder(&video.encoders)?,
        VideoCodec::Vp8 => "vp8enc".to_string(),
    };
    let enc = make(&name)?;
    let setup = encoder::configure(&enc, video, video.bitrate_kbps);
    let converter = make(setup.converter)?;
    let coded_filter = capsfilter(&setup.caps)?;
    let (media, encoding, pt) = rtp_names(codec);
    let mut elements = vec![converter, enc.clone(), coded_filter];
    let pay = match codec {
        VideoCodec::H264 => {
            elements.push(make("h264parse")?);
            // Annex B access units: what the frame protection seals slice by slice.
            let annex_b = gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build();
            elements.push(capsfilter(&annex_b)?);
            let pay = make("rtph264pay")?;
            pay.set_property("config-interval", -1i32); // SPS/PPS before every keyframe
            pay.set_property_from_str("aggregate-mode", "zero-latency");
            pay
        }
        VideoCodec::Vp8 => {
            let pay = make("rtpvp8pay")?;
            pay.set_property_from_str("picture-id-mode", "15-bit");
            pay
        }
    };
    pay.set_property("pt", pt as u32);
    feedback_ready(&pay)?;
    let rtp_filter = capsfilter(&rtp_caps(media, encoding, pt, 90_000))?;
    elements.extend([pay, rtp_filter.clone()]);
    let refs: Vec<&gst::Element> = elements.iter().collect();
    add(pipeline, &refs)?;
    link(&refs)?;
    let branch =
        tee.request_pad_simple("src_%u").ok_or_else(|| build_error("tee", "no src pad"))?;
    branch
        .link(&static_pad(&elements[0], "sink")?)
        .map_err(|e| build_error(&format!("tee → {}", elements[0].name()), e))?;
    let sending = Arc::clone(sending);
    branch.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if sending.load(Ordering::Relaxed) == index {
            gst::PadProbeReturn::Ok
        } else {
            gst::PadProbeReturn::Drop
        }
    });
    count_buffers(&enc, shared, |s| &s.local_video_frames)?;
    hold_until_connected(&rtp_filter, shared, true)?;
    let offer = offer_caps(codec);
    Ok(CodecTail { codec, encoder: enc, out: rtp_filter, offer })
}

/// What the offer lists for `codec`: H.264 constrained baseline in packetization mode 1 (what
/// every browser decodes), VP8; both with the TWCC header extension the payloaders add.
fn offer_caps(codec: VideoCodec) -> gst::Caps {
    let (media, encoding, pt) = rtp_names(codec);
    let mut caps = gst::Caps::builder("application/x-rtp")
        .field("media", media)
        .field("encoding-name", encoding)
        .field("payload", pt)
        .field("clock-rate", 90_000)
        .field(format!("extmap-{TWCC_ID}"), TWCC_URI);
    if codec == VideoCodec::H264 {
        caps = caps
            .field("packetization-mode", "1")
            .field("profile-level-id", "42e01f")
            .field("level-asymmetry-allowed", "1");
    }
    caps.build()
}

fn factory(element: &gst::Element) -> String {
    element.factory().map(|f| f.name().to_string()).unwrap_or_default()
}

/// While the rate controller has paused the video (the link cannot carry it), camera frames stop
/// before the encoder; the clinician keeps the last picture and hears the patient.
fn pause_gate(queue: &gst::Element, shared: &Arc<Shared>) -> Result<(), MediaError> {
    let shared = Arc::clone(shared);
    static_pad(queue, "sink")?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if shared.video_paused.load(Ordering::Relaxed) {
            gst::PadProbeReturn::Drop
        } else {
            gst::PadProbeReturn::Ok
        }
    });
    Ok(())
}

/// Drops RTP until the connection is up rather than letting webrtcbin hold it: the camera runs
/// while the patient waits, and a backlog released at once would be a burst of stale media that a
/// slow link turns into loss. With `keyframe`, the first packet through asks the encoder for a
/// keyframe, so the clinician's first picture needs no keyframe request round trip.
fn hold_until_connected(
    filter: &gst::Element,
    shared: &Arc<Shared>,
    keyframe: bool,
) -> Result<(), MediaError> {
    let shared = Arc::clone(shared);
    let asked = AtomicBool::new(!keyframe);
    static_pad(filter, "src")?.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        if !shared.is_connected() {
            return gst::PadProbeReturn::Drop;
        }
        if !asked.swap(true, Ordering::Relaxed) {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
            pad.send_event(event);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Sets a payloader up for a poor link: small packets, and the transport-wide sequence number
/// that congestion control's feedback refers to.
fn feedback_ready(pay: &gst::Element) -> Result<(), MediaError> {
    pay.set_property("mtu", RTP_MTU);
    let twcc = gst_rtp::RTPHeaderExtension::create_from_uri(TWCC_URI)
        .ok_or_else(|| build_error("rtphdrexttwcc", "not installed (gstreamer1.0-plugins-good)"))?;
    twcc.set_id(TWCC_ID);
    pay.emit_by_name::<()>("add-extension", &[&twcc]);
    Ok(())
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

/// The microphone chain's elements that outlive building it.
struct AudioOut {
    /// `volume`: its `mute` property is the mic mute.
    volume: gst::Element,
    opus: gst::Element,
    echo_probe: Option<gst::Element>,
}

/// Test and bench only: the capture time drawn into every picture (see [`super::stamp`]).
fn stamp_probe(filter: &gst::Element, video: &Video) -> Result<(), MediaError> {
    let info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, video.width, video.height)
            .build()
            .map_err(|e| build_error("stamp", e))?;
    let (stride, width) = (info.stride()[0] as usize, video.width as usize);
    static_pad(filter, "src")?.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut()
            && let Ok(mut map) = buffer.make_mut().map_writable()
        {
            super::stamp::write_luma(&mut map, stride, width, super::stamp::now_ms());
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// mic → convert/resample → (echo cancellation) → volume (mute) → Opus → webrtcbin.
/// Opus is set for speech: in-band FEC (the rate controller sets how much from the loss the
/// clinician reports), no DTX (silence still proves the stream alive), bitrate from the
/// controller. The offer says `useinbandfec=1` so the browser sends FEC too.
fn add_audio(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    audio: &Audio,
    shared: &Arc<Shared>,
) -> Result<AudioOut, MediaError> {
    let mic = from_description("audio.source", &audio.source)?;
    let volume = make("volume")?;
    let enc = make("opusenc")?;
    enc.set_property_from_str("audio-type", "voice");
    enc.set_property("inband-fec", true);
    enc.set_property("dtx", false);
    enc.set_property("perfect-timestamp", true);
    let queue = make("queue")?;
    let pay = make("rtpopuspay")?;
    pay.set_property("pt", OPUS_PT as u32);
    feedback_ready(&pay)?;
    let opus_caps = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", OPUS_PT)
        .field("clock-rate", 48_000)
        .field("useinbandfec", "1")
        .build();
    let rtp_filter = capsfilter(&opus_caps)?;

    let mut chain = vec![mic];
    let mut probe = None;
    if audio.echo_cancel {
        // The probe goes into the speaker chain once the clinician's audio arrives, but
        // webrtcdsp looks for it when it starts: it joins the pipeline now.
        let echo_probe = super::echo::probe()?;
        pipeline.add(&echo_probe).map_err(|e| build_error("webrtcechoprobe", e))?;
        chain.extend(super::echo::capture_chain(&audio.processing, &echo_probe)?);
        probe = Some(echo_probe);
    } else {
        chain.extend([make("audioconvert")?, make("audioresample")?]);
    }
    count_buffers(&enc, shared, |s| &s.local_audio_buffers)?;
    chain.extend([volume.clone(), queue, enc.clone(), pay, rtp_filter.clone()]);
    let refs: Vec<&gst::Element> = chain.iter().collect();
    add(pipeline, &refs)?;
    link(&refs)?;
    hold_until_connected(&rtp_filter, shared, false)?;
    link_to_webrtc(&rtp_filter, webrtc)?;
    Ok(AudioOut { volume, opus: enc, echo_probe: probe })
}

type Transceiver = gst_webrtc::WebRTCRTPTransceiver;

/// Links `from` to a new webrtcbin sink pad and makes its transceiver send and receive.
fn link_to_webrtc(from: &gst::Element, webrtc: &gst::Element) -> Result<Transceiver, MediaError> {
    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or_else(|| build_error("webrtcbin", "no sink pad available"))?;
    static_pad(from, "src")?
        .link(&sink)
        .map_err(|e| build_error(&format!("{} → webrtcbin", from.name()), e))?;
    // Pads made this way get a send-receive transceiver already; say so rather than rely on it.
    let transceiver = sink
        .property::<Option<Transceiver>>("transceiver")
        .ok_or_else(|| build_error("webrtcbin", "sink pad without a transceiver"))?;
    transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv);
    Ok(transceiver)
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

/// A bin from a profile launch description, refused if it contains an element that could write
/// media anywhere (see [`super::writers`]; the profile check at load refuses the same).
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
    super::writers::check_bin(field, &bin).map_err(refuse)?;
    Ok(bin.upcast())
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
        from_description("video.source", "videotestsrc is-live=true").unwrap();
        for d in ["fakesink sync=false", "autoaudiosink"] {
            from_description("audio.sink", d).unwrap();
        }
    }

    #[test]
    fn unparsable_description_names_the_profile_field() {
        gst::init().unwrap();
        let err = from_description("video.source", "no-such-element-xyz").unwrap_err().to_string();
        assert!(err.contains("video.source") && err.contains("no-such-element-xyz"), "{err}");
    }
}

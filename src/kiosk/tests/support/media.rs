//! The clinician's side for media tests: an answering webrtcbin that sends test video and audio
//! and decodes what the kiosk sends, a recording screen, and the loop that passes SDP and ICE
//! between the two. Shared by `media_loopback` and `media_settings`.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use telekiosk::media::{
    Call, Frame, FrameKeys, FrameSink, Ice, MediaEvent, Protection, VoiceLoss, protect,
};
use telekiosk::profile::Profile;
use tokio::sync::mpsc::UnboundedReceiver;

pub const DEADLINE: Duration = Duration::from_secs(20);
const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

pub fn dev_profile() -> Profile {
    let path = format!("{}/../../hw/profiles/dev.toml", env!("CARGO_MANIFEST_DIR"));
    Profile::load(Path::new(&path)).unwrap()
}

/// Records what the kiosk would show: counts, the first remote frame's time, the last self-view.
#[derive(Default)]
pub struct Screen {
    pub first_remote: Mutex<Option<Instant>>,
    pub last_local: Mutex<Option<Frame>>,
    pub last_remote_size: Mutex<(u32, u32)>,
}

impl FrameSink for Screen {
    fn remote_frame(&self, frame: Frame) {
        assert_eq!(frame.rgb.len(), (frame.width * frame.height * 3) as usize);
        self.first_remote.lock().unwrap().get_or_insert_with(Instant::now);
        *self.last_remote_size.lock().unwrap() = (frame.width, frame.height);
    }
    fn local_frame(&self, frame: Frame) {
        assert_eq!(frame.rgb.len(), (frame.width * frame.height * 3) as usize);
        *self.last_local.lock().unwrap() = Some(frame);
    }
}

pub fn mean(rgb: &[u8]) -> u64 {
    rgb.iter().map(|&b| b as u64).sum::<u64>() / rgb.len().max(1) as u64
}

/// How the test clinician behaves.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Use 127.0.0.1 only for ICE (link-emulator tests: every packet goes through the relay).
    pub loopback_only: bool,
    /// What the peer sends: width, height, fps, video kbit/s.
    pub video: (u32, u32, u32, u32),
    /// Opus bit/s the peer sends.
    pub opus_bps: i32,
    /// Receive jitter-buffer latency, ms (a browser's grows with the RTT).
    pub latency_ms: u32,
    /// The video codec the peer can do: `H264`, or `VP8` (Firefox without OpenH264).
    pub video_codec: &'static str,
    /// Rejects the kiosk's video m-line as Firefox does when it can decode none of its codecs:
    /// sends no video and answers `m=video 0` with no transport attributes, out of the BUNDLE.
    pub reject_video: bool,
    /// Opens the kiosk's frames with a key that is not the visit's (as a man in the middle
    /// would have to).
    pub wrong_key: bool,
}

/// The end-to-end frame keys of a test visit, as the kiosk holds them (the key agreement that
/// makes them is tested on its own; here the media is).
pub fn kiosk_keys() -> FrameKeys {
    FrameKeys { send_key: [1; 32], send_kid: 1, receive_key: [2; 32], receive_kid: 2 }
}

/// The same keys as the clinician holds them (directions swapped).
pub fn clinician_keys() -> FrameKeys {
    FrameKeys { send_key: [2; 32], send_kid: 2, receive_key: [1; 32], receive_kid: 1 }
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            loopback_only: false,
            video: (640, 360, 30, 600),
            opus_bps: 64_000,
            latency_ms: 200,
            video_codec: "H264",
            reject_video: false,
            wrong_key: false,
        }
    }
}

/// The clinician's side: a webrtcbin that answers the kiosk's offer, sends its own test video
/// and audio back, and decodes the kiosk's video into small RGB frames.
pub struct Answerer {
    pub pipeline: gst::Pipeline,
    pub webrtc: gst::Element,
    pub ice: mpsc::Receiver<Ice>,
    pub decoded_frames: Arc<AtomicU64>,
    /// Width and height of the kiosk's video as the peer decodes it.
    pub kiosk_video_size: Arc<Mutex<(i32, i32)>>,
    /// Mean RGB value of the last decoded kiosk frame (black ≈ 0, SMPTE bars ≈ 100+).
    pub last_mean: Arc<AtomicU64>,
    /// When each kiosk frame was decoded.
    pub frame_times: Arc<Mutex<Vec<Instant>>>,
    /// Each kiosk frame that reached the video decoder: when, and its timestamp (ns).
    pub decoder_in: Arc<Mutex<Vec<(Instant, u64)>>>,
    /// The kiosk's voice frames as they reached the peer's decoder, and those lost for good.
    pub voice: Arc<Mutex<VoiceLoss>>,
    pub options: PeerOptions,
    /// What the clinician's frame protection sealed, opened and refused.
    pub protection: Arc<Protection>,
    /// The kiosk's H.264 as a relay that ended DTLS-SRTP would see it (RTP payloads), and as the
    /// decoder gets it (access units, opened).
    pub capture: Arc<Mutex<Capture>>,
}

/// What [`Answerer::capture`] keeps (the first few hundred packets and frames).
#[derive(Default)]
pub struct Capture {
    pub rtp_payloads: Vec<Vec<u8>>,
    pub opened_frames: Vec<Vec<u8>>,
}

/// Keeps the H.264 depayloader's input (RTP) and, after the frame protection, its output.
fn capture_h264(pipeline: &gst::Pipeline, capture: &Arc<Mutex<Capture>>) {
    let capture = Arc::clone(capture);
    pipeline.connect_deep_element_added(move |_, _, element| {
        if element.factory().is_none_or(|f| f.name() != "rtph264depay") {
            return;
        }
        let keep = Arc::clone(&capture);
        element.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && let Ok(rtp) = gst_rtp::RTPBuffer::from_buffer_readable(b)
                && let Ok(payload) = rtp.payload()
            {
                let mut c = keep.lock().unwrap();
                if c.rtp_payloads.len() < 2000 {
                    c.rtp_payloads.push(payload.to_vec());
                }
            }
            gst::PadProbeReturn::Ok
        });
        let keep = Arc::clone(&capture);
        element.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && let Ok(map) = b.map_readable()
            {
                let mut c = keep.lock().unwrap();
                if c.opened_frames.len() < 300 {
                    c.opened_frames.push(map.to_vec());
                }
            }
            gst::PadProbeReturn::Ok
        });
    });
}

impl Answerer {
    pub fn start() -> Self {
        Self::start_with(PeerOptions::default())
    }

    pub fn start_with(options: PeerOptions) -> Self {
        telekiosk::media::init().unwrap();
        let pipeline = gst::Pipeline::with_name("clinician");
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", options.latency_ms)
            .build()
            .unwrap();
        // Ask for retransmission of what is lost, as browsers do (webrtcbin 1.22 leaves an
        // answerer's jitter buffers without it).
        let rtpbin = webrtc.downcast_ref::<gst::Bin>().unwrap().by_name("rtpbin").unwrap();
        rtpbin.connect("new-jitterbuffer", false, |values| {
            let jitterbuffer = values[1].get::<gst::Element>().unwrap();
            jitterbuffer.set_property("do-retransmission", true);
            None
        });
        if options.loopback_only {
            let agent = webrtc.property::<gst::glib::Object>("ice-agent");
            assert!(agent.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]));
        }
        pipeline.add(&webrtc).unwrap();
        // The clinician protects its frames exactly as the kiosk does.
        let protection = Protection::new();
        let mut keys = clinician_keys();
        if options.wrong_key {
            keys.receive_key = [9; 32];
        }
        protection.set_keys(&keys).unwrap();
        protect::attach(pipeline.upcast_ref(), &protection);
        // After the protection's own probes, so the output kept is what it opened.
        let capture = Arc::new(Mutex::new(Capture::default()));
        capture_h264(&pipeline, &capture);
        let (tx, ice) = mpsc::channel();
        let tx = Mutex::new(tx);
        webrtc.connect("on-ice-candidate", false, move |v| {
            let ice = Ice { mline: v[1].get().unwrap(), candidate: v[2].get().unwrap() };
            let _ = tx.lock().unwrap().send(ice);
            None
        });
        let decoded_frames = Arc::new(AtomicU64::new(0));
        let last_mean = Arc::new(AtomicU64::new(0));
        let kiosk_video_size = Arc::new(Mutex::new((0, 0)));
        let (frames, level, weak) =
            (decoded_frames.clone(), last_mean.clone(), pipeline.downgrade());
        let size = kiosk_video_size.clone();
        let frame_times = Arc::new(Mutex::new(Vec::new()));
        let voice = Arc::new(Mutex::new(VoiceLoss::default()));
        let (times, counted) = (frame_times.clone(), voice.clone());
        let decoder_in = Arc::new(Mutex::new(Vec::new()));
        let arrivals = decoder_in.clone();
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return; // the sink pads requested in `send`
            }
            let pipeline = weak.upgrade().unwrap();
            let decodebin = gst::ElementFactory::make("decodebin").build().unwrap();
            let counted = counted.clone();
            let arrivals = arrivals.clone();
            let bin = decodebin.downcast_ref::<gst::Bin>().unwrap();
            bin.connect_deep_element_added(move |_, _, e| {
                if e.is::<gst_video::VideoDecoder>() {
                    let arrivals = arrivals.clone();
                    let sink = e.static_pad("sink").unwrap();
                    sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                        if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                            && let Some(pts) = b.pts()
                        {
                            arrivals.lock().unwrap().push((Instant::now(), pts.nseconds()));
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                // As a browser does, and as the kiosk's own receiver does: a frame lost for
                // good asks for a keyframe (PLI) while decoding goes on.
                telekiosk::media::recover_from_loss(e);
                if e.factory().is_some_and(|f| f.name() == "opusdec") {
                    // As a browser does: FEC from the next packet, else concealment.
                    e.set_property("plc", true);
                    e.set_property("use-inband-fec", true);
                    let counted = counted.clone();
                    let sink = e.static_pad("sink").unwrap();
                    let kinds = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
                    sink.add_probe(kinds, move |_, info| {
                        let mut voice = counted.lock().unwrap();
                        match &info.data {
                            Some(gst::PadProbeData::Buffer(_)) => voice.frame(false),
                            Some(gst::PadProbeData::Event(e)) => {
                                if let gst::EventView::Gap(gap) = e.view() {
                                    let ms = gap.get().1.map_or(20, |d| d.mseconds());
                                    (0..(ms + 10) / 20).for_each(|_| voice.frame(true));
                                }
                            }
                            _ => {}
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
            });
            let (frames, level, weak) = (frames.clone(), level.clone(), weak.clone());
            let (size, times) = (size.clone(), times.clone());
            decodebin.connect_pad_added(move |_, pad| {
                let pipeline = weak.upgrade().unwrap();
                let caps = pad.current_caps().unwrap();
                let s = caps.structure(0).unwrap();
                let video = s.name().starts_with("video/");
                if video {
                    let dims = (s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap());
                    *size.lock().unwrap() = dims;
                }
                let out = if video {
                    decoded_video_sink(&pipeline, frames.clone(), level.clone(), times.clone())
                } else {
                    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
                    pipeline.add(&sink).unwrap();
                    sink.sync_state_with_parent().unwrap();
                    sink
                };
                pad.link(&out.static_pad("sink").unwrap()).unwrap();
            });
            pipeline.add(&decodebin).unwrap();
            decodebin.sync_state_with_parent().unwrap();
            pad.link(&decodebin.static_pad("sink").unwrap()).unwrap();
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        Self {
            pipeline,
            webrtc,
            ice,
            decoded_frames,
            kiosk_video_size,
            last_mean,
            frame_times,
            decoder_in,
            voice,
            options,
            protection,
            capture,
        }
    }

    /// The kiosk's voice as it reached this peer so far.
    pub fn voice(&self) -> VoiceLoss {
        self.voice.lock().unwrap().clone()
    }

    /// Takes the kiosk's offer and returns the answer, set as local description.
    ///
    /// webrtcbin 1.22 answers recvonly for m-lines it has no sending pad for, and pairs pads
    /// linked before the offer only if their caps match exactly (H.264 level included). So each
    /// offered m-line is wired by hand, as a browser's `addTrack` would: request the sink pad of
    /// that m-line's transceiver, link a source to it, make the transceiver sendrecv.
    pub fn answer(&self, offer: &str) -> String {
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).unwrap();
        let kinds: Vec<String> =
            sdp.medias().map(|m| m.media().unwrap_or_default().to_string()).collect();
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, sdp);
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>("set-remote-description", &[&offer, &promise]);
        promise.wait();
        for (mline, kind) in kinds.iter().enumerate() {
            if !(self.options.reject_video && kind == "video") {
                self.send(mline, kind);
            }
        }
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let reply = promise.get_reply().expect("create-answer replied");
        let answer = reply.get::<gst_webrtc::WebRTCSessionDescription>("answer").unwrap();
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>("set-local-description", &[&answer, &promise]);
        promise.wait();
        let text = answer.sdp().as_text().unwrap();
        if self.options.reject_video { reject_video(&text) } else { text }
    }

    /// Links a test source for m-line `mline` (`video` or `audio`) to its transceiver.
    pub fn send(&self, mline: usize, kind: &str) {
        let (w, h, fps, kbps) = self.options.video;
        let opus = self.options.opus_bps;
        let description = match kind {
            "video" if self.options.video_codec == "VP8" => format!(
                "videotestsrc is-live=true pattern=ball \
                 ! video/x-raw,width={w},height={h},framerate={fps}/1 ! videoconvert \
                 ! vp8enc deadline=1 cpu-used=8 lag-in-frames=0 target-bitrate={}000 \
                 ! rtpvp8pay pt=97 mtu=1200 \
                 ! capsfilter caps=application/x-rtp,media=video,encoding-name=VP8,payload=97",
                kbps
            ),
            "video" => format!(
                "videotestsrc is-live=true pattern=ball \
                 ! video/x-raw,width={w},height={h},framerate={fps}/1 ! videoconvert \
                 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} \
                   bitrate={kbps} vbv-buf-capacity=200 \
                 ! video/x-h264,profile=constrained-baseline ! h264parse \
                 ! rtph264pay config-interval=-1 pt=96 mtu=1200 \
                 ! capsfilter caps=application/x-rtp,media=video,encoding-name=H264,payload=96"
            ),
            "audio" => format!(
                "audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample \
                 ! opusenc bitrate={opus} inband-fec=true packet-loss-percentage=10 \
                 ! rtpopuspay pt=111 \
                 ! capsfilter caps=application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
            ),
            other => panic!("unexpected m-line kind {other}"),
        };
        let source = gst::parse::bin_from_description(&description, true).unwrap();
        self.pipeline.add(&source).unwrap();
        let pad = self.webrtc.request_pad_simple(&format!("sink_{mline}")).unwrap();
        let transceiver = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        assert_eq!(transceiver.mlineindex() as usize, mline, "pad bound to the wrong m-line");
        transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv);
        // Ask for retransmissions of lost video, as browsers do.
        transceiver.set_property("do-nack", kind == "video");
        // And answer with transport-wide congestion control feedback, as browsers do.
        let (encoding, pt, rate) = match kind {
            "video" if self.options.video_codec == "VP8" => ("VP8", 97, 90_000),
            "video" => ("H264", 96, 90_000),
            _ => ("OPUS", 111, 48_000),
        };
        let prefs = gst::Caps::builder("application/x-rtp")
            .field("media", kind)
            .field("encoding-name", encoding)
            .field("payload", pt)
            .field("clock-rate", rate)
            .field("extmap-1", TWCC_URI)
            .build();
        transceiver.set_property("codec-preferences", &prefs);
        source.static_pad("src").unwrap().link(&pad).unwrap();
        source.sync_state_with_parent().unwrap();
    }

    pub fn add_ice(&self, ice: &Ice) {
        self.webrtc.emit_by_name::<()>("add-ice-candidate", &[&ice.mline, &ice.candidate]);
    }
}

/// The answer as Firefox shapes it when it rejects video: port 0, no ICE, DTLS or mid lines in
/// that section, and that section left out of the BUNDLE group.
fn reject_video(answer: &str) -> String {
    let mut out = String::new();
    let mut in_video = false;
    for line in answer.lines() {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        }
        let line = if in_video && line.starts_with("m=video") {
            let mut parts: Vec<&str> = line.split(' ').collect();
            parts[1] = "0";
            parts.join(" ")
        } else if line.starts_with("a=group:BUNDLE") {
            line.split(' ').filter(|mid| !mid.starts_with("video")).collect::<Vec<_>>().join(" ")
        } else {
            line.to_string()
        };
        let transport = ["a=ice-", "a=setup", "a=fingerprint", "a=mid", "a=candidate", "a=ssrc"];
        if in_video && transport.iter().any(|t| line.starts_with(t)) {
            continue;
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

impl Drop for Answerer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// decoded video → 160x90 RGB → counts frames and keeps the mean value of the last one. Frames
/// are taken when they are due (`sync=true`), as a browser shows them: a frame waiting in the
/// jitter buffer for a retransmission is not a freeze if it is still shown on time.
pub fn decoded_video_sink(
    pipeline: &gst::Pipeline,
    frames: Arc<AtomicU64>,
    level: Arc<AtomicU64>,
    times: Arc<Mutex<Vec<Instant>>>,
) -> gst::Element {
    let bin = gst::parse::bin_from_description(
        "queue ! videoconvert ! videoscale ! video/x-raw,format=RGB,width=160,height=90 \
         ! appsink name=seen sync=true max-buffers=1 drop=true",
        true,
    )
    .unwrap();
    let appsink = bin.by_name("seen").unwrap().downcast::<gst_app::AppSink>().unwrap();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                level.store(mean(&map), Ordering::SeqCst);
                frames.fetch_add(1, Ordering::SeqCst);
                times.lock().unwrap().push(Instant::now());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add(&bin).unwrap();
    bin.sync_state_with_parent().unwrap();
    bin.upcast()
}

/// Passes events and candidates between the two sides until `done` holds or the deadline.
pub struct Exchange {
    pub events: UnboundedReceiver<MediaEvent>,
    pub started: Instant,
    pub offer_at: Option<Duration>,
    pub connected_at: Option<Duration>,
    pub answer: Option<String>,
    /// The kiosk's local candidates, as sent.
    pub candidates: Vec<String>,
}

impl Exchange {
    /// An exchange of a call's events starting now.
    pub fn new(events: UnboundedReceiver<MediaEvent>) -> Self {
        let started = Instant::now();
        Self {
            events,
            started,
            offer_at: None,
            connected_at: None,
            answer: None,
            candidates: vec![],
        }
    }

    pub fn pump_until(
        &mut self,
        call: &Call,
        peer: &Answerer,
        mut done: impl FnMut(&Call) -> bool,
    ) {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            while let Ok(event) = self.events.try_recv() {
                match event {
                    MediaEvent::LocalOffer { sdp } => {
                        self.offer_at = Some(self.started.elapsed());
                        if std::env::var_os("SHOW_SDP").is_some() {
                            eprintln!("OFFER:\n{sdp}");
                        }
                        let answer = peer.answer(&sdp);
                        if std::env::var_os("SHOW_SDP").is_some() {
                            eprintln!("ANSWER:\n{answer}");
                        }
                        call.set_frame_keys(&kiosk_keys()).unwrap();
                        call.set_remote_answer(&answer).unwrap();
                        self.answer = Some(answer);
                    }
                    MediaEvent::LocalIce(ice) => {
                        assert!(self.offer_at.is_some(), "candidate before the offer");
                        self.candidates.push(ice.candidate.clone());
                        peer.add_ice(&ice);
                    }
                    MediaEvent::Connected => self.connected_at = Some(self.started.elapsed()),
                    MediaEvent::VideoPaused(paused) => eprintln!("video paused: {paused}"),
                    MediaEvent::Failed { reason } => panic!("call failed: {reason}"),
                }
            }
            while let Ok(ice) = peer.ice.try_recv() {
                call.add_remote_ice(&ice).unwrap();
            }
            if done(call) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

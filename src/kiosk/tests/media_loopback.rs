//! The kiosk's `Call` against a second, answering webrtcbin in the same process: SDP and ICE are
//! exchanged directly (no network but loopback), both sides send H.264 + Opus and decode what the
//! other sends. Deadlines bound every wait; the figures printed are measurements, not assertions.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use telekiosk::media::{Call, Frame, FrameSink, Ice, MediaError, MediaEvent};
use telekiosk::profile::Profile;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const DEADLINE: Duration = Duration::from_secs(20);

fn dev_profile() -> Profile {
    let path = format!("{}/../../hw/profiles/dev.toml", env!("CARGO_MANIFEST_DIR"));
    Profile::load(Path::new(&path)).unwrap()
}

/// Records what the kiosk would show: counts, the first remote frame's time, the last self-view.
#[derive(Default)]
struct Screen {
    first_remote: Mutex<Option<Instant>>,
    last_local: Mutex<Option<Frame>>,
    last_remote_size: Mutex<(u32, u32)>,
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

fn mean(rgb: &[u8]) -> u64 {
    rgb.iter().map(|&b| b as u64).sum::<u64>() / rgb.len().max(1) as u64
}

/// The clinician's side: a webrtcbin that answers the kiosk's offer, sends its own test video
/// and audio back, and decodes the kiosk's video into small RGB frames.
struct Answerer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    ice: mpsc::Receiver<Ice>,
    decoded_frames: Arc<AtomicU64>,
    /// Mean RGB value of the last decoded kiosk frame (black ≈ 0, SMPTE bars ≈ 100+).
    last_mean: Arc<AtomicU64>,
}

impl Answerer {
    fn start() -> Self {
        telekiosk::media::init().unwrap();
        let pipeline = gst::Pipeline::with_name("clinician");
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .unwrap();
        pipeline.add(&webrtc).unwrap();
        let (tx, ice) = mpsc::channel();
        let tx = Mutex::new(tx);
        webrtc.connect("on-ice-candidate", false, move |v| {
            let ice = Ice { mline: v[1].get().unwrap(), candidate: v[2].get().unwrap() };
            let _ = tx.lock().unwrap().send(ice);
            None
        });
        let decoded_frames = Arc::new(AtomicU64::new(0));
        let last_mean = Arc::new(AtomicU64::new(0));
        let (frames, level, weak) =
            (decoded_frames.clone(), last_mean.clone(), pipeline.downgrade());
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return; // the sink pads requested in `send`
            }
            let pipeline = weak.upgrade().unwrap();
            let decodebin = gst::ElementFactory::make("decodebin").build().unwrap();
            let (frames, level, weak) = (frames.clone(), level.clone(), weak.clone());
            decodebin.connect_pad_added(move |_, pad| {
                let pipeline = weak.upgrade().unwrap();
                let caps = pad.current_caps().unwrap();
                let video = caps.structure(0).unwrap().name().starts_with("video/");
                let out = if video {
                    decoded_video_sink(&pipeline, frames.clone(), level.clone())
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
        Self { pipeline, webrtc, ice, decoded_frames, last_mean }
    }

    /// Takes the kiosk's offer and returns the answer, set as local description.
    ///
    /// webrtcbin 1.22 answers recvonly for m-lines it has no sending pad for, and pairs pads
    /// linked before the offer only if their caps match exactly (H.264 level included). So each
    /// offered m-line is wired by hand, as a browser's `addTrack` would: request the sink pad of
    /// that m-line's transceiver, link a source to it, make the transceiver sendrecv.
    fn answer(&self, offer: &str) -> String {
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).unwrap();
        let kinds: Vec<String> =
            sdp.medias().map(|m| m.media().unwrap_or_default().to_string()).collect();
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, sdp);
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>("set-remote-description", &[&offer, &promise]);
        promise.wait();
        for (mline, kind) in kinds.iter().enumerate() {
            self.send(mline, kind);
        }
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let reply = promise.get_reply().expect("create-answer replied");
        let answer = reply.get::<gst_webrtc::WebRTCSessionDescription>("answer").unwrap();
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>("set-local-description", &[&answer, &promise]);
        promise.wait();
        answer.sdp().as_text().unwrap()
    }

    /// Links a test source for m-line `mline` (`video` or `audio`) to its transceiver.
    fn send(&self, mline: usize, kind: &str) {
        let description = match kind {
            "video" => {
                "videotestsrc is-live=true pattern=ball \
                 ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert \
                 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=600 \
                 ! video/x-h264,profile=constrained-baseline ! h264parse \
                 ! rtph264pay config-interval=-1 pt=96 \
                 ! capsfilter caps=application/x-rtp,media=video,encoding-name=H264,payload=96"
            }
            "audio" => {
                "audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample ! opusenc \
                 ! rtpopuspay pt=111 \
                 ! capsfilter caps=application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
            }
            other => panic!("unexpected m-line kind {other}"),
        };
        let source = gst::parse::bin_from_description(description, true).unwrap();
        self.pipeline.add(&source).unwrap();
        let pad = self.webrtc.request_pad_simple(&format!("sink_{mline}")).unwrap();
        let transceiver = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        assert_eq!(transceiver.mlineindex() as usize, mline, "pad bound to the wrong m-line");
        transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv);
        source.static_pad("src").unwrap().link(&pad).unwrap();
        source.sync_state_with_parent().unwrap();
    }

    fn add_ice(&self, ice: &Ice) {
        self.webrtc.emit_by_name::<()>("add-ice-candidate", &[&ice.mline, &ice.candidate]);
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// decoded video → 160x90 RGB → counts frames and keeps the mean value of the last one.
fn decoded_video_sink(
    pipeline: &gst::Pipeline,
    frames: Arc<AtomicU64>,
    level: Arc<AtomicU64>,
) -> gst::Element {
    let bin = gst::parse::bin_from_description(
        "queue ! videoconvert ! videoscale ! video/x-raw,format=RGB,width=160,height=90 \
         ! appsink name=seen sync=false max-buffers=1 drop=true",
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
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add(&bin).unwrap();
    bin.sync_state_with_parent().unwrap();
    bin.upcast()
}

/// Passes events and candidates between the two sides until `done` holds or the deadline.
struct Exchange {
    events: UnboundedReceiver<MediaEvent>,
    started: Instant,
    offer_at: Option<Duration>,
    connected_at: Option<Duration>,
    answer: Option<String>,
}

impl Exchange {
    fn pump_until(&mut self, call: &Call, peer: &Answerer, mut done: impl FnMut(&Call) -> bool) {
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
                        call.set_remote_answer(&answer).unwrap();
                        self.answer = Some(answer);
                    }
                    MediaEvent::LocalIce(ice) => {
                        assert!(self.offer_at.is_some(), "candidate before the offer");
                        peer.add_ice(&ice);
                    }
                    MediaEvent::Connected => self.connected_at = Some(self.started.elapsed()),
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

#[test]
fn kiosk_call_connects_to_an_answering_peer_and_media_flows_both_ways() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    telekiosk::media::init().unwrap();
    let peer = Answerer::start();
    let screen = Arc::new(Screen::default());
    let (tx, events) = unbounded_channel();
    let started = Instant::now();
    let call = Call::start(&dev_profile(), tx, screen.clone()).unwrap();
    let start_returned = started.elapsed();
    let mut x = Exchange { events, started, offer_at: None, connected_at: None, answer: None };

    x.pump_until(&call, &peer, |call| {
        let s = call.stats();
        s.remote_video_frames > 10
            && s.remote_audio_buffers > 0
            && s.local_video_frames > 0
            && peer.decoded_frames.load(Ordering::SeqCst) > 10
    });
    let stats = call.stats();
    let answer = x.answer.clone().expect("the kiosk made an offer");
    assert_eq!(answer.matches("a=sendrecv").count(), 2, "answer is not sendrecv:\n{answer}");
    assert!(x.connected_at.is_some(), "never Connected; stats {stats:?}");
    assert!(stats.remote_video_frames > 10, "{stats:?}");
    assert!(stats.remote_audio_buffers > 0, "{stats:?}");
    assert!(stats.local_video_frames > 0, "{stats:?}");
    assert!(peer.decoded_frames.load(Ordering::SeqCst) > 10, "the peer decoded too little");
    assert!(screen.last_local.lock().unwrap().as_ref().is_some_and(|f| f.width == 320));
    assert_eq!(*screen.last_remote_size.lock().unwrap(), (640, 360));

    let first_remote = screen.first_remote.lock().unwrap().unwrap() - started;
    eprintln!(
        "MEASURED start() returned {start_returned:?}; LocalOffer {:?}; Connected {:?}; \
         first remote frame {first_remote:?}; total {:?} for {stats:?}",
        x.offer_at.unwrap(),
        x.connected_at.unwrap(),
        started.elapsed(),
    );

    // Camera off: the self-view and the peer both see black, and frames keep coming.
    call.set_camera_enabled(false);
    let before = call.stats().local_video_frames;
    x.pump_until(&call, &peer, |_| {
        peer.last_mean.load(Ordering::SeqCst) < 8
            && screen.last_local.lock().unwrap().as_ref().is_some_and(|f| mean(&f.rgb) < 8)
    });
    assert!(peer.last_mean.load(Ordering::SeqCst) < 8, "the peer does not see black");
    assert!(call.stats().local_video_frames > before, "camera off must not freeze the stream");
    call.set_camera_enabled(true);
    x.pump_until(&call, &peer, |_| peer.last_mean.load(Ordering::SeqCst) > 40);
    assert!(peer.last_mean.load(Ordering::SeqCst) > 40, "the picture did not come back");

    call.set_mic_muted(true);
    call.stop();
}

#[test]
fn echo_cancelling_profile_plays_the_clinician_through_the_echo_probe() {
    let mut profile = dev_profile();
    profile.audio.echo_cancel = true;
    let peer = Answerer::start();
    let (tx, events) = unbounded_channel();
    let call = Call::start(&profile, tx, Arc::new(Screen::default())).unwrap();
    let mut x = Exchange {
        events,
        started: Instant::now(),
        offer_at: None,
        connected_at: None,
        answer: None,
    };
    x.pump_until(&call, &peer, |call| call.stats().remote_audio_buffers > 20);
    assert!(x.connected_at.is_some(), "never Connected");
    assert!(call.stats().remote_audio_buffers > 20, "{:?}", call.stats());
}

#[test]
fn garbage_answer_is_an_error_not_a_panic() {
    let (tx, mut events) = unbounded_channel();
    let call = Call::start(&dev_profile(), tx, Arc::new(Screen::default())).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !matches!(events.try_recv(), Ok(MediaEvent::LocalOffer { .. })) {
        assert!(Instant::now() < deadline, "no offer");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(call.set_remote_answer("garbage"), Err(MediaError::Answer { .. })));
    assert!(matches!(call.set_remote_answer(""), Err(MediaError::Answer { .. })));
    // Parses as SDP, but webrtcbin itself must refuse it (no ICE credentials, no fingerprint).
    let hollow = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
                  m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";
    let err = call.set_remote_answer(hollow).expect_err("webrtcbin accepted a hollow answer");
    eprintln!("hollow answer refused: {err}");
    let bad = Ice { mline: 0, candidate: "not a candidate".into() };
    assert!(call.add_remote_ice(&bad).is_err());
    let mdns = Ice {
        mline: 0,
        candidate: "candidate:1 1 udp 2122260223 0c1a2b3c.local 54321 typ host".into(),
    };
    assert!(call.add_remote_ice(&mdns).is_ok());
}

#[test]
fn call_handle_can_move_between_threads_and_tasks() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Call>();
}

#[test]
fn profile_without_an_available_encoder_is_refused_naming_every_candidate() {
    let mut profile = dev_profile();
    profile.video.encoders = vec!["nonexistent-enc".into(), "also-missing-enc".into()];
    let (tx, _events) = unbounded_channel();
    let err = Call::start(&profile, tx, Arc::new(Screen::default())).err().unwrap().to_string();
    assert!(err.contains("nonexistent-enc") && err.contains("also-missing-enc"), "{err}");
}

#[test]
fn profile_sink_that_writes_files_is_refused_at_start() {
    let mut profile = dev_profile();
    profile.audio.sink = "filesink location=/tmp/telekiosk-visit-audio.raw".into();
    let (tx, _events) = unbounded_channel();
    let err = Call::start(&profile, tx, Arc::new(Screen::default())).err().unwrap().to_string();
    assert!(err.contains("filesink") && err.contains("audio.sink"), "{err}");
    assert!(!Path::new("/tmp/telekiosk-visit-audio.raw").exists());
}

#[test]
fn camera_error_at_run_time_is_reported_naming_the_element() {
    let mut profile = dev_profile();
    profile.video.source = "videotestsrc is-live=true ! identity name=camera error-after=5".into();
    let (tx, mut events) = unbounded_channel();
    let _call = Call::start(&profile, tx, Arc::new(Screen::default())).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        match events.try_recv() {
            Ok(MediaEvent::Failed { reason }) => {
                assert!(reason.contains("camera"), "{reason}");
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("no Failed event");
}

#[test]
fn missing_camera_device_fails_start_naming_the_element() {
    let mut profile = dev_profile();
    profile.video.source = "v4l2src name=camera device=/dev/telekiosk-no-such-camera".into();
    let (tx, _events) = unbounded_channel();
    let err = Call::start(&profile, tx, Arc::new(Screen::default())).err().expect("no camera");
    assert!(
        matches!(&err, MediaError::Start { element, .. } if element.contains("camera")),
        "{err}"
    );
}

//! The kiosk's `Call` against a second, answering webrtcbin in the same process: SDP and ICE are
//! exchanged directly (no network but loopback), both sides send H.264 + Opus and decode what the
//! other sends. Deadlines bound every wait; the figures printed are measurements, not assertions.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::media::{
    Answerer, DEADLINE, Exchange, PeerOptions, Screen, dev_profile, kiosk_keys, mean,
};
use telekiosk::media::{Call, CallSettings, Ice, MediaError, MediaEvent};
use tokio::sync::mpsc::unbounded_channel;

/// A clinician (or anyone in the middle) without the visit's key gets no picture: every frame
/// fails authentication and is dropped before its decoder, while the kiosk, which has the key,
/// decodes the clinician. (Frames decoded alone would prove nothing: ciphertext decodes too.)
#[test]
fn a_peer_with_the_wrong_key_decodes_nothing_and_counts_authentication_failures() {
    telekiosk::media::init().unwrap();
    let peer = Answerer::start_with(PeerOptions { wrong_key: true, ..PeerOptions::default() });
    let (tx, events) = unbounded_channel();
    let call =
        Call::start(&dev_profile(), &CallSettings::default(), tx, Arc::new(Screen::default()))
            .unwrap();
    let mut x = Exchange::new(events);
    x.pump_until(&call, &peer, |call| {
        call.stats().remote_video_frames > 10 && peer.protection.stats().auth_failures > 30
    });
    assert_eq!(peer.decoded_frames.load(Ordering::SeqCst), 0, "a frame reached the decoder");
    assert_eq!(peer.protection.stats().opened, 0);
    let kiosk = call.protection();
    assert!(kiosk.sealed > 30 && kiosk.opened > 10 && kiosk.auth_failures == 0, "{kiosk:?}");
    eprintln!("wrong key: peer {:?}, kiosk {kiosk:?}", peer.protection.stats());
}

/// What a relay that ended DTLS-SRTP would read: the RTP payloads of the kiosk's video carry no
/// plaintext slice data (16-byte windows of the picture data of the frames the clinician opened
/// are searched for in every payload), while the 4 slice-header bytes each slice leaves clear by
/// design are found there: the search sees what is sent in the clear.
#[test]
fn rtp_carries_no_plaintext_slice_data() {
    telekiosk::media::init().unwrap();
    let peer = Answerer::start();
    let (tx, events) = unbounded_channel();
    let call =
        Call::start(&dev_profile(), &CallSettings::default(), tx, Arc::new(Screen::default()))
            .unwrap();
    let mut x = Exchange::new(events);
    x.pump_until(&call, &peer, |_| peer.decoded_frames.load(Ordering::SeqCst) > 60);
    drop(call);
    let capture = peer.capture.lock().unwrap();
    // What the depayloader hands on: Annex B, or AVC (4-byte lengths).
    let nal_units = |au: &[u8]| -> Vec<Vec<u8>> {
        let mut out = vec![];
        if au.starts_with(&[0, 0, 0, 1]) {
            let mut starts: Vec<usize> = au
                .windows(4)
                .enumerate()
                .filter(|(_, w)| *w == [0, 0, 0, 1])
                .map(|(i, _)| i)
                .collect();
            starts.push(au.len());
            out.extend(starts.windows(2).map(|w| au[w[0] + 4..w[1]].to_vec()));
        } else {
            let mut rest = au;
            while rest.len() > 4 {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                out.push(rest[4..(4 + len).min(rest.len())].to_vec());
                rest = &rest[(4 + len).min(rest.len())..];
            }
        }
        out
    };
    // Picture data (sealed) and each slice's clear header bytes (left clear by design).
    let (mut windows, mut clear_headers) = (vec![], vec![]);
    for nal in capture.opened_frames.iter().flat_map(|au| nal_units(au)) {
        if matches!(nal.first().map(|h| h & 0x1f), Some(1 | 5)) && nal.len() > 80 {
            windows.extend(nal[24..].chunks_exact(16).take(3).map(<[u8]>::to_vec));
            clear_headers.push(nal[1..5].to_vec());
        }
    }
    let payloads = &capture.rtp_payloads;
    let found =
        |needle: &[u8]| payloads.iter().any(|p| p.windows(needle.len()).any(|w| w == needle));
    assert!(
        // At the call's start the rate controller sends small frames, often one packet each.
        windows.len() > 100 && payloads.len() > 50,
        "{} windows, {} payloads",
        windows.len(),
        payloads.len()
    );
    let leaked = windows.iter().filter(|w| found(w)).count();
    assert_eq!(leaked, 0, "{leaked} of {} plaintext slice windows are in the RTP", windows.len());
    let seen = clear_headers.iter().filter(|h| found(h)).count();
    assert!(
        seen * 10 >= clear_headers.len() * 9,
        "only {seen} of {} clear slice headers seen",
        clear_headers.len()
    );
    eprintln!(
        "searched {} slice windows in {} RTP payloads: none found; {seen} of {} clear slice headers seen",
        windows.len(),
        payloads.len(),
        clear_headers.len()
    );
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
    let call = Call::start(&dev_profile(), &CallSettings::default(), tx, screen.clone()).unwrap();
    let start_returned = started.elapsed();
    let mut x = Exchange { started, ..Exchange::new(events) };

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
    let call =
        Call::start(&profile, &CallSettings::default(), tx, Arc::new(Screen::default())).unwrap();
    let mut x = Exchange::new(events);
    x.pump_until(&call, &peer, |call| call.stats().remote_audio_buffers > 20);
    assert!(x.connected_at.is_some(), "never Connected");
    assert!(call.stats().remote_audio_buffers > 20, "{:?}", call.stats());
}

#[test]
fn garbage_answer_is_an_error_not_a_panic() {
    let (tx, mut events) = unbounded_channel();
    let call =
        Call::start(&dev_profile(), &CallSettings::default(), tx, Arc::new(Screen::default()))
            .unwrap();
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
    let err = Call::start(&profile, &CallSettings::default(), tx, Arc::new(Screen::default()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nonexistent-enc") && err.contains("also-missing-enc"), "{err}");
}

#[test]
fn profile_sink_that_writes_files_is_refused_at_start() {
    let mut profile = dev_profile();
    profile.audio.sink = "filesink location=/tmp/telekiosk-visit-audio.raw".into();
    let (tx, _events) = unbounded_channel();
    let err = Call::start(&profile, &CallSettings::default(), tx, Arc::new(Screen::default()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("filesink") && err.contains("audio.sink"), "{err}");
    assert!(!Path::new("/tmp/telekiosk-visit-audio.raw").exists());
}

#[test]
fn camera_error_at_run_time_is_reported_naming_the_element() {
    let mut profile = dev_profile();
    profile.video.source = "videotestsrc is-live=true ! identity name=camera error-after=5".into();
    let (tx, mut events) = unbounded_channel();
    let _call =
        Call::start(&profile, &CallSettings::default(), tx, Arc::new(Screen::default())).unwrap();
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
    let err = Call::start(&profile, &CallSettings::default(), tx, Arc::new(Screen::default()))
        .err()
        .expect("no camera");
    assert!(
        matches!(&err, MediaError::Start { element, .. } if element.contains("camera")),
        "{err}"
    );
}

/// Firefox without OpenH264: the answer picks VP8 from the offer; the kiosk sends VP8 and decodes
/// the VP8 the peer sends.
#[test]
fn a_peer_without_h264_gets_vp8_both_ways() {
    telekiosk::media::init().unwrap();
    let peer = Answerer::start_with(PeerOptions { video_codec: "VP8", ..PeerOptions::default() });
    let screen = Arc::new(Screen::default());
    let (tx, events) = unbounded_channel();
    let started = Instant::now();
    let call = Call::start(&dev_profile(), &CallSettings::default(), tx, screen.clone()).unwrap();
    let mut x = Exchange { started, ..Exchange::new(events) };
    x.pump_until(&call, &peer, |call| {
        call.stats().remote_video_frames > 10 && peer.decoded_frames.load(Ordering::SeqCst) > 10
    });
    let answer = x.answer.clone().expect("the kiosk made an offer");
    assert!(answer.contains("VP8/90000") && !answer.contains("H264"), "{answer}");
    let stats = call.stats();
    assert!(stats.remote_video_frames > 10, "kiosk decoded too little VP8: {stats:?}");
    assert!(peer.decoded_frames.load(Ordering::SeqCst) > 10, "the peer decoded too little VP8");
    assert!(peer.last_mean.load(Ordering::SeqCst) > 40, "the peer's picture is black");
    eprintln!(
        "MEASURED VP8 both ways: Connected {:?}, first remote frame {:?}",
        x.connected_at.unwrap(),
        screen.first_remote.lock().unwrap().unwrap() - started
    );
}

/// A browser that can decode none of the offered video codecs rejects the m-line (`m=video 0`, no
/// ICE or DTLS lines there, out of the BUNDLE group): the call goes on with audio both ways.
#[test]
fn an_answer_rejecting_video_keeps_the_call_with_audio() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    telekiosk::media::init().unwrap();
    let peer = Answerer::start_with(PeerOptions { reject_video: true, ..PeerOptions::default() });
    let (tx, mut events) = unbounded_channel();
    let call =
        Call::start(&dev_profile(), &CallSettings::default(), tx, Arc::new(Screen::default()))
            .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let offer = loop {
        if let Ok(MediaEvent::LocalOffer { sdp }) = events.try_recv() {
            break sdp;
        }
        assert!(Instant::now() < deadline, "no offer");
        std::thread::sleep(Duration::from_millis(10));
    };
    let answer = peer.answer(&offer);
    assert!(answer.contains("m=video 0 "), "{answer}");
    call.set_frame_keys(&kiosk_keys()).unwrap();
    let answered = call.set_remote_answer(&answer).expect("an answer rejecting video is accepted");
    assert_eq!(answered.video, None);
    assert_eq!(answered.rejected, ["video"]);
    let mut x = Exchange { offer_at: Some(Duration::ZERO), ..Exchange::new(events) };
    x.pump_until(&call, &peer, |call| {
        call.stats().remote_audio_buffers > 20 && peer.voice().frames > 20
    });
    assert!(x.connected_at.is_some(), "never Connected");
    assert!(call.stats().remote_audio_buffers > 20, "{:?}", call.stats());
    assert!(peer.voice().frames > 20, "the peer heard too little");
    assert_eq!(peer.decoded_frames.load(Ordering::SeqCst), 0, "video went out although rejected");
}

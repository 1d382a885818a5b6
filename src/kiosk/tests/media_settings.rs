//! Fleet-config media settings on a real call against an answering webrtcbin: the caps shrink
//! what the kiosk sends, and the call reports round-trip time and loss from RTCP.

mod media_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use media_support::{Answerer, Exchange, Screen, dev_profile};
use telekiosk::media::{Call, CallSettings};
use tokio::sync::mpsc::unbounded_channel;

fn exchange(
    events: tokio::sync::mpsc::UnboundedReceiver<telekiosk::media::MediaEvent>,
) -> Exchange {
    Exchange { events, started: Instant::now(), offer_at: None, connected_at: None, answer: None }
}

#[test]
fn config_caps_shrink_the_video_the_kiosk_sends_keeping_its_shape() {
    let peer = Answerer::start();
    let (tx, events) = unbounded_channel();
    let caps = CallSettings {
        max_width: 640,
        max_height: 480,
        max_fps: 15,
        max_bitrate_kbps: 300,
        ..CallSettings::default()
    };
    let call = Call::start(&dev_profile(), &caps, tx, Arc::new(Screen::default())).unwrap();
    let mut x = exchange(events);
    x.pump_until(&call, &peer, |_| peer.decoded_frames.load(Ordering::SeqCst) > 5);
    assert!(peer.decoded_frames.load(Ordering::SeqCst) > 5, "the peer decoded too little");
    // The dev profile sends 1280x720; within 640x480 that is 640x360.
    assert_eq!(*peer.kiosk_video_size.lock().unwrap(), (640, 360));
}

#[test]
fn a_call_reports_round_trip_time_and_loss_once_rtcp_comes_back() {
    let peer = Answerer::start();
    let (tx, events) = unbounded_channel();
    let call =
        Call::start(&dev_profile(), &CallSettings::default(), tx, Arc::new(Screen::default()))
            .unwrap();
    let probe = call.quality_probe();
    let mut x = exchange(events);
    let mut quality = None;
    x.pump_until(&call, &peer, |_| {
        quality = probe.read(Duration::from_millis(200));
        quality.is_some()
    });
    let q = quality.expect("no RTT/loss from webrtcbin's stats within the deadline");
    eprintln!("MEASURED loopback network quality: {q:?}");
    assert!(q.rtt_ms < 1000, "{q:?}");
    assert!(q.loss_permille <= 1000, "{q:?}");
}

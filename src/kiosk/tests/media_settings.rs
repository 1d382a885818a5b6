//! Fleet-config media settings on a real call against an answering webrtcbin: the caps shrink
//! what the kiosk sends, and the call reports its quality (loss and round trips, the rate
//! controller's estimate, what it sends).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use support::media::{Answerer, Exchange, Screen, dev_profile};
use telekiosk::media::{Call, CallSettings};
use tokio::sync::mpsc::unbounded_channel;

fn exchange(
    events: tokio::sync::mpsc::UnboundedReceiver<telekiosk::media::MediaEvent>,
) -> Exchange {
    Exchange::new(events)
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
    // The dev profile sends 1280x720; within 640x480 that is at most 640x360 (the rate
    // controller's ladder may start smaller), always 16:9.
    let (w, h) = *peer.kiosk_video_size.lock().unwrap();
    assert!(w <= 640 && h <= 360 && w * 9 == h * 16, "{w}x{h}");
}

#[test]
fn a_call_reports_its_quality_once_rtcp_comes_back() {
    let peer = Answerer::start();
    let (tx, events) = unbounded_channel();
    let call =
        Call::start(&dev_profile(), &CallSettings::default(), tx, Arc::new(Screen::default()))
            .unwrap();
    let mut x = exchange(events);
    x.pump_until(&call, &peer, |call| call.quality().is_some_and(|q| q.sent_kbps > 0));
    let q = call.quality().expect("no quality reading within the deadline");
    eprintln!("MEASURED loopback call quality: {q:?}");
    assert!(q.rtt_ms < 1000, "{q:?}");
    assert!((0.0..=1.0).contains(&q.loss), "{q:?}");
    assert!(q.estimate_kbps > 0, "the rate controller has no estimate: {q:?}");
    assert!(q.sent_kbps > 0, "nothing sent: {q:?}");
    assert!(!q.video_paused, "{q:?}");
}

#[test]
fn a_port_range_from_the_config_keeps_the_calls_media_within_it() {
    let peer = Answerer::start();
    let (tx, events) = unbounded_channel();
    let settings = CallSettings { rtp_ports: Some((42_100, 42_110)), ..CallSettings::default() };
    let call = Call::start(&dev_profile(), &settings, tx, Arc::new(Screen::default())).unwrap();
    let mut x = exchange(events);
    x.pump_until(&call, &peer, |_| peer.decoded_frames.load(Ordering::SeqCst) > 5);
    assert!(peer.decoded_frames.load(Ordering::SeqCst) > 5, "no media within the port range");
    let udp: Vec<u16> = x
        .candidates
        .iter()
        .filter(|c| c.to_ascii_uppercase().contains(" UDP "))
        .filter_map(|c| c.split(' ').nth(5)?.parse().ok())
        .collect();
    assert!(!udp.is_empty(), "no UDP candidates: {:?}", x.candidates);
    assert!(udp.iter().all(|p| (42_100..=42_110).contains(p)), "ports {udp:?}");
}

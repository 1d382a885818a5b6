//! What end-to-end frame encryption costs the kiosk. 10 s of 720p30 H.264 from x264enc (as the
//! kiosk encodes: zerolatency, 2.5 Mb/s) and 10 s of 20 ms Opus frames are made once, kept in
//! memory, then sealed and opened as the pipeline's probes do; it prints µs per frame and the
//! share of one core a 30 fps call with its voice takes. Then the steps the key agreement adds
//! before a call's first frame: the TPM signature of the offer's key (swtpm) and the ECDH, HKDF
//! and confirmation check when the answer comes. Figures only, no assertions.
//! Run: `cargo run --release -p telekiosk --example e2ee_bench`.

#[path = "../tests/support/swtpm.rs"]
mod swtpm;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gst::prelude::*;
use telekiosk::app::e2ee::{agree, sign_offer};
use telekiosk::identity::Tpm;
use telekiosk_e2ee::{Codec, EphemeralKey, Receiver, Sender, VisitKeys};
use telekiosk_protocol::e2ee::ConsoleKey;

const VIDEO: &str = "videotestsrc num-buffers=300 pattern=smpte is-live=false \
    ! video/x-raw,width=1280,height=720,framerate=30/1 \
    ! x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=60 \
    ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false";
const VOICE: &str = "audiotestsrc num-buffers=500 samplesperbuffer=960 wave=pink-noise \
    ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! appsink name=sink sync=false";

fn frames(description: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let pipeline = gst::parse::launch(description)?.downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing)?;
    let mut out = vec![];
    while let Ok(sample) = sink.pull_sample() {
        out.push(sample.buffer().unwrap().map_readable()?.to_vec());
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(out)
}

/// Seals then opens every frame `rounds` times; returns the mean time per frame of each.
fn cost(codec: Codec, frames: &[Vec<u8>], rounds: u32) -> (Duration, Duration, usize) {
    let (mut sealed_time, mut opened_time, mut overhead) = (Duration::ZERO, Duration::ZERO, 0);
    for _ in 0..rounds {
        let mut sender = Sender::new(&[7; 32], 1).unwrap();
        let mut receiver = Receiver::new();
        receiver.set_key(&[7; 32], 1).unwrap();
        let t = Instant::now();
        let sealed: Vec<Vec<u8>> =
            frames.iter().map(|f| sender.protect(codec, f).unwrap()).collect();
        sealed_time += t.elapsed();
        overhead =
            sealed.iter().map(Vec::len).sum::<usize>() - frames.iter().map(Vec::len).sum::<usize>();
        let t = Instant::now();
        for s in &sealed {
            receiver.unprotect(codec, s).unwrap();
        }
        opened_time += t.elapsed();
    }
    let n = frames.len() as u32 * rounds;
    (sealed_time / n, opened_time / n, overhead / frames.len())
}

fn main() -> anyhow::Result<()> {
    gst::init()?;
    let video = frames(VIDEO)?;
    let voice = frames(VOICE)?;
    let bytes: usize = video.iter().map(Vec::len).sum();
    println!(
        "frames: {} H.264 720p30 access units ({} kB, {:.0} kb/s), {} Opus frames",
        video.len(),
        bytes / 1000,
        bytes as f64 * 8.0 / 10.0 / 1000.0,
        voice.len()
    );
    let (v_seal, v_open, v_over) = cost(Codec::H264, &video, 20);
    let (a_seal, a_open, a_over) = cost(Codec::Opus, &voice, 20);
    println!("H.264 720p30: seal {v_seal:?}/frame, open {v_open:?}/frame, +{v_over} bytes/frame");
    println!("Opus 20 ms:   seal {a_seal:?}/frame, open {a_open:?}/frame, +{a_over} bytes/frame");
    let per_second = (v_seal + v_open) * 30 + (a_seal + a_open) * 50;
    println!(
        "a call (30 fps video and 50 voice frames/s, both ways): {:.2} % of one core",
        per_second.as_secs_f64() * 100.0
    );

    let swtpm = swtpm::Swtpm::start();
    let state = tempfile::tempdir()?;
    let tpm = Tpm::open(&swtpm.tcti())?;
    let device = tpm.device_key(state.path())?;
    let offer = "v=0\r\na=fingerprint:sha-256 AA:BB:CC\r\n";
    let answer = "v=0\r\na=fingerprint:sha-256 DD:EE:FF\r\n";
    let rounds = 50;
    let (mut signing, mut agreeing) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        let (ours, key) = sign_offer(&device, "visit-bench", offer).map_err(anyhow::Error::msg)?;
        signing += t.elapsed();
        let console = EphemeralKey::generate()?;
        let shared = console.shared_secret(&B64.decode(&key.public_key)?)?;
        let keys =
            VisitKeys::derive(&shared, "visit-bench", "sha-256 AA:BB:CC", "sha-256 DD:EE:FF");
        let half = ConsoleKey {
            public_key: B64.encode(console.public_key()),
            confirm: B64.encode(keys.console_confirm),
        };
        let t = Instant::now();
        agree(&ours, answer, &half).map_err(|c| anyhow::anyhow!("{c:?}"))?;
        agreeing += t.elapsed();
    }
    println!(
        "before the first frame: offer key made and signed by the TPM (swtpm) {:?}; answer's key \
         agreed and checked {:?}",
        signing / rounds,
        agreeing / rounds
    );
    Ok(())
}

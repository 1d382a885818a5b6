//! One encoder tried on the test pattern, for `telekiosk probe`: does it encode, how fast flat
//! out, and how much processor time a second of live video would cost. The encoder is set up
//! exactly as a call sets it up ([`super::encoder::configure`]), so the figure is the one a
//! visit would see. Nothing leaves memory: the encoded frames go to `fakesink`.

use std::time::{Duration, Instant};

use gst::prelude::*;
use telekiosk_protocol::probe::EncodeOutcome;

use super::elements::{capsfilter, make};
use super::encoder::configure;
use super::exists;
use crate::profile::Video;

/// Frame rate of the trial's video; the size is 1280x720.
const TRIAL_FPS: u32 = 30;
/// The bitrate a 720p call starts at on a good link.
const TRIAL_KBPS: u32 = 1500;
/// A hardware encoder that has not finished after this long is stuck.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(120);

/// Encodes `seconds` of 720p30 SMPTE bars (the kiosk's test pattern)
/// with `name`, as fast as it will go.
pub fn try_encoder(name: &str, seconds: u32) -> EncodeOutcome {
    if gst::init().is_err() || !exists(name) {
        return EncodeOutcome::Missing;
    }
    let frames = seconds * TRIAL_FPS;
    match run(name, frames) {
        Ok((wall, cpu, bytes)) => {
            let video_secs = f64::from(frames) / f64::from(TRIAL_FPS);
            EncodeOutcome::Encoded {
                frames,
                fps: (f64::from(frames) / wall.as_secs_f64().max(1e-6) * 10.0).round() / 10.0,
                cpu_percent: (cpu.as_secs_f64() / video_secs * 1000.0).round() / 10.0,
                kbps: (bytes as f64 * 8.0 / 1000.0 / video_secs).round() as u32,
            }
        }
        Err(error) => EncodeOutcome::Failed { error },
    }
}

/// Wall time, processor time of the whole process and encoded bytes.
fn run(name: &str, frames: u32) -> Result<(Duration, Duration, u64), String> {
    let video = Video {
        source: String::new(),
        encoders: vec![name.to_string()],
        width: 1280,
        height: 720,
        fps: TRIAL_FPS,
        bitrate_kbps: TRIAL_KBPS,
        fec: false,
        stamp_time: false,
    };
    let pipeline = gst::Pipeline::new();
    let source = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", frames as i32)
        .property_from_str("pattern", "smpte")
        .build()
        .map_err(|e| e.to_string())?;
    let raw = gst::Caps::builder("video/x-raw")
        .field("width", 1280)
        .field("height", 720)
        .field("framerate", gst::Fraction::new(TRIAL_FPS as i32, 1))
        .build();
    let encoder = make(name).map_err(|e| e.to_string())?;
    let setup = configure(&encoder, &video, TRIAL_KBPS);
    let chain = [
        source,
        capsfilter(&raw).map_err(|e| e.to_string())?,
        make(setup.converter).map_err(|e| e.to_string())?,
        encoder,
        capsfilter(&setup.caps).map_err(|e| e.to_string())?,
        gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .map_err(|e| e.to_string())?,
    ];
    let refs: Vec<&gst::Element> = chain.iter().collect();
    pipeline.add_many(&refs).map_err(|e| e.to_string())?;
    gst::Element::link_many(&refs).map_err(|_| format!("{name} cannot take 720p raw video"))?;

    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = bytes.clone();
    let sink_pad = chain[5].static_pad("sink").ok_or("fakesink has no sink pad")?;
    sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            counted.fetch_add(buffer.size() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });

    let cpu_before = process_cpu();
    let started = Instant::now();
    let outcome = play_to_end(&pipeline);
    let wall = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let _ = pipeline.set_state(gst::State::Null);
    outcome.map(|()| (wall, cpu, bytes.load(std::sync::atomic::Ordering::Relaxed)))
}

/// Plays until end of stream; the first error message says what went wrong.
fn play_to_end(pipeline: &gst::Pipeline) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the encoder would not start".to_string())?;
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    let deadline = gst::ClockTime::from_seconds(TRIAL_TIMEOUT.as_secs());
    match bus.timed_pop_filtered(deadline, &[gst::MessageType::Eos, gst::MessageType::Error]) {
        None => Err(format!("no result after {} s", TRIAL_TIMEOUT.as_secs())),
        Some(msg) => match msg.view() {
            gst::MessageView::Error(e) => Err(e.error().to_string()),
            _ => Ok(()),
        },
    }
}

/// Processor time (user and system) of this process so far.
fn process_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else { return Duration::ZERO };
    let time = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) as u32) * 1000)
    };
    time(usage.user_time()) + time(usage.system_time())
}

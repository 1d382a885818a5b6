//! The technician's hardware checks, each its own short GStreamer pipeline built from the
//! hardware profile: the camera's live preview, the microphone's level and a test tone on the
//! speaker. They run only while the technician screen is open (never beside a visit: the screen
//! cannot open during one) and stop when dropped.
//!
//! With the profile's `audio.virtual_room` (development and tests) the tone's speaker and the
//! meter's microphone are one in-process room (`interaudiosink` → `interaudiosrc`), so the meter
//! hears the tone on a machine without sound hardware; visits keep the profile's own devices.
//!
//! Must never: write a picture or a sound anywhere (the profile's descriptions are checked for
//! writers as the visit's are, and frames only go to the callback), or log what was captured.

use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;

use crate::media::{Frame, writers};
use crate::profile::Audio;

/// The in-process room's channel name.
pub const ROOM_CHANNEL: &str = "telekiosk-virtual-room";
/// The preview's size and rate: enough to aim and focus a camera.
pub const PREVIEW_WIDTH: u32 = 480;
pub const PREVIEW_HEIGHT: u32 = 270;
const PREVIEW_FPS: i32 = 10;
/// How often the meter reads the microphone.
const METER_INTERVAL: Duration = Duration::from_millis(100);
/// The tone: 440 Hz for two seconds.
pub const TONE: Duration = Duration::from_secs(2);
const TONE_RATE: i32 = 48_000;
const TONE_BUFFERS: i32 = 20;

/// Why a check could not start, in plain words (the screen shows it).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the {part} could not start: {reason}")]
    Start { part: &'static str, reason: String },
}

fn failed(part: &'static str) -> impl Fn(String) -> CheckError {
    move |reason| CheckError::Start { part, reason }
}

/// A device of a check: the profile's description under its key (checked for writers as the
/// visit's pipeline checks it), or one of the in-process room's ends (`None`: built here).
type Device = (Option<&'static str>, String);

/// The microphone the meter listens to.
fn microphone(audio: &Audio) -> Device {
    if audio.virtual_room {
        (None, format!("interaudiosrc channel={ROOM_CHANNEL}"))
    } else {
        (Some("audio.source"), audio.source.clone())
    }
}

/// The speaker the tone plays on.
fn speaker(audio: &Audio) -> Device {
    if audio.virtual_room {
        (None, format!("interaudiosink channel={ROOM_CHANNEL}"))
    } else {
        (Some("audio.sink"), audio.sink.clone())
    }
}

/// A pipeline that is set to NULL (devices released) when dropped.
struct Running(gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The pipeline `description`, which holds `device`: refused if the profile's part could write
/// media anywhere, as the visit's pipeline refuses it.
fn launch(part: &'static str, device: &Device, description: &str) -> Result<Running, CheckError> {
    gst::init().map_err(|e| failed(part)(e.to_string()))?;
    if let (Some(key), profile_part) = device {
        writers::check_description(key, profile_part).map_err(failed(part))?;
    }
    let element = gst::parse::launch(description).map_err(|e| failed(part)(e.to_string()))?;
    let pipeline =
        element.downcast::<gst::Pipeline>().map_err(|_| failed(part)("not a pipeline".into()))?;
    Ok(Running(pipeline))
}

fn play(part: &'static str, running: &Running) -> Result<(), CheckError> {
    running.0.set_state(gst::State::Playing).map_err(|e| failed(part)(e.to_string()))?;
    Ok(())
}

/// The microphone's level, read every 100 ms while it lives.
pub struct MicMeter {
    _running: Running,
}

impl MicMeter {
    /// Listens to the profile's microphone (or the in-process room's); `on_level` gets the RMS
    /// level of the first channel in dBFS (`-inf` for digital silence) on a GStreamer thread.
    pub fn start(
        audio: &Audio,
        on_level: impl Fn(f64) + Send + Sync + 'static,
    ) -> Result<MicMeter, CheckError> {
        let interval = METER_INTERVAL.as_nanos() as u64;
        let device = microphone(audio);
        let running = launch(
            "microphone",
            &device,
            &format!(
                "{} ! audioconvert ! audioresample ! \
                 level name=meter interval={interval} post-messages=true ! fakesink sync=false",
                device.1
            ),
        )?;
        let bus = running.0.bus().ok_or_else(|| failed("microphone")("no bus".into()))?;
        bus.set_sync_handler(move |_, message| {
            if let Some(db) = rms_of(message) {
                on_level(db);
            }
            gst::BusSyncReply::Drop
        });
        play("microphone", &running)?;
        Ok(MicMeter { _running: running })
    }
}

/// The first channel's RMS of a `level` message.
fn rms_of(message: &gst::Message) -> Option<f64> {
    let gst::MessageView::Element(element) = message.view() else { return None };
    let s = element.structure()?;
    if !s.has_name("level") {
        return None;
    }
    let rms = s.get::<gst::glib::ValueArray>("rms").ok()?;
    rms.as_slice().first()?.get::<f64>().ok()
}

/// Plays a 440 Hz tone for [`TONE`] on the profile's speaker (or into the in-process room), on
/// a thread of its own; the pipeline is released when the tone ends (or after a generous wait).
pub fn play_tone(audio: &Audio) -> Result<(), CheckError> {
    let samples = TONE_RATE * TONE.as_secs() as i32 / TONE_BUFFERS;
    let device = speaker(audio);
    let running = launch(
        "speaker",
        &device,
        &format!(
            "audiotestsrc wave=sine freq=440 volume=0.5 samplesperbuffer={samples} \
             num-buffers={TONE_BUFFERS} ! audio/x-raw,rate={TONE_RATE},channels=1 ! \
             audioconvert ! audioresample ! {}",
            device.1
        ),
    )?;
    play("speaker", &running)?;
    std::thread::spawn(move || {
        if let Some(bus) = running.0.bus() {
            let wait = gst::ClockTime::from_seconds(TONE.as_secs() + 10);
            let _ = bus
                .timed_pop_filtered(Some(wait), &[gst::MessageType::Eos, gst::MessageType::Error]);
        }
        drop(running);
    });
    Ok(())
}

/// The camera's live picture while it lives: small RGB frames to a callback.
pub struct Preview {
    _running: Running,
}

impl Preview {
    /// Opens `camera` (a launch description); `on_frame` gets each picture on a GStreamer
    /// thread (at most [`PREVIEW_FPS`] a second, the newest only).
    pub fn start(
        camera: &str,
        on_frame: impl Fn(Frame) + Send + Sync + 'static,
    ) -> Result<Preview, CheckError> {
        let running = launch(
            "camera",
            &(Some("video.source"), camera.to_string()),
            &format!(
                "{camera} ! videoconvert ! videoscale ! videorate ! \
                 video/x-raw,format=RGB,width={PREVIEW_WIDTH},height={PREVIEW_HEIGHT},\
                 framerate={PREVIEW_FPS}/1,pixel-aspect-ratio=1/1 ! \
                 appsink name=preview max-buffers=1 drop=true sync=false"
            ),
        )?;
        let sink = running
            .0
            .by_name("preview")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| failed("camera")("no preview sink".into()))?;
        let on_frame = Arc::new(on_frame);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(frame) = frame_of(&sample) {
                        on_frame(frame);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        play("camera", &running)?;
        Ok(Preview { _running: running })
    }
}

/// A tightly packed RGB frame from a sample (rows copied without their padding).
fn frame_of(sample: &gst::Sample) -> Option<Frame> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let (width, height) = (info.width(), info.height());
    let row = width as usize * 3;
    let stride = info.stride()[0] as usize;
    let mut rgb = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        rgb.extend_from_slice(map.get(y * stride..y * stride + row)?);
    }
    Some(Frame { width, height, rgb })
}

//! Media adapter: the GStreamer pipeline of one visit. Camera and microphone go out through
//! `webrtcbin` (the kiosk always makes the offer); the clinician's video comes back as RGB frames
//! for the UI and their audio goes to the speaker.
//!
//! What this module owns: building the pipeline from the hardware [`Profile`], choosing and
//! configuring the encoder, the WebRTC offer/answer/ICE plumbing, mute and camera-off, call
//! counters, and turning bus errors into [`MediaEvent::Failed`] that name the element.
//!
//! What it must never do: write media to disk. No element that writes files (`filesink`,
//! `splitmuxsink`, `multifilesink`, recorders, …) may enter a pipeline built here; visit audio and
//! video exist only in memory and on the encrypted (DTLS-SRTP) wire. It also never blocks a
//! streaming thread on the application and never panics in a streaming callback: failures become
//! element errors on the bus (or are reported directly) and then `Failed` events.
//!
//! Layout: `elements` (what must be installed), `encoder` (which H.264 encoder, its per-element
//! quirks and bitrate units, VP8), `answer` (pure: the browser's answer reshaped for webrtcbin),
//! `settings` (fleet-config caps and ICE servers), `pipeline` (the sending side with a tail per
//! offered video codec, and the self-view), `echo` (echo cancellation's two chains at one pinned
//! rate), `negotiation` (webrtcbin offer, answer, ICE, connection
//! state), `remote` (decoding what the clinician sends, loss recovery), `frames` (RGB frame
//! copies, black frames), `bwe` (pure: the link's estimate from transport-wide feedback), `rate`
//! (pure: the estimate split into voice, FEC and video, and the picture ladder), `control` (the
//! rate controller applying both to the encoders), `quality` (the call's figures once a second,
//! the jitter buffer's latency), `stamp` (bench only: glass-to-glass time stamps), `writers`
//! (which elements could write media anywhere: refused in profiles at load and at call start),
//! `trial` (an encoder tried on test pattern, for `telekiosk probe`) and `bus` (errors from the pipeline's bus).

pub mod answer;
mod bus;
pub mod bwe;
mod control;
pub mod echo;
mod elements;
mod encoder;
mod frames;
mod negotiation;
mod pipeline;
pub mod protect;
mod quality;
pub mod rate;
mod remote;
mod settings;
pub mod stamp;
mod trial;
pub mod writers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

pub use answer::VideoCodec;
pub use control::RateSnapshot;
pub use elements::init;
pub(crate) use elements::{exists, require};
pub use encoder::{KNOWN_ENCODERS, choose_encoder, is_hardware};
pub use protect::{FrameKeys, Protection, ProtectionStats};
pub use quality::{CallQuality, QualityLevel, VoiceLoss};
pub use remote::recover_from_loss;
pub use settings::CallSettings;
/// One ICE candidate as the wire carries it (m-line index + `candidate:` line).
pub use telekiosk_protocol::visit::Ice;
pub use trial::try_encoder;

use crate::profile::Profile;

/// What the pipeline reports to the kiosk's shell, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The offer was created and set as the local description; send it to the clinician.
    LocalOffer {
        /// The offer's SDP text.
        sdp: String,
    },
    /// A local ICE candidate to send to the clinician.
    LocalIce(Ice),
    /// webrtcbin's connection state reached connected (ICE and DTLS done): media can flow.
    /// Sent once.
    Connected,
    /// The link cannot carry video any more (true: audio only, the last picture stays on the
    /// clinician's screen), or it can again (false). Sent on each change.
    VideoPaused(bool),
    /// The call cannot go on: a pipeline error (naming the element), ICE failure, …
    /// Sent once, for the first failure; later ones are only logged.
    Failed {
        /// Plain words for logs and the technician, naming the element when there is one.
        reason: String,
    },
}

/// What the clinician's answer chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The codec the kiosk sends video with; `None`: no video either way (the browser rejected
    /// it or can decode nothing the kiosk sends), the call is audio only.
    pub video: Option<VideoCodec>,
    /// The kinds (`video`, `audio`) of the m-lines the browser rejected.
    pub rejected: Vec<String>,
}

/// A decoded video frame: tightly packed RGB8, `width * 3` bytes per row, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row after row.
    pub rgb: Vec<u8>,
}

/// Where decoded pictures go (the UI adapter implements it).
///
/// Both methods are called from GStreamer streaming threads: they must return quickly and never
/// block (hand the frame to the UI thread and return).
pub trait FrameSink: Send + Sync + 'static {
    /// A frame of the clinician's video, at most 1280x720, aspect ratio kept.
    fn remote_frame(&self, frame: Frame);
    /// A frame of the self-view (what the kiosk's camera sends), small: 320 pixels wide.
    fn local_frame(&self, frame: Frame);
}

/// Counters of one call, for tests, the UI's quality indicator and PHI-free telemetry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Clinician video frames decoded and handed to [`FrameSink::remote_frame`].
    pub remote_video_frames: u64,
    /// Clinician audio buffers that reached the speaker sink.
    pub remote_audio_buffers: u64,
    /// Camera frames (or black frames, camera off) that entered the video encoder.
    pub local_video_frames: u64,
    /// Microphone buffers that entered the Opus encoder.
    pub local_audio_buffers: u64,
    /// End-to-end protection: frames sealed and sent, opened for a decoder, and refused because
    /// they failed authentication (dropped, never decoded).
    pub sealed_frames: u64,
    pub opened_frames: u64,
    pub auth_failures: u64,
}

/// Why media could not be set up or driven. Every variant names the element or input concerned.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// GStreamer itself could not start.
    #[error("GStreamer could not be initialised: {0}")]
    Init(#[from] gst::glib::Error),
    /// An element the kiosk needs is not installed.
    #[error("GStreamer element '{element}' is missing: install the Debian package {package}")]
    MissingElement {
        /// The element's factory name.
        element: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// None of the profile's video encoders exists on this machine.
    #[error(
        "none of the video encoders [{}] exists on this machine: install one (x264enc is in \
         gstreamer1.0-plugins-ugly) or fix video.encoders in the hardware profile",
        candidates.join(", ")
    )]
    NoEncoder {
        /// The encoders that were tried, in order.
        candidates: Vec<String>,
    },
    /// A launch description from the hardware profile does not parse or names missing elements.
    #[error("hardware profile {field} '{description}' is not usable: {message}")]
    Description {
        /// The profile field, e.g. `video.source`.
        field: &'static str,
        /// The launch description as written in the profile.
        description: String,
        /// GStreamer's complaint.
        message: String,
    },
    /// The pipeline could not be assembled at this element.
    #[error("cannot build the media pipeline at '{element}': {message}")]
    Build {
        /// The element (or pair of elements) concerned.
        element: String,
        /// What went wrong.
        message: String,
    },
    /// The pipeline refused to start.
    #[error("the media pipeline did not start: '{element}' failed: {message}")]
    Start {
        /// The element that posted the error, or `pipeline` when none did.
        element: String,
        /// The element's error message.
        message: String,
    },
    /// The remote SDP could not be used.
    #[error("the clinician's answer was refused by webrtcbin: {message}")]
    Answer {
        /// What was wrong with it.
        message: String,
    },
    /// A remote ICE candidate could not be used.
    #[error("ICE candidate for m-line {mline} was refused by webrtcbin: {message}")]
    Candidate {
        /// The candidate's m-line index.
        mline: u32,
        /// What was wrong with it.
        message: String,
    },
}

/// State shared between the [`Call`] handle and the streaming-thread callbacks.
pub(crate) struct Shared {
    events: UnboundedSender<MediaEvent>,
    pub(crate) frames: Arc<dyn FrameSink>,
    pub(crate) remote_video_frames: AtomicU64,
    pub(crate) remote_audio_buffers: AtomicU64,
    pub(crate) local_video_frames: AtomicU64,
    pub(crate) local_audio_buffers: AtomicU64,
    /// False while the camera is off: the encoder and self-view get black frames.
    pub(crate) camera_on: AtomicBool,
    /// True while the rate controller has paused the video (audio only).
    pub(crate) video_paused: AtomicBool,
    /// The clinician's voice frames, and those lost beyond repair.
    pub(crate) voice: Mutex<quality::VoiceLoss>,
    /// The speaker level (0–100 %) and the playback path's `volume` element once the
    /// clinician's audio arrives.
    pub(crate) speaker: Mutex<(u8, Option<gst::Element>)>,
    /// End-to-end frame protection: nothing is sent or decoded until the visit's keys are in.
    pub(crate) protection: Arc<Protection>,
    connected: AtomicBool,
    failed: AtomicBool,
}

impl Shared {
    fn new(events: UnboundedSender<MediaEvent>, frames: Arc<dyn FrameSink>) -> Self {
        Self {
            events,
            frames,
            remote_video_frames: AtomicU64::new(0),
            remote_audio_buffers: AtomicU64::new(0),
            local_video_frames: AtomicU64::new(0),
            local_audio_buffers: AtomicU64::new(0),
            camera_on: AtomicBool::new(true),
            video_paused: AtomicBool::new(false),
            voice: Mutex::new(quality::VoiceLoss::default()),
            speaker: Mutex::new((100, None)),
            protection: Protection::new(),
            connected: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }

    /// Sends an event; a closed channel means the shell has gone, which is not our failure.
    pub(crate) fn send(&self, event: MediaEvent) {
        let _ = self.events.send(event);
    }

    /// Whether media can flow (ICE and DTLS done).
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Reports `Connected` the first time only.
    pub(crate) fn connected(&self) {
        if !self.connected.swap(true, Ordering::SeqCst) {
            self.send(MediaEvent::Connected);
        }
    }

    /// Share of the clinician's voice the decoder had to conceal so far, 0.0–1.0.
    pub(crate) fn concealed(&self) -> f64 {
        self.voice.lock().unwrap_or_else(|e| e.into_inner()).concealed()
    }

    /// Reports the first failure; later ones are logged only.
    pub(crate) fn fail(&self, reason: String) {
        if self.failed.swap(true, Ordering::SeqCst) {
            tracing::warn!(%reason, "further media failure");
        } else {
            tracing::error!(%reason, "media failure");
            self.send(MediaEvent::Failed { reason });
        }
    }
}

/// One visit's media: a running pipeline with its webrtcbin. Dropping it stops the pipeline.
pub struct Call {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    video: pipeline::VideoSend,
    mic_volume: gst::Element,
    shared: Arc<Shared>,
    control: Arc<control::RateControl>,
    quality: Arc<Mutex<Option<CallQuality>>>,
    stats: Option<quality::Watch>,
    bus: Option<bus::Watch>,
}

impl Call {
    /// Builds the pipeline for one visit from the profile (within `settings`' caps, with its
    /// STUN/TURN servers), sets it PLAYING and starts creating the offer:
    /// [`MediaEvent::LocalOffer`] then [`MediaEvent::LocalIce`] events follow.
    ///
    /// The camera starts at once so the self-view shows while the patient waits. The shell calls
    /// this when the patient presses Join, before a clinician accepts: creating the offer costs
    /// 140–250 ms of DTLS certificate generation, which is then hidden in the waiting time.
    pub fn start(
        profile: &Profile,
        settings: &CallSettings,
        events: UnboundedSender<MediaEvent>,
        frames: Arc<dyn FrameSink>,
    ) -> Result<Call, MediaError> {
        init()?;
        let shared = Arc::new(Shared::new(events, frames));
        let built = pipeline::build(profile, settings, &shared)?;
        protect::attach(built.pipeline.upcast_ref(), &shared.protection);
        let control = control::RateControl::new(built.knobs, &shared);
        negotiation::connect(&built.webrtc, &shared);
        let (webrtc, pipeline) = (&built.webrtc, &built.pipeline);
        remote::connect(webrtc, pipeline, &shared, &profile.audio.sink, built.echo_probe.clone());

        if built.pipeline.set_state(gst::State::Playing).is_err() {
            let (element, message) = bus::first_error(&built.pipeline)
                .unwrap_or_else(|| ("pipeline".into(), "state change to PLAYING failed".into()));
            let _ = built.pipeline.set_state(gst::State::Null);
            return Err(MediaError::Start { element, message });
        }
        let bus = match bus::Watch::spawn(&built.pipeline, &shared) {
            Ok(bus) => bus,
            Err(e) => {
                let _ = built.pipeline.set_state(gst::State::Null);
                return Err(e);
            }
        };
        let quality = Arc::new(Mutex::new(None));
        let stats = quality::Watch::spawn(&built.webrtc, &shared, &control, &quality)
            .map_err(|e| elements::build_error("media-stats thread", e))?;
        tracing::info!(profile = %profile.name, "media pipeline playing");
        Ok(Call {
            pipeline: built.pipeline,
            webrtc: built.webrtc,
            video: built.video,
            mic_volume: built.mic_volume,
            shared,
            control,
            quality,
            stats: Some(stats),
            bus: Some(bus),
        })
    }

    /// Sets the clinician's SDP answer as the remote description and starts sending video with
    /// the codec it chose. Errors (without panicking) when the text is not SDP or webrtcbin
    /// refuses it. An answer that rejects video is accepted: the call goes on with audio only,
    /// and the returned [`Answered`] says so.
    pub fn set_remote_answer(&self, sdp: &str) -> Result<Answered, MediaError> {
        let shaped = negotiation::set_remote_answer(&self.webrtc, sdp)?;
        self.video.choose(shaped.video)?;
        Ok(Answered { video: shaped.video, rejected: shaped.rejected })
    }

    /// Installs the visit's end-to-end frame keys (from the key agreement); until then nothing
    /// is sent and nothing received is decoded. Called again with new keys on a rekey.
    pub fn set_frame_keys(&self, keys: &FrameKeys) -> Result<(), MediaError> {
        self.shared.protection.set_keys(keys).map_err(|e| MediaError::Build {
            element: "frame protection".into(),
            message: e.to_string(),
        })
    }

    /// What the frame protection did so far.
    pub fn protection(&self) -> ProtectionStats {
        self.shared.protection.stats()
    }

    /// Adds one of the clinician's ICE candidates. mDNS (`.local`) candidates and the empty
    /// end-of-candidates marker are skipped with a debug log: libnice cannot resolve mDNS names.
    pub fn add_remote_ice(&self, ice: &Ice) -> Result<(), MediaError> {
        negotiation::add_remote_ice(&self.webrtc, ice)
    }

    /// Mutes or unmutes the microphone (silence is still sent, so the stream stays alive).
    pub fn set_mic_muted(&self, muted: bool) {
        self.mic_volume.set_property("mute", muted);
    }

    /// Sets the clinician's voice level on the speaker, 0–100 % (kept for the playback path
    /// if the clinician's audio has not arrived yet).
    pub fn set_volume(&self, pct: u8) {
        let pct = pct.min(100);
        let mut speaker = self.shared.speaker.lock().unwrap_or_else(|e| e.into_inner());
        speaker.0 = pct;
        if let Some(volume) = &speaker.1 {
            volume.set_property("volume", f64::from(pct) / 100.0);
        }
    }

    /// Turns the camera picture on or off. Off, the clinician sees black frames (not a frozen
    /// picture) and so does the self-view.
    pub fn set_camera_enabled(&self, enabled: bool) {
        self.shared.camera_on.store(enabled, Ordering::SeqCst);
    }

    /// The call's counters so far.
    pub fn stats(&self) -> CallStats {
        let protection = self.shared.protection.stats();
        CallStats {
            remote_video_frames: self.shared.remote_video_frames.load(Ordering::Relaxed),
            remote_audio_buffers: self.shared.remote_audio_buffers.load(Ordering::Relaxed),
            local_video_frames: self.shared.local_video_frames.load(Ordering::Relaxed),
            local_audio_buffers: self.shared.local_audio_buffers.load(Ordering::Relaxed),
            sealed_frames: protection.sealed,
            opened_frames: protection.opened,
            auth_failures: protection.auth_failures,
        }
    }

    /// What the rate controller is doing: estimate, split, picture sent.
    pub fn rate(&self) -> RateSnapshot {
        self.control.snapshot()
    }

    /// The call's latest quality reading (once a second), `None` before the first one.
    pub fn quality(&self) -> Option<CallQuality> {
        self.quality.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the call: the pipeline goes to NULL (camera and microphone released).
    /// Dropping the `Call` does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        drop(self.stats.take());
        if self.pipeline.set_state(gst::State::Null).is_err() {
            tracing::warn!("media pipeline did not go to NULL cleanly");
        }
        if let Some(bus) = self.bus.take() {
            bus.stop();
        }
        tracing::info!("media pipeline stopped");
    }
}

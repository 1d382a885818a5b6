//! The rate controller: the clinician's transport-wide congestion control feedback (the RTP
//! session's `twcc-stats`, once per feedback report) goes through the pure estimator in
//! [`super::bwe`], and each estimate drives the encoders live through the pure split in
//! [`super::rate`]: Opus bitrate and FEC, the video encoder's bitrate, ULPFEC share, and the
//! picture size and frame rate (a capsfilter after the camera tee, so the camera and the
//! self-view never renegotiate).
//!
//! Owns: the estimator, the last loss figure, the ladder. Must never: block a streaming thread
//! (property sets only), or send above the fleet config's bitrate cap.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::bwe::{Estimator, Feedback};
use super::elements::make;
use super::rate::{self, Allocation, Ladder, Rung};
use super::{MediaError, MediaEvent, Shared, encoder};
use crate::profile::Video;

/// The lowest estimate GCC may fall to (voice alone fits in it).
const MIN_ESTIMATE_BPS: u32 = 60_000;
/// The first call of this process starts here (the floor link carries it: no overshoot while
/// the estimate is still unknown); later calls start near the last one's estimate.
const FIRST_START_BPS: u32 = 250_000;
/// What the last call settled at, bit/s (0: none yet).
static LAST_ESTIMATE: AtomicU32 = AtomicU32::new(0);

/// The elements the controller turns.
pub(crate) struct Knobs {
    /// One encoder per offered codec; only the one the answer picked gets frames.
    pub video_encoders: Vec<gst::Element>,
    /// The ladder's size and frame rate in the encoder branch.
    pub picture: PictureCaps,
    pub opus: gst::Element,
    pub video_transceiver: gst_webrtc::WebRTCRTPTransceiver,
    /// Camera size and rate after the config's caps: no rung asks more.
    pub camera: (u32, u32, u32),
    /// The config's cap on the video bitrate, bit/s.
    pub max_video_bps: u32,
    /// Whether ULPFEC was negotiated (its share then follows the loss).
    pub fec: bool,
}

/// What the controller last did, for stats and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSnapshot {
    /// The link's estimate, bit/s.
    pub estimate_bps: u32,
    pub allocation: Allocation,
    /// The picture sent (width, height, fps); `None` while the video is paused.
    pub picture: Option<(u32, u32, u32)>,
    /// Rung changes so far.
    pub steps: u32,
    /// Loss the transport-wide feedback reports (smoothed), 0.0–1.0.
    pub loss: f64,
}

struct State {
    bwe: Estimator,
    estimate: u32,
    /// The loss the clinician's receiver reports last said, if any report came.
    loss: Option<f64>,
    ladder: Ladder,
    applied: Allocation,
    steps: u32,
}

pub(crate) struct RateControl {
    knobs: Knobs,
    shared: Arc<Shared>,
    started: Instant,
    state: Mutex<State>,
}

impl RateControl {
    /// The controller for one call, with the encoders set for the start estimate.
    pub(crate) fn new(knobs: Knobs, shared: &Arc<Shared>) -> Arc<Self> {
        let start = start_estimate(knobs.max_video_bps);
        let knobs_max = knobs.max_video_bps;
        let applied = rate::allocate(start, 0.0, knobs.fec);
        let ladder = Ladder::new(applied.video_bps, Duration::ZERO);
        let control = Arc::new(Self {
            knobs,
            shared: Arc::clone(shared),
            started: Instant::now(),
            state: Mutex::new(State {
                bwe: Estimator::new(start, MIN_ESTIMATE_BPS, max_estimate(knobs_max))
                    .resume_at(rate::estimate_to_resume()),
                estimate: start,
                loss: None,
                ladder,
                applied,
                steps: 0,
            }),
        });
        let state = control.lock();
        control.set_picture(state.ladder.rung());
        control.set_encoders(&state.applied, None);
        drop(state);
        control
    }

    /// Follows the transport-wide feedback of the call's RTP session (one session: BUNDLE).
    /// The session exists once the offer is set; until then this returns false and is tried
    /// again later.
    pub(crate) fn attach(self: &Arc<Self>, webrtc: &gst::Element) -> bool {
        let Some(rtpbin) = webrtc.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin"))
        else {
            return false;
        };
        let Some(session) =
            rtpbin.emit_by_name::<Option<gst::glib::Object>>("get-session", &[&0u32])
        else {
            return false;
        };
        let weak = Arc::downgrade(self);
        session.connect_notify(Some("twcc-stats"), move |session, _| {
            let Some(control) = weak.upgrade() else { return };
            if let Some(stats) = session.property::<Option<gst::Structure>>("twcc-stats") {
                control.on_feedback(&stats);
            }
        });
        tracing::info!("rate control follows transport-wide feedback");
        true
    }

    /// One feedback summary from the RTP session.
    fn on_feedback(&self, stats: &gst::StructureRef) {
        let feedback = Feedback {
            packets: stats.get::<u32>("packets-sent").unwrap_or(0),
            voice_only: self.shared.video_paused.load(Ordering::Relaxed),
            sent_bps: stats.get::<u32>("bitrate-sent").unwrap_or(0),
            loss: stats.get::<f64>("packet-loss-pct").unwrap_or(0.0) / 100.0,
            delay_growth_ns: stats.get::<i64>("avg-delta-of-delta").unwrap_or(0),
        };
        if feedback.sent_bps == 0 {
            return;
        }
        let mut state = self.lock();
        let estimate = state.bwe.update(self.started.elapsed(), feedback);
        tracing::trace!(?feedback, estimate, "transport feedback");
        state.estimate = estimate;
        LAST_ESTIMATE.store(estimate, Ordering::Relaxed);
        self.apply(&mut state);
    }

    /// The loss the clinician's side reports (RTCP receiver reports), 0.0–1.0.
    pub(crate) fn on_loss(&self, loss: f64) {
        let mut state = self.lock();
        state.loss = Some(loss);
        self.apply(&mut state);
    }

    pub(crate) fn snapshot(&self) -> RateSnapshot {
        let state = self.lock();
        RateSnapshot {
            estimate_bps: state.estimate,
            allocation: state.applied,
            picture: state.ladder.rung().map(|r| self.fit(r)),
            steps: state.steps,
            loss: state.bwe.loss(),
        }
    }

    fn apply(&self, state: &mut State) {
        // The loss the receiver reports; without reports (a GStreamer peer sending transport-wide
        // feedback sends none), the feedback's, which counts packets it does not report on as
        // lost and so reads high: capped.
        let loss = state.loss.unwrap_or_else(|| state.bwe.loss().min(0.10));
        let mut next = rate::allocate(state.estimate, loss, self.knobs.fec);
        next.video_bps = next.video_bps.min(self.knobs.max_video_bps);
        if let Some(rung) = state.ladder.update(next.video_bps, self.started.elapsed()) {
            state.steps += 1;
            tracing::info!(picture = ?rung.map(|r| self.fit(r)), estimate = state.estimate, "video step");
            self.set_picture(rung);
        }
        let before = state.applied;
        state.applied = self.set_encoders(&next, Some(&before));
    }

    /// Sets the ladder's caps, or pauses the video (audio only) below the last rung.
    fn set_picture(&self, rung: Option<Rung>) {
        let was_paused = self.shared.video_paused.swap(rung.is_none(), Ordering::SeqCst);
        if let Some(rung) = rung {
            let (w, h, fps) = self.fit(rung);
            self.knobs.picture.set(w, h, fps);
        }
        if was_paused != rung.is_none() {
            self.shared.send(MediaEvent::VideoPaused(rung.is_none()));
        }
    }

    /// Applies what changed enough to matter (5 % for the video bitrate: each change costs the
    /// encoder a reconfiguration).
    /// Returns what is now in force (the video bitrate stays where it was when it moved less).
    fn set_encoders(&self, next: &Allocation, before: Option<&Allocation>) -> Allocation {
        let changed = |f: fn(&Allocation) -> u32| before.is_none_or(|b| f(b) != f(next));
        let video_moved = before.is_none_or(|b| {
            b.video_bps.abs_diff(next.video_bps) as u64 * 20 > b.video_bps.max(1) as u64
        });
        let mut applied = *next;
        if video_moved && next.video_bps > 0 {
            for video_encoder in &self.knobs.video_encoders {
                encoder::set_bitrate(video_encoder, next.video_bps / 1000);
            }
        } else if let Some(before) = before {
            applied.video_bps = before.video_bps;
        }
        if changed(|a| a.audio_bps) {
            self.knobs.opus.set_property("bitrate", next.audio_bps as i32);
        }
        if changed(|a| a.audio_loss_percent) {
            self.knobs.opus.set_property("packet-loss-percentage", next.audio_loss_percent as i32);
        }
        if self.knobs.fec && changed(|a| a.fec_percent) {
            self.knobs.video_transceiver.set_property("fec-percentage", next.fec_percent);
        }
        applied
    }

    fn fit(&self, rung: Rung) -> (u32, u32, u32) {
        let (w, h, fps) = self.knobs.camera;
        rate::fit(rung, w, h, fps)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where a call's estimate starts: near the last call's (links rarely change between visits),
/// else a rate most rural links carry; never above the cap.
fn start_estimate(max_video_bps: u32) -> u32 {
    let last = LAST_ESTIMATE.load(Ordering::Relaxed);
    let start = if last == 0 { FIRST_START_BPS } else { last / 10 * 8 };
    start.clamp(MIN_ESTIMATE_BPS, max_estimate(max_video_bps))
}

/// The most the estimate may reach: the video cap plus voice and overheads.
fn max_estimate(max_video_bps: u32) -> u32 {
    max_video_bps.saturating_add(max_video_bps / 5).saturating_add(100_000)
}

/// The ladder's two capsfilters in the encoder branch: `videorate ! rate ! videoscale ! size`.
/// Each of the two converters only ever changes its own dimension, so a step renegotiates one
/// element at a time (one capsfilter for both raced: videorate was asked for a new size it
/// cannot make, "not negotiated", and the call failed).
pub(crate) struct PictureCaps {
    pub rate: gst::Element,
    pub size: gst::Element,
}

impl PictureCaps {
    pub(crate) fn new(video: &Video) -> Result<Self, MediaError> {
        let caps = Self { rate: make("capsfilter")?, size: make("capsfilter")? };
        caps.set(video.width, video.height, video.fps);
        Ok(caps)
    }

    /// Asks for pictures of `width`x`height` at `fps`.
    pub(crate) fn set(&self, width: u32, height: u32, fps: u32) {
        let rate = gst::Caps::builder("video/x-raw")
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .build();
        let size = gst::Caps::builder("video/x-raw")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        self.rate.set_property("caps", &rate);
        self.size.set_property("caps", &size);
    }
}

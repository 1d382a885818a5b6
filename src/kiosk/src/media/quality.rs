//! How the call is doing, read from webrtcbin's `get-stats` once a second on a thread of the
//! call's own: what the clinician's side reports back (RTT, loss, their NACKs and keyframe
//! requests), what the kiosk receives (frame rate, jitter-buffer losses, concealed audio) and
//! what the rate controller does. Each reading also tunes the call: the loss goes to the rate
//! controller, and the receive jitter buffer follows the RTT so retransmissions arrive in time.
//!
//! No addresses or candidates are read, so every figure is PHI-free and fits device telemetry.
//! Owns: the reading thread, the reduction to [`CallQuality`], the three-level verdict.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::Shared;
use super::control::RateControl;

/// How often the stats are read.
const EVERY: Duration = Duration::from_secs(1);
/// Receive jitter-buffer latency bounds, ms. The low end keeps loopback glass-to-glass short.
const MIN_LATENCY_MS: u32 = 50;
const MAX_LATENCY_MS: u32 = 600;
/// The latency in force at the start of a call, before any RTT is known.
pub(crate) const START_LATENCY_MS: u32 = 80;

/// The three-level indicator both screens show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QualityLevel {
    Poor,
    Fair,
    Good,
}

/// One reading of the call, every figure PHI-free.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallQuality {
    /// Round-trip time to the clinician, ms (from their receiver reports).
    pub rtt_ms: u32,
    /// Share of the kiosk's packets the clinician's side lost, 0.0–1.0 (worst stream).
    pub loss: f64,
    /// Inter-arrival jitter the clinician's side sees, ms (worst stream).
    pub jitter_ms: u32,
    /// What the kiosk sent over the last second, kbit/s (all streams).
    pub sent_kbps: u32,
    /// The rate controller's estimate of the link, kbit/s.
    pub estimate_kbps: u32,
    /// Frames per second the kiosk sends and receives.
    pub sent_fps: f64,
    pub received_fps: f64,
    /// Retransmission and keyframe requests the clinician's side made (cumulative).
    pub nacks_received: u64,
    pub plis_received: u64,
    /// Packets the kiosk's jitter buffers gave up on, and ones that came too late (cumulative).
    pub jitterbuffer_lost: u64,
    pub jitterbuffer_late: u64,
    /// Share of the clinician's audio the kiosk had to conceal, 0.0–1.0 (cumulative).
    pub concealed: f64,
    /// Receive jitter-buffer latency in force, ms.
    pub latency_ms: u32,
    /// The video is paused for lack of bandwidth.
    pub video_paused: bool,
    /// Seconds of the call so far with the video paused.
    pub video_paused_secs: u32,
}

impl CallQuality {
    /// Good, fair or poor, from what the patient and the clinician notice first: a paused or
    /// choppy picture, broken voice, a long delay. (Not from the estimate: it starts low and
    /// climbs over the first seconds of every call, and a good link would read "fair" meanwhile.)
    pub fn level(&self) -> QualityLevel {
        if self.video_paused || self.loss > 0.10 || self.rtt_ms > 800 || self.concealed > 0.08 {
            QualityLevel::Poor
        } else if self.loss > 0.02 || self.rtt_ms > 300 || self.concealed > 0.02 {
            QualityLevel::Fair
        } else {
            QualityLevel::Good
        }
    }
}

/// Counts the clinician's voice frames and the ones lost beyond repair. A lost frame is rebuilt
/// from the in-band FEC of the frame after it (the decoder waits one frame for it); only when
/// that one is lost too is the first concealed (PLC). The count assumes the sender adds FEC, as
/// the kiosk's offer asks (`useinbandfec=1`); a sender that does not makes it read low.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VoiceLoss {
    pub frames: u64,
    pub missing: u64,
    pub unrepaired: u64,
    last_missing: bool,
}

impl VoiceLoss {
    /// One 20 ms frame arrived (`missing: false`) or was reported lost.
    pub fn frame(&mut self, missing: bool) {
        self.frames += 1;
        if missing {
            self.missing += 1;
            if self.last_missing {
                self.unrepaired += 1;
            }
        }
        self.last_missing = missing;
    }

    /// Share of the frames concealed, 0.0–1.0.
    pub fn concealed(&self) -> f64 {
        if self.frames == 0 { 0.0 } else { self.unrepaired as f64 / self.frames as f64 }
    }
}

/// The jitter-buffer latency for a round trip and jitter: long enough for one retransmission
/// (a NACK out and the packet back) plus the jitter, never below what loopback needs.
pub fn latency_for(rtt_ms: u32, jitter_ms: u32) -> u32 {
    (rtt_ms * 6 / 5 + 2 * jitter_ms + 40).clamp(MIN_LATENCY_MS, MAX_LATENCY_MS)
}

/// Whether to move the latency from `current` to `wanted`: only for a change of more than a
/// quarter (each change makes the jitter buffers re-time their output).
pub fn should_retune(current: u32, wanted: u32) -> bool {
    current.abs_diff(wanted) * 4 > current
}

/// The reading thread of one call; stops when dropped.
pub(crate) struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    pub(crate) fn spawn(
        webrtc: &gst::Element,
        shared: &Arc<Shared>,
        control: &Arc<RateControl>,
        latest: &Arc<Mutex<Option<CallQuality>>>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let jitterbuffers = watch_jitterbuffers(webrtc);
        let mut reader = Reader {
            jitterbuffers,
            webrtc: webrtc.downgrade(),
            shared: Arc::clone(shared),
            control: Arc::clone(control),
            latest: Arc::clone(latest),
            last: None,
            latency_ms: START_LATENCY_MS,
            following: false,
            paused_secs: 0,
        };
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("media-stats".into()).spawn(move || {
            let mut next = Instant::now() + EVERY;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= next {
                    next += EVERY;
                    reader.read_once();
                }
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Cumulative counters at the previous reading, for per-second rates.
struct Totals {
    at: Instant,
    bytes_sent: u64,
    frames_sent: u64,
    frames_received: u64,
}

struct Reader {
    /// The receive jitter buffers, as rtpbin makes them.
    jitterbuffers: Arc<Mutex<Vec<gst::glib::WeakRef<gst::Element>>>>,
    webrtc: gst::glib::WeakRef<gst::Element>,
    shared: Arc<Shared>,
    control: Arc<RateControl>,
    latest: Arc<Mutex<Option<CallQuality>>>,
    last: Option<Totals>,
    latency_ms: u32,
    /// Whether the rate controller follows the RTP session's feedback yet.
    following: bool,
    /// Readings (seconds) with the video paused.
    paused_secs: u32,
}

impl Reader {
    fn read_once(&mut self) {
        let Some(webrtc) = self.webrtc.upgrade() else { return };
        if !self.following {
            self.following = self.control.attach(&webrtc);
        }
        let Some(stats) = get_stats(&webrtc, Duration::from_millis(500)) else { return };
        tracing::trace!(%stats, "webrtcbin stats");
        let mut raw = Raw::from_stats(&stats);
        let rtx_rtt_ms = self.read_jitterbuffers(&mut raw);
        let now = Instant::now();
        let totals = Totals {
            at: now,
            bytes_sent: raw.bytes_sent,
            frames_sent: self.shared.local_video_frames.load(Ordering::Relaxed),
            frames_received: self.shared.remote_video_frames.load(Ordering::Relaxed),
        };
        let rate = self.control.snapshot();
        // webrtcbin 1.22 gets no receiver reports from a peer that sends transport-wide feedback
        // (measured with a GStreamer peer); the feedback's loss and the jitter buffers' own
        // retransmission round trips stand in.
        let rtt_ms = raw.rtt_ms.max(rtx_rtt_ms);
        let mut q = CallQuality {
            rtt_ms,
            loss: if raw.has_reports { raw.loss } else { rate.loss },
            jitter_ms: raw.jitter_ms,
            estimate_kbps: rate.estimate_bps / 1000,
            nacks_received: raw.nacks_received,
            plis_received: raw.plis_received,
            jitterbuffer_lost: raw.jitterbuffer_lost,
            jitterbuffer_late: raw.jitterbuffer_late,
            concealed: self.shared.concealed(),
            latency_ms: self.latency_ms,
            video_paused: rate.picture.is_none(),
            video_paused_secs: self.paused_secs + u32::from(rate.picture.is_none()),
            ..CallQuality::default()
        };
        self.paused_secs = q.video_paused_secs;
        if let Some(last) = &self.last {
            let secs = now.duration_since(last.at).as_secs_f64().max(0.001);
            let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
            q.sent_kbps = (per_sec(totals.bytes_sent, last.bytes_sent) * 8.0 / 1000.0) as u32;
            q.sent_fps = per_sec(totals.frames_sent, last.frames_sent);
            q.received_fps = per_sec(totals.frames_received, last.frames_received);
        }
        self.last = Some(totals);
        if raw.has_reports {
            self.control.on_loss(raw.loss);
        }
        if rtt_ms > 0 {
            let wanted = latency_for(rtt_ms, raw.jitter_ms);
            if should_retune(self.latency_ms, wanted) {
                tracing::info!(from = self.latency_ms, to = wanted, "receive latency");
                webrtc.set_property("latency", wanted);
                self.latency_ms = wanted;
                q.latency_ms = wanted;
            }
        }
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(q);
    }
}

impl Reader {
    /// Adds the jitter buffers' losses to `raw`; returns their retransmission round trip, ms
    /// (0 when nothing was retransmitted).
    fn read_jitterbuffers(&self, raw: &mut Raw) -> u32 {
        let jitterbuffers = self.jitterbuffers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut rtt_ns = 0u64;
        raw.jitterbuffer_lost = 0;
        raw.jitterbuffer_late = 0;
        for jb in jitterbuffers.iter().filter_map(|j| j.upgrade()) {
            let stats = jb.property::<gst::Structure>("stats");
            let get = |f: &str| stats.get::<u64>(f).unwrap_or(0);
            raw.jitterbuffer_lost += get("num-lost");
            raw.jitterbuffer_late += get("num-late");
            rtt_ns = rtt_ns.max(get("rtx-rtt"));
        }
        (rtt_ns / 1_000_000) as u32
    }
}

/// Keeps a weak reference to each receive jitter buffer webrtcbin's rtpbin makes.
fn watch_jitterbuffers(webrtc: &gst::Element) -> Arc<Mutex<Vec<gst::glib::WeakRef<gst::Element>>>> {
    let list = Arc::new(Mutex::new(Vec::new()));
    let rtpbin = webrtc.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin"));
    if let Some(rtpbin) = rtpbin {
        let list = Arc::clone(&list);
        rtpbin.connect("new-jitterbuffer", false, move |values| {
            if let Some(Ok(jb)) = values.get(1).map(|v| v.get::<gst::Element>()) {
                list.lock().unwrap_or_else(|e| e.into_inner()).push(jb.downgrade());
            }
            None
        });
    }
    list
}

/// webrtcbin's stats, waited for at most `timeout` (on this thread, never a streaming one).
fn get_stats(webrtc: &gst::Element, timeout: Duration) -> Option<gst::Structure> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
    });
    webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    match rx.recv_timeout(timeout) {
        Ok(stats) => stats,
        Err(_) => {
            promise.interrupt();
            None
        }
    }
}

/// The figures picked out of one `get-stats` structure.
#[derive(Debug, Default)]
struct Raw {
    has_reports: bool,
    rtt_ms: u32,
    loss: f64,
    jitter_ms: u32,
    bytes_sent: u64,
    nacks_received: u64,
    plis_received: u64,
    jitterbuffer_lost: u64,
    jitterbuffer_late: u64,
}

impl Raw {
    fn from_stats(stats: &gst::StructureRef) -> Raw {
        use gst_webrtc::WebRTCStatsType as T;
        let mut raw = Raw::default();
        for (_, value) in stats.iter() {
            let Ok(entry) = value.get::<gst::Structure>() else { continue };
            let Ok(kind) = entry.get::<T>("type") else { continue };
            let u64_of = |field: &str| {
                entry
                    .get::<u64>(field)
                    .or_else(|_| entry.get::<u32>(field).map(u64::from))
                    .or_else(|_| entry.get::<i64>(field).map(|v| v.max(0) as u64))
                    .or_else(|_| entry.get::<i32>(field).map(|v| v.max(0) as u64))
                    .unwrap_or(0)
            };
            match kind {
                T::RemoteInboundRtp => {
                    // The report's own round trip (of 65536ths of a second) where webrtcbin left
                    // `round-trip-time` out.
                    let source = entry.get::<gst::Structure>("gst-rtpsource-stats").ok();
                    let rb_rtt = source
                        .as_ref()
                        .and_then(|s| s.get::<u32>("rb-round-trip").ok())
                        .filter(|&r| r > 0)
                        .map(|r| f64::from(r) / 65536.0);
                    let rtt = entry.get::<f64>("round-trip-time").ok().or(rb_rtt).unwrap_or(-1.0);
                    if rtt.is_finite() && rtt > 0.0 {
                        raw.has_reports = true;
                        raw.rtt_ms = raw.rtt_ms.max((rtt * 1000.0).ceil() as u32);
                    }
                    // webrtcbin 1.22 leaves `fraction-lost` at 0; the receiver report's own
                    // fraction (of 256, since the previous report) is in the source stats.
                    let loss = source
                        .as_ref()
                        .and_then(|s| s.get::<u32>("rb-fractionlost").ok())
                        .map_or(0.0, |f| f64::from(f.min(256)) / 256.0);
                    raw.loss = raw.loss.max(loss);
                    let jitter = entry.get::<f64>("jitter").unwrap_or(0.0);
                    raw.jitter_ms = raw.jitter_ms.max((jitter * 1000.0).max(0.0) as u32);
                }
                T::OutboundRtp => {
                    raw.bytes_sent += u64_of("bytes-sent");
                    raw.nacks_received += u64_of("nack-count");
                    raw.plis_received += u64_of("pli-count");
                }
                _ => {}
            }
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(rtt_ms: u32, loss: f64, estimate_kbps: u32, concealed: f64, paused: bool) -> CallQuality {
        CallQuality {
            rtt_ms,
            loss,
            estimate_kbps,
            concealed,
            video_paused: paused,
            ..CallQuality::default()
        }
    }

    #[test]
    fn the_level_is_what_people_notice_first() {
        use QualityLevel::*;
        let table = [
            (q(20, 0.0, 2500, 0.0, false), Good),
            (q(120, 0.01, 900, 0.01, false), Good),
            (q(300, 0.05, 280, 0.01, false), Fair), // the floor link
            (q(600, 0.0, 1000, 0.0, false), Fair),  // satellite
            (q(20, 0.0, 2500, 0.0, true), Poor),    // video paused
            (q(20, 0.15, 2500, 0.0, false), Poor),
            (q(900, 0.0, 2500, 0.0, false), Poor),
            (q(20, 0.0, 2500, 0.09, false), Poor),
        ];
        for (quality, want) in table {
            assert_eq!(quality.level(), want, "{quality:?}");
        }
    }

    #[test]
    fn only_voice_frames_without_fec_behind_them_count_as_concealed() {
        // (arrivals, missing, unrepaired): a lone loss is repaired from the next frame's FEC;
        // in a run of n losses, all but the last are concealed.
        let table = [
            ("xxxxxxxxxx", 0, 0),
            ("xx-xxxx-xx", 2, 0),
            ("xx--xxxxxx", 2, 1),
            ("x----xxxxx", 4, 3),
            ("-x-x-x-x-x", 5, 0),
        ];
        for (arrivals, missing, unrepaired) in table {
            let mut v = VoiceLoss::default();
            arrivals.chars().for_each(|c| v.frame(c == '-'));
            assert_eq!(
                (v.frames, v.missing, v.unrepaired),
                (10, missing, unrepaired),
                "{arrivals}"
            );
        }
        let mut v = VoiceLoss::default();
        assert_eq!(v.concealed(), 0.0);
        "x----xxxxx".chars().for_each(|c| v.frame(c == '-'));
        assert!((v.concealed() - 0.3).abs() < 1e-9);
    }

    #[test]
    fn latency_covers_one_retransmission_and_the_jitter() {
        assert_eq!(latency_for(0, 0), 50, "loopback");
        assert_eq!(latency_for(20, 2), 68);
        assert_eq!(latency_for(300, 5), 410, "floor link");
        assert_eq!(latency_for(120, 30), 244, "LTE-poor");
        assert_eq!(latency_for(600, 10), 600, "satellite, capped");
    }

    #[test]
    fn latency_moves_only_for_a_real_change() {
        assert!(!should_retune(400, 420));
        assert!(!should_retune(400, 320));
        assert!(should_retune(400, 290));
        assert!(should_retune(80, 410));
    }
}

//! What the kiosk tells fleetd about itself: the retained device state and the diagnostics
//! bundle, and the health of camera, microphone and speaker as the last call showed it.
//!
//! Owns: deriving health from a call's counters (pure, [`health_after_call`]) and assembling
//! the PHI-free state and diagnostics from the controller's data. Must never: include a visit
//! id, a person's name, media, addresses, or anything a patient said or showed — only
//! counts, durations, versions and the kiosk's own clinic and room names.

use std::time::Duration;

use telekiosk_protocol::device::{
    ConfigRefusal, DeviceState, Health, LastVisit, NetworkQuality, PartStatus, Presence,
};
use telekiosk_protocol::update::OsState;
use telekiosk_protocol::visit::MAX_NAME_BYTES;

use crate::media::{CallQuality, CallStats};

/// A device part counts as failed when it gave nothing for this long while it should have.
pub const SILENT_FAILURE: Duration = Duration::from_secs(5);

/// How one call went, as far as health is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallReport {
    /// The call's counters when it stopped.
    pub stats: CallStats,
    /// How long the pipeline ran.
    pub ran: Duration,
    /// How long media was connected (zero if it never was).
    pub connected: Duration,
    /// The pipeline did not even start (camera, microphone or encoder refused).
    pub start_failed: bool,
}

/// Health after a call: a part that delivered is Ok; one that delivered nothing although the
/// call gave it time is Failed; a call too short to tell leaves the part as it was.
pub fn health_after_call(before: &Health, call: &CallReport) -> Health {
    if call.start_failed {
        return Health {
            camera: PartStatus::Failed,
            microphone: PartStatus::Failed,
            ..before.clone()
        };
    }
    let judge = |delivered: u64, had: Duration, was: PartStatus| {
        if delivered > 0 {
            PartStatus::Ok
        } else if had >= SILENT_FAILURE {
            PartStatus::Failed
        } else {
            was
        }
    };
    Health {
        camera: judge(call.stats.local_video_frames, call.ran, before.camera),
        microphone: judge(call.stats.local_audio_buffers, call.ran, before.microphone),
        // The speaker can only play once the clinician's audio arrives: judged on connected time.
        speaker: judge(call.stats.remote_audio_buffers, call.connected, before.speaker),
        tpm: before.tpm,
    }
}

/// Health before any call: Failed everywhere if the media system could not start, else not
/// yet known; the TPM as bring-up found it.
pub fn initial_health(media_ok: bool, tpm: PartStatus) -> Health {
    let media = if media_ok { PartStatus::Unknown } else { PartStatus::Failed };
    Health { camera: media, microphone: media, speaker: media, tpm }
}

/// The facts a state report is made of.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub clinic: &'a str,
    pub room: &'a str,
    pub config_version: u64,
    pub refusal: Option<&'a ConfigRefusal>,
    pub uptime: Duration,
    pub health: &'a Health,
    pub network: Option<&'a NetworkQuality>,
    pub last_visit: Option<&'a LastVisit>,
    /// The operating system, on an appliance.
    pub os: Option<&'a OsState>,
}

/// The retained state message.
pub fn device_state(f: &Facts<'_>) -> DeviceState {
    DeviceState {
        presence: Presence::Online,
        software: env!("CARGO_PKG_VERSION").into(),
        clinic: clip(f.clinic, MAX_NAME_BYTES),
        room: clip(f.room, MAX_NAME_BYTES),
        config_version: f.config_version,
        config_refusal: f
            .refusal
            .map(|r| ConfigRefusal { version: r.version, reason: clip(&r.reason, 512) }),
        uptime_secs: f.uptime.as_secs(),
        health: f.health.clone(),
        network: f.network.cloned(),
        last_visit: f.last_visit.cloned(),
        os: f.os.cloned().map(Box::new),
    }
}

/// The diagnostics bundle (JSON text for the command result's `detail`).
pub fn diagnostics(f: &Facts<'_>, profile: &str, recent_errors: &[String]) -> String {
    serde_json::json!({
        "software": env!("CARGO_PKG_VERSION"),
        "profile": profile,
        "health": f.health,
        "config_version": f.config_version,
        "uptime_secs": f.uptime.as_secs(),
        "recent_errors": recent_errors,
    })
    .to_string()
}

/// At most `max` bytes, cut at a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The call's network at its worst so far, with one more reading (once a second).
pub(super) fn worst_of(so_far: Option<NetworkQuality>, q: &CallQuality) -> NetworkQuality {
    let level = format!("{:?}", q.level()).to_lowercase();
    let rank = |l: &str| ["poor", "fair", "good"].iter().position(|x| *x == l).unwrap_or(3);
    let now = NetworkQuality {
        rtt_ms: q.rtt_ms,
        loss_permille: (q.loss * 1000.0).round() as u32,
        min_estimate_kbps: q.estimate_kbps,
        worst_level: level,
        video_paused_secs: q.video_paused_secs,
    };
    let Some(w) = so_far else { return now };
    NetworkQuality {
        rtt_ms: w.rtt_ms.max(now.rtt_ms),
        loss_permille: w.loss_permille.max(now.loss_permille),
        min_estimate_kbps: match (w.min_estimate_kbps, now.min_estimate_kbps) {
            (0, b) | (b, 0) => b,
            (a, b) => a.min(b),
        },
        worst_level: if rank(&now.worst_level) < rank(&w.worst_level) {
            now.worst_level
        } else {
            w.worst_level
        },
        video_paused_secs: w.video_paused_secs.max(now.video_paused_secs),
    }
}

/// The kiosk's resident memory (KiB), from `/proc/self/status`; `None` where there is none.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(video: u64, audio: u64, speaker: u64, ran: u64, connected: u64) -> CallReport {
        CallReport {
            stats: CallStats {
                local_video_frames: video,
                local_audio_buffers: audio,
                remote_audio_buffers: speaker,
                remote_video_frames: 0,
                ..CallStats::default()
            },
            ran: Duration::from_secs(ran),
            connected: Duration::from_secs(connected),
            start_failed: false,
        }
    }

    #[test]
    fn parts_that_delivered_are_ok_silent_ones_failed_and_short_calls_prove_nothing() {
        use PartStatus::*;
        let unknown = initial_health(true, Ok);
        let table = [
            (call(300, 500, 400, 20, 15), (Ok, Ok, Ok), "a good call"),
            (call(0, 500, 400, 20, 15), (Failed, Ok, Ok), "no camera frames"),
            (call(300, 0, 400, 20, 15), (Ok, Failed, Ok), "no microphone"),
            (call(300, 500, 0, 20, 15), (Ok, Ok, Failed), "nothing reached the speaker"),
            (call(300, 500, 0, 20, 0), (Ok, Ok, Unknown), "cancelled while waiting"),
            (call(0, 0, 0, 1, 0), (Unknown, Unknown, Unknown), "cancelled at once"),
        ];
        for (report, (camera, microphone, speaker), what) in table {
            let h = health_after_call(&unknown, &report);
            assert_eq!(
                (h.camera, h.microphone, h.speaker, h.tpm),
                (camera, microphone, speaker, Ok),
                "{what}"
            );
        }
        let failed = CallReport { start_failed: true, ..CallReport::default() };
        let h = health_after_call(&unknown, &failed);
        assert_eq!((h.camera, h.microphone), (Failed, Failed));
        assert_eq!(initial_health(false, Failed).speaker, Failed);
    }

    #[test]
    fn a_calls_network_summary_keeps_its_worst_moments() {
        use crate::media::CallQuality;
        let reading = |rtt_ms, loss, estimate_kbps, paused, video_paused_secs| CallQuality {
            rtt_ms,
            loss,
            estimate_kbps,
            video_paused: paused,
            video_paused_secs,
            ..CallQuality::default()
        };
        let mut n = None;
        for q in [
            reading(40, 0.0, 2500, false, 0),
            reading(420, 0.06, 180, false, 0),
            reading(60, 0.01, 0, true, 3),
            reading(50, 0.0, 900, false, 3),
        ] {
            n = Some(worst_of(n, &q));
        }
        let n = n.unwrap();
        assert_eq!((n.rtt_ms, n.loss_permille, n.min_estimate_kbps), (420, 60, 180));
        assert_eq!((n.worst_level.as_str(), n.video_paused_secs), ("poor", 3));
    }

    #[test]
    fn state_and_diagnostics_hold_no_visit_data_and_fit_the_protocol_limits() {
        use telekiosk_protocol::Validate;
        let health = initial_health(true, PartStatus::Ok);
        let refusal = ConfigRefusal { version: 9, reason: "r".repeat(2000) };
        let last = LastVisit { ended_at: 1_760_000_000, duration_secs: 300 };
        let facts = Facts {
            clinic: "Maple Valley Clinic",
            room: &"Room ".repeat(100),
            config_version: 8,
            refusal: Some(&refusal),
            uptime: Duration::from_secs(3600),
            health: &health,
            network: None,
            last_visit: Some(&last),
            os: None,
        };
        let state = device_state(&facts);
        state.validate().unwrap();
        assert_eq!((state.config_version, state.uptime_secs), (8, 3600));
        assert_eq!(state.last_visit.as_ref(), Some(&last));
        let text = diagnostics(&facts, "dev", &["WARN telekiosk: x".into()]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["config_version"], 8);
        assert_eq!(v["profile"], "dev");
        assert_eq!(v["recent_errors"][0], "WARN telekiosk: x");
        assert_eq!(v["health"]["tpm"], "ok");
    }
}

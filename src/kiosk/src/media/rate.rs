//! How a bandwidth estimate becomes a call: the split between voice, forward error correction and
//! video, and the picture size and frame rate that fit the video's share (the ladder). Plain
//! functions over plain data; the GStreamer side ([`super::control`]) only applies the result.
//!
//! Voice comes first: a visit with a clear voice and a small picture is a visit; a sharp picture
//! with broken voice is not. Below the ladder's last rung the video pauses (audio only) and comes
//! back by itself when the estimate recovers.

use std::time::Duration;

/// Bytes of IPv4 + UDP + RTP + SRTP tag + header extensions per packet.
const PACKET_OVERHEAD_BYTES: u32 = 58;
/// Opus packets per second (20 ms frames).
const AUDIO_PACKETS_PER_SEC: u32 = 50;
/// What end-to-end encryption adds to each Opus frame: its SFrame header and 16-byte tag.
const E2EE_AUDIO_FRAME_BYTES: u32 = 20;
/// What it adds to each video frame: header, tag and trailer of a slice, with emulation
/// prevention (the e2ee bench measures 39 bytes at 720p), at the highest frame rate sent.
const E2EE_VIDEO_BPS: u32 = 40 * 8 * 30;
/// Share of the estimate left for RTCP and the fleet link (MQTT keepalives, signalling), in %.
const HEADROOM_PERCENT: u32 = 5;
/// Share of what remains that the video encoder is told to use: encoders overshoot on keyframes,
/// and each video packet carries headers too (about 6 % at the sizes sent on slow links). At
/// 85 % the floor link was still overrun in one second of nine (x264 within its VBV, plus the
/// retransmissions of what the overrun dropped); 80 % leaves room for both.
const ENCODER_MARGIN_PERCENT: u32 = 80;
/// Highest FEC share of the video, in %.
const MAX_FEC_PERCENT: u32 = 25;
/// Video below this is not worth sending: the call goes audio only.
pub const MIN_VIDEO_BPS: u32 = 50_000;
/// A step up waits this long after the last change (and needs 20 % more than the rung asks).
pub const UP_HOLD: Duration = Duration::from_secs(5);
/// A step down waits this long after the last change (the estimate's dips are short).
pub const DOWN_HOLD: Duration = Duration::from_secs(1);

/// One rung of the ladder: the picture height (width follows the camera's shape) and frame rate
/// sent while the video's share is at least `min_video_bps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub min_video_bps: u32,
    pub height: u32,
    pub fps: u32,
}

/// The ladder, best first. Starting points measured with x264 on the floor and LTE-poor links
/// (see the media bench); the camera's own size and rate cap every rung.
pub const LADDER: [Rung; 5] = [
    Rung { min_video_bps: 1_000_000, height: 720, fps: 30 },
    Rung { min_video_bps: 550_000, height: 540, fps: 30 },
    Rung { min_video_bps: 280_000, height: 360, fps: 25 },
    Rung { min_video_bps: 140_000, height: 270, fps: 15 },
    Rung { min_video_bps: MIN_VIDEO_BPS, height: 180, fps: 15 },
];

/// What the sender does with one estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// Opus encoder bitrate, bit/s.
    pub audio_bps: u32,
    /// Opus `packet-loss-percentage`: how much in-band FEC it spends.
    pub audio_loss_percent: u32,
    /// ULPFEC share of the video, in % (0 while loss is low).
    pub fec_percent: u32,
    /// Video encoder target, bit/s (0 when the video is paused).
    pub video_bps: u32,
}

/// Splits `estimate_bps` (everything the link takes, all overheads included) given the loss the
/// far end reports (`loss`, 0.0–1.0).
pub fn allocate(estimate_bps: u32, loss: f64, fec_enabled: bool) -> Allocation {
    let loss_percent = (loss.clamp(0.0, 1.0) * 100.0).round() as u32;
    let audio_bps = match estimate_bps {
        600_000.. => 32_000,
        300_000.. => 24_000,
        _ => 16_000,
    };
    let audio_on_wire =
        audio_bps + (PACKET_OVERHEAD_BYTES + E2EE_AUDIO_FRAME_BYTES) * 8 * AUDIO_PACKETS_PER_SEC;
    let after_audio = (estimate_bps as u64 * (100 - HEADROOM_PERCENT) as u64 / 100)
        .saturating_sub((audio_on_wire + E2EE_VIDEO_BPS) as u64);
    let fec_percent = if fec_enabled && loss_percent >= 1 && after_audio >= 150_000 {
        (3 * loss_percent).min(MAX_FEC_PERCENT)
    } else {
        0
    };
    // Retransmissions cost about what is lost; FEC costs its share.
    let repair = 100 + fec_percent as u64 + loss_percent.min(20) as u64;
    let video = after_audio * 100 / repair * ENCODER_MARGIN_PERCENT as u64 / 100;
    let video_bps =
        if video < MIN_VIDEO_BPS as u64 { 0 } else { video.min(u32::MAX as u64) as u32 };
    Allocation {
        audio_bps,
        audio_loss_percent: (loss_percent + loss_percent / 2).clamp(5, 25),
        fec_percent,
        video_bps,
    }
}

/// The smallest estimate on which the paused video resumes on the ladder's last rung (its share
/// pays for the rung with the ladder's margin, at up to 10 % loss).
pub fn estimate_to_resume() -> u32 {
    let needed = LADDER[LADDER.len() - 1].min_video_bps as u64 * 120 / 100;
    let pays = |estimate: u32| allocate(estimate, 0.10, false).video_bps as u64 >= needed;
    let (mut lo, mut hi) = (0u32, 10_000_000u32);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pays(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Which rung the video is on, with hysteresis: down as soon as the share no longer pays for the
/// rung (after [`DOWN_HOLD`]), up only when the share has paid for the next rung with 20 % to
/// spare for a whole [`UP_HOLD`], one rung at a time. `None` is "video paused".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    current: Option<usize>,
    since: Duration,
    /// Since when the share has paid for the next rung up (with margin), if it has.
    up_since: Option<Duration>,
}

impl Ladder {
    /// Starts on the best rung that `video_bps` pays for, at time `now`.
    pub fn new(video_bps: u32, now: Duration) -> Self {
        Self { current: rung_for(video_bps), since: now, up_since: None }
    }

    /// The rung in force (`None`: paused).
    pub fn rung(&self) -> Option<Rung> {
        self.current.map(|i| LADDER[i])
    }

    /// Feeds the video's share at time `now`; returns the new rung when it changed.
    pub fn update(&mut self, video_bps: u32, now: Duration) -> Option<Option<Rung>> {
        let held = now.saturating_sub(self.since);
        let fits = rung_for(video_bps);
        let next = match (self.current, fits) {
            // Worse than the current rung: step straight to the one that fits.
            (Some(cur), fits) if fits.is_none_or(|f| f > cur) => {
                if held < DOWN_HOLD {
                    return None;
                }
                fits
            }
            // Better: one rung up, with margin.
            (cur, Some(_)) => {
                let up = cur.map_or(LADDER.len() - 1, |c| c.saturating_sub(1));
                let worth = video_bps as u64 * 100 >= LADDER[up].min_video_bps as u64 * 120;
                if !worth {
                    self.up_since = None;
                }
                let up_since = *self.up_since.get_or_insert(now);
                let sustained = now.saturating_sub(up_since) >= UP_HOLD;
                if cur == Some(up) || !worth || held < UP_HOLD || !sustained {
                    return None;
                }
                Some(up)
            }
            _ => return None,
        };
        if next == self.current {
            return None;
        }
        self.current = next;
        self.since = now;
        self.up_since = None;
        Some(self.rung())
    }
}

/// Index of the best rung `video_bps` pays for.
fn rung_for(video_bps: u32) -> Option<usize> {
    LADDER.iter().position(|r| video_bps >= r.min_video_bps)
}

/// The picture a rung asks of a camera of `width`x`height` at `fps`: never larger or faster
/// than the camera, aspect kept, even sizes (I420).
pub fn fit(rung: Rung, width: u32, height: u32, fps: u32) -> (u32, u32, u32) {
    let h = rung.height.min(height);
    let w = (width as u64 * h as u64 / height.max(1) as u64) as u32;
    ((w & !1).max(2), (h & !1).max(2), rung.fps.min(fps).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn estimates_split_voice_first_then_fec_then_video() {
        // (estimate, loss, fec on) → (audio, opus loss %, fec %, video)
        let table = [
            (2_500_000, 0.0, true, (32_000, 5, 0, 1_841_760)),
            (600_000, 0.02, false, (32_000, 5, 0, 389_960)),
            (300_000, 0.05, false, (24_000, 7, 0, 167_771)),
            (300_000, 0.05, true, (24_000, 7, 15, 146_800)),
            (250_000, 0.05, true, (16_000, 7, 15, 120_466)),
            (127_000, 0.0, true, (16_000, 5, 0, 51_080)),
            (100_000, 0.0, true, (16_000, 5, 0, 0)),
            (0, 1.0, true, (16_000, 25, 0, 0)),
        ];
        for (est, loss, fec, want) in table {
            let a = allocate(est, loss, fec);
            assert_eq!(
                (a.audio_bps, a.audio_loss_percent, a.fec_percent, a.video_bps),
                want,
                "estimate {est}, loss {loss}"
            );
        }
    }

    #[test]
    fn the_split_never_exceeds_the_estimate() {
        for est in (0..3_000_000).step_by(7_919) {
            for loss in [0.0, 0.02, 0.05, 0.2] {
                let a = allocate(est, loss, true);
                let wire = a.audio_bps + 23_200 + a.video_bps * (100 + a.fec_percent) / 100;
                assert!(wire <= est.max(39_200), "{est} {loss} {a:?}");
            }
        }
    }

    #[test]
    fn the_ladder_steps_down_quickly_and_up_slowly_one_rung_at_a_time() {
        let mut l = Ladder::new(2_000_000, Duration::ZERO);
        assert_eq!(l.rung().unwrap().height, 720);
        // A dip within the down-hold is ignored; after it, straight to the rung that fits.
        assert_eq!(l.update(200_000, S / 2), None);
        assert_eq!(l.update(200_000, 2 * S), Some(Some(LADDER[3])));
        // Recovery: only once the share has paid for the next rung, with margin, for 5 s.
        assert_eq!(l.update(2_000_000, 4 * S), None);
        assert_eq!(l.update(300_000, 8 * S), None, "280k rung needs 336k");
        assert_eq!(l.update(2_000_000, 9 * S), None, "only just");
        assert_eq!(l.update(2_000_000, 14 * S), Some(Some(LADDER[2])));
        assert_eq!(l.update(2_000_000, 18 * S), None, "the next rung's 5 s start now");
        assert_eq!(l.update(2_000_000, 23 * S), Some(Some(LADDER[1])));
        assert_eq!(l.update(2_000_000, 28 * S), None);
        assert_eq!(l.update(2_000_000, 33 * S), Some(Some(LADDER[0])));
        assert_eq!(l.update(2_000_000, 40 * S), None, "already at the top");
    }

    #[test]
    fn below_the_last_rung_the_video_pauses_and_comes_back() {
        let mut l = Ladder::new(300_000, Duration::ZERO);
        assert_eq!(l.update(0, 2 * S), Some(None));
        assert_eq!(l.rung(), None);
        assert_eq!(l.update(55_000, 8 * S), None, "needs 20 % over the last rung");
        assert_eq!(l.update(61_000, 8 * S), None);
        assert_eq!(l.update(55_000, 10 * S), None, "not sustained");
        assert_eq!(l.update(61_000, 11 * S), None);
        assert_eq!(l.update(61_000, 16 * S), Some(Some(LADDER[4])));
        assert_eq!(Ladder::new(10_000, Duration::ZERO).rung(), None);
    }

    #[test]
    fn a_rung_never_asks_more_than_the_camera_gives() {
        assert_eq!(fit(LADDER[0], 1280, 720, 30), (1280, 720, 30));
        assert_eq!(fit(LADDER[2], 1280, 720, 30), (640, 360, 25));
        assert_eq!(fit(LADDER[3], 1280, 720, 30), (480, 270, 15));
        assert_eq!(fit(LADDER[4], 1280, 720, 30), (320, 180, 15));
        assert_eq!(fit(LADDER[0], 640, 480, 15), (640, 480, 15));
        assert_eq!(fit(LADDER[3], 640, 480, 10), (360, 270, 10));
    }
}

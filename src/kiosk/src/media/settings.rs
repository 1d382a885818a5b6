//! Per-call settings from the fleet config: caps on what the hardware profile sends, and the
//! STUN/TURN servers webrtcbin uses. Read when a call starts, so a new config takes effect at
//! the next visit and never disturbs the one in progress.
//!
//! Owns: fitting the profile's video into the caps (aspect ratio kept). Must never: raise
//! anything above what the profile says the hardware does.

use crate::profile::Video;

/// Caps and ICE servers for one call. [`CallSettings::default`] leaves the profile as it is and
/// uses no STUN/TURN server (loopback and LAN only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// Widest picture sent, in pixels.
    pub max_width: u32,
    /// Tallest picture sent, in pixels.
    pub max_height: u32,
    /// Most frames per second sent.
    pub max_fps: u32,
    /// Highest encoder target bitrate, kbit/s.
    pub max_bitrate_kbps: u32,
    /// webrtcbin `stun-server`, e.g. `stun://stun.example.org:3478`.
    pub stun: Option<String>,
    /// webrtcbin TURN servers, e.g. `turn://user:password@turn.example.org:3478`.
    pub turn: Vec<String>,
    /// Local addresses ICE may use (empty: every interface). Tests name 127.0.0.1.
    pub local_addresses: Vec<String>,
    /// Only relayed (TURN) paths may be used: for firewalls that allow nothing else.
    pub relay_only: bool,
    /// The UDP ports ICE may use, `(min, max)`; `None`: any.
    pub rtp_ports: Option<(u16, u16)>,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            max_width: u32::MAX,
            max_height: u32::MAX,
            max_fps: u32::MAX,
            max_bitrate_kbps: u32::MAX,
            stun: None,
            turn: vec![],
            relay_only: false,
            rtp_ports: None,
            local_addresses: vec![],
        }
    }
}

impl CallSettings {
    /// The profile's video within these caps: the picture scaled down (never up) to fit both
    /// the width and height caps, aspect ratio kept, even sizes (I420); fps and bitrate capped.
    pub fn cap(&self, video: &Video) -> Video {
        let scale = (self.max_width as f64 / video.width as f64)
            .min(self.max_height as f64 / video.height as f64)
            .min(1.0);
        let even = |v: u32, s: f64| (((v as f64 * s).floor() as u32) & !1).max(2);
        Video {
            width: even(video.width, scale),
            height: even(video.height, scale),
            fps: video.fps.min(self.max_fps).max(1),
            bitrate_kbps: video.bitrate_kbps.min(self.max_bitrate_kbps),
            ..video.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> Video {
        Video {
            source: "videotestsrc".into(),
            encoders: vec!["x264enc".into()],
            width,
            height,
            fps,
            bitrate_kbps,
            fec: false,
            stamp_time: false,
        }
    }

    fn caps(max_width: u32, max_height: u32, max_fps: u32, max_bitrate_kbps: u32) -> CallSettings {
        CallSettings { max_width, max_height, max_fps, max_bitrate_kbps, ..CallSettings::default() }
    }

    #[test]
    fn caps_scale_the_picture_down_keeping_its_shape_and_never_up() {
        let table = [
            (video(1280, 720, 30, 2500), caps(640, 1080, 30, 6000), (640, 360, 30, 2500)),
            (video(1280, 720, 30, 2500), caps(1920, 360, 15, 400), (640, 360, 15, 400)),
            (video(1280, 720, 30, 2500), caps(1920, 1080, 30, 6000), (1280, 720, 30, 2500)),
            (video(640, 480, 25, 800), caps(1280, 720, 30, 2500), (640, 480, 25, 800)),
            (video(1920, 1080, 30, 4000), caps(1000, 1000, 30, 6000), (1000, 562, 30, 4000)),
        ];
        for (profile, settings, want) in table {
            let v = settings.cap(&profile);
            assert_eq!((v.width, v.height, v.fps, v.bitrate_kbps), want, "{settings:?}");
        }
        assert_eq!(
            CallSettings::default().cap(&video(1280, 720, 30, 2500)),
            video(1280, 720, 30, 2500)
        );
    }
}

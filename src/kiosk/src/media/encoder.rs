//! Which H.264 encoder to use, and how to set it or VP8 (offered beside H.264 for browsers
//! without an H.264 decoder) up for a live call. Every board-specific quirk
//! lives in [`configure`], keyed by the element's name, with one named function per workaround;
//! nothing else in the kiosk knows about encoders.

use gst::prelude::*;

use super::{MediaError, exists};
use crate::profile::Video;

/// The first encoder of `candidates` that exists on this machine.
///
/// The profile lists hardware encoders first and a software one last; when none exists the
/// error lists them all.
pub fn choose_encoder(candidates: &[String]) -> Result<String, MediaError> {
    gst::init()?;
    candidates
        .iter()
        .find(|name| exists(name))
        .cloned()
        .ok_or_else(|| MediaError::NoEncoder { candidates: candidates.to_vec() })
}

/// What the pipeline must put around a configured encoder.
#[derive(Debug)]
pub(crate) struct EncoderSetup {
    /// The raw-video converter in front of the encoder (`videoconvert`, or a hardware one).
    pub converter: &'static str,
    /// Caps between the encoder and `h264parse` (or the VP8 payloader).
    pub caps: gst::Caps,
}

/// Seconds between scheduled keyframes. Lost pictures are repaired by retransmission (NACK) and
/// keyframe requests (PLI), so scheduled keyframes are rare: each is a burst that a slow link
/// turns into loss.
const KEYFRAME_EVERY_SECS: u32 = 10;

/// Every encoder this table knows how to tune and drive; a hardware profile lists only these
/// (the profile schema test checks it).
pub const KNOWN_ENCODERS: &[&str] = &[
    "x264enc",
    "openh264enc",
    "vah264enc",
    "vah264lpenc",
    "vaapih264enc",
    "qsvh264enc",
    "nvh264enc",
    "nvcudah264enc",
    "nvv4l2h264enc",
    "v4l2h264enc",
    "vpuenc_h264",
    "vp8enc",
];

/// The encoders of [`KNOWN_ENCODERS`] that run on the processor; every other one is a hardware
/// block (GPU, VPU, V4L2 codec).
const SOFTWARE_ENCODERS: &[&str] = &["x264enc", "openh264enc", "vp8enc"];

/// True for an encoder that runs on a hardware block rather than the processor.
pub fn is_hardware(name: &str) -> bool {
    !SOFTWARE_ENCODERS.contains(&name)
}

/// Configures `encoder` for low-latency live video at `kbps` and the profile's frame rate, and
/// says what must surround it.
pub(crate) fn configure(encoder: &gst::Element, video: &Video, kbps: u32) -> EncoderSetup {
    let name = factory_name(encoder);
    // Browsers decode constrained-baseline everywhere; it also rules out B-frames.
    let baseline = gst::Caps::builder("video/x-h264").field("profile", "constrained-baseline");
    let keyframe_every = KEYFRAME_EVERY_SECS * video.fps;
    set_bitrate(encoder, kbps);
    match name.as_str() {
        "x264enc" => x264enc_zero_latency(encoder, keyframe_every),
        "openh264enc" => openh264enc_bitrate_mode(encoder, keyframe_every),
        "vah264enc" | "vah264lpenc" => vah264enc_cbr(encoder, keyframe_every),
        // NXP's i.MX VPU (imx-gst1.0-plugin): its GOP is in frames.
        "vpuenc_h264" => set(encoder, "gop-size", &keyframe_every.to_string()),
        "vaapih264enc" => vaapih264enc_cbr(encoder, keyframe_every),
        "v4l2h264enc" => {
            v4l2h264enc_controls(encoder, kbps, keyframe_every);
            return EncoderSetup { converter: "videoconvert", caps: v4l2h264enc_level_caps() };
        }
        "vp8enc" => {
            vp8enc_realtime(encoder, keyframe_every);
            return EncoderSetup {
                converter: "videoconvert",
                caps: gst::Caps::new_empty_simple("video/x-vp8"),
            };
        }
        "nvv4l2h264enc" => {
            nvv4l2h264enc_low_latency(encoder, keyframe_every);
            // Jetson's encoder takes NVMM memory, its own converter makes it; its caps carry no
            // profile field, so the profile is set by property instead.
            return EncoderSetup {
                converter: "nvvidconv",
                caps: gst::Caps::new_empty_simple("video/x-h264"),
            };
        }
        other => tracing::warn!(encoder = other, "no tuning known for this encoder; defaults used"),
    }
    EncoderSetup { converter: "videoconvert", caps: baseline.build() }
}

/// Sets the encoder's target bitrate, live: the rate controller calls this as the network's
/// estimate moves. The one place that knows each encoder's bitrate property and unit.
pub(crate) fn set_bitrate(encoder: &gst::Element, kbps: u32) {
    let kbps = kbps.max(1);
    match factory_name(encoder).as_str() {
        // kbit/s
        "x264enc" | "vah264enc" | "vah264lpenc" | "vaapih264enc" | "nvh264enc"
        | "nvcudah264enc" | "qsvh264enc" | "vpuenc_h264" => {
            set(encoder, "bitrate", &kbps.to_string())
        }
        // bit/s
        "openh264enc" | "nvv4l2h264enc" => set(encoder, "bitrate", &(kbps * 1000).to_string()),
        "vp8enc" | "vp9enc" => set(encoder, "target-bitrate", &(kbps * 1000).to_string()),
        // A V4L2 control; GStreamer 1.22 reads extra-controls only when the device starts,
        // so on these boards the bitrate in force is the one the call started with.
        "v4l2h264enc" => {}
        other => tracing::warn!(encoder = other, "no bitrate property known for this encoder"),
    }
}

fn factory_name(element: &gst::Element) -> String {
    element.factory().map(|f| f.name().to_string()).unwrap_or_default()
}

/// x264 in software: no look-ahead or B-frames (`zerolatency`), cheapest preset (FIELD-NOTES:
/// ≈ 31–38 % of one core for 720p30 at 2.5 Mb/s with both ends on one machine). A VBV of 150 ms
/// (default 600 ms) keeps keyframes from leaving as bursts that overflow a slow link's queue.
fn x264enc_zero_latency(enc: &gst::Element, keyframe_every: u32) {
    set(enc, "tune", "zerolatency");
    set(enc, "speed-preset", "ultrafast");
    set(enc, "key-int-max", &keyframe_every.to_string());
    set(enc, "vbv-buf-capacity", "150");
}

/// OpenH264 defaults to "quality" rate control, which ignores the bitrate.
fn openh264enc_bitrate_mode(enc: &gst::Element, keyframe_every: u32) {
    set(enc, "rate-control", "bitrate");
    set(enc, "gop-size", &keyframe_every.to_string());
    set(enc, "complexity", "low");
    set(enc, "usage-type", "camera");
}

/// VA (gst-plugins-bad `va`): constant bitrate, no B-frames.
fn vah264enc_cbr(enc: &gst::Element, keyframe_every: u32) {
    set(enc, "rate-control", "cbr");
    set(enc, "key-int-max", &keyframe_every.to_string());
    set(enc, "b-frames", "0");
}

/// VA-API (gstreamer-vaapi): constant bitrate, keyframe period, no B-frames.
fn vaapih264enc_cbr(enc: &gst::Element, keyframe_every: u32) {
    set(enc, "rate-control", "cbr");
    set(enc, "keyframe-period", &keyframe_every.to_string());
    set(enc, "max-bframes", "0");
}

/// V4L2 stateful encoders (Raspberry Pi and others) take bitrate (bit/s) and GOP as V4L2
/// controls; SPS/PPS must repeat before every keyframe so a late joiner can decode.
fn v4l2h264enc_controls(enc: &gst::Element, kbps: u32, keyframe_every: u32) {
    let controls = format!(
        "controls,video_bitrate={},h264_i_frame_period={keyframe_every},repeat_sequence_header=1",
        kbps * 1000
    );
    set(enc, "extra-controls", &controls);
}

/// The Raspberry Pi's v4l2h264enc fails to negotiate unless downstream caps fix a level.
fn v4l2h264enc_level_caps() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("profile", "constrained-baseline")
        .field("level", "4")
        .build()
}

/// libvpx VP8 in software, as browsers run it for calls: realtime deadline, a fast speed step,
/// constant bitrate, no look-ahead (each frame leaves at once), and error resilience so a lost
/// packet damages less than the rest of the picture up to the next keyframe.
fn vp8enc_realtime(enc: &gst::Element, keyframe_every: u32) {
    set(enc, "deadline", "1");
    set(enc, "cpu-used", "8");
    set(enc, "end-usage", "cbr");
    set(enc, "lag-in-frames", "0");
    set(enc, "keyframe-max-dist", &keyframe_every.to_string());
    set(enc, "error-resilient", "default");
    set(enc, "threads", "2");
}

/// NVIDIA Jetson: SPS/PPS with every IDR, fastest preset, baseline profile (its property, as its
/// caps carry none).
fn nvv4l2h264enc_low_latency(enc: &gst::Element, keyframe_every: u32) {
    set(enc, "iframeinterval", &keyframe_every.to_string());
    set(enc, "idrinterval", &keyframe_every.to_string());
    set(enc, "insert-sps-pps", "true");
    set(enc, "control-rate", "constant_bitrate");
    set(enc, "preset-level", "UltraFastPreset");
    set(enc, "maxperf-enable", "true");
    set(enc, "profile", "0"); // Baseline
}

/// Sets a property from its string form, whatever its type (uint, int, enum nick, flags,
/// structure). A property this version of the element lacks, or a value it cannot take, is
/// logged and skipped: a wrong tuning must not stop a visit.
fn set(element: &gst::Element, property: &str, value: &str) {
    let Some(pspec) = element.find_property(property) else {
        tracing::warn!(element = %element.name(), property, "encoder has no such property");
        return;
    };
    match gst::glib::Value::deserialize_with_pspec(value, &pspec) {
        Ok(v) => element.set_property_from_value(property, &v),
        Err(_) => tracing::warn!(element = %element.name(), property, value, "value refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn dev_video() -> Video {
        Video {
            source: "videotestsrc".into(),
            encoders: names(&["x264enc"]),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2500,
            fec: false,
            stamp_time: false,
        }
    }

    #[test]
    fn choose_encoder_picks_the_first_that_exists() {
        let chosen = choose_encoder(&names(&["nonexistent-enc", "x264enc"])).unwrap();
        assert_eq!(chosen, "x264enc");
    }

    #[test]
    fn choose_encoder_without_any_available_names_every_candidate() {
        let err = choose_encoder(&names(&["nonexistent-enc", "also-missing-enc"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("nonexistent-enc") && text.contains("also-missing-enc"), "{text}");
    }

    #[test]
    fn x264enc_is_set_for_zero_latency_at_the_profile_bitrate() {
        gst::init().unwrap();
        let enc = gst::ElementFactory::make("x264enc").build().unwrap();
        let setup = configure(&enc, &dev_video(), 2500);
        assert_eq!(enc.property::<u32>("bitrate"), 2500);
        assert_eq!(enc.property::<u32>("key-int-max"), 300);
        assert_eq!(enc.property::<u32>("vbv-buf-capacity"), 150);
        let preset = enc.property_value("speed-preset");
        assert_eq!(gst::glib::EnumValue::from_value(&preset).unwrap().1.nick(), "ultrafast");
        assert_eq!(setup.converter, "videoconvert");
        assert_eq!(setup.caps.to_string(), "video/x-h264, profile=(string)constrained-baseline");
    }

    #[test]
    fn openh264enc_uses_bitrate_rate_control_in_bits_per_second() {
        gst::init().unwrap();
        let enc = gst::ElementFactory::make("openh264enc").build().unwrap();
        configure(&enc, &dev_video(), 2500);
        assert_eq!(enc.property::<u32>("bitrate"), 2_500_000);
        assert_eq!(enc.property::<u32>("gop-size"), 300);
    }

    #[test]
    fn vp8enc_is_set_for_realtime_at_the_profile_bitrate() {
        gst::init().unwrap();
        let enc = gst::ElementFactory::make("vp8enc").build().unwrap();
        let setup = configure(&enc, &dev_video(), 2500);
        assert_eq!(enc.property::<i32>("target-bitrate"), 2_500_000);
        assert_eq!(enc.property::<i64>("deadline"), 1);
        assert_eq!(enc.property::<i32>("lag-in-frames"), 0);
        assert_eq!(enc.property::<i32>("keyframe-max-dist"), 300);
        assert_eq!(enc.property::<i32>("cpu-used"), 8);
        let flags = enc.property_value("error-resilient").serialize().unwrap();
        assert_eq!(flags.as_str(), "Default error resilience");
        assert_eq!(setup.converter, "videoconvert");
        assert_eq!(setup.caps.to_string(), "video/x-vp8");
    }

    #[test]
    fn set_bitrate_uses_each_encoders_unit() {
        gst::init().unwrap();
        for (factory, property, want) in
            [("x264enc", "bitrate", 480u32), ("openh264enc", "bitrate", 480_000)]
        {
            let enc = gst::ElementFactory::make(factory).build().unwrap();
            set_bitrate(&enc, 480);
            assert_eq!(enc.property::<u32>(property), want, "{factory}");
        }
        let vp8 = gst::ElementFactory::make("vp8enc").build().unwrap();
        set_bitrate(&vp8, 480);
        assert_eq!(vp8.property::<i32>("target-bitrate"), 480_000);
    }

    #[test]
    fn unknown_property_value_is_skipped_not_a_panic() {
        gst::init().unwrap();
        let enc = gst::ElementFactory::make("x264enc").build().unwrap();
        set(&enc, "no-such-property", "1");
        set(&enc, "bitrate", "not-a-number");
        assert_eq!(enc.property::<u32>("bitrate"), 2048);
    }
}

//! Hardware profiles (`hw/profiles/*.toml`): camera, microphone, speaker, display, encoder
//! preference and TPM, as data. This is the one place that reads them; nothing else in the kiosk
//! knows which board it runs on.

use std::path::Path;

use serde::Deserialize;

use crate::media::writers;

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read hardware profile {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("hardware profile {path} is invalid: {message}")]
    Invalid { path: String, message: String },
}

/// One hardware profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name shown in logs and device state.
    pub name: String,
    pub video: Video,
    pub audio: Audio,
    pub display: Display,
    #[serde(default)]
    pub tpm: Tpm,
    /// Which boards it is made for (`telekiosk probe` suggests it on them).
    #[serde(default)]
    pub board: Board,
}

/// The boards a profile is made for. `telekiosk probe` reads the firmware's model name (the
/// device tree's `model`, or DMI's vendor and product) and suggests the profile one of whose
/// `models` it contains; a profile without models but with an `arch` is the fallback for that
/// processor architecture. A profile with neither (development, tests) is never suggested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Words of the model name, matched without regard to case (`Raspberry Pi 4`).
    #[serde(default)]
    pub models: Vec<String>,
    /// CPU architecture as Rust names it (`x86_64`, `aarch64`).
    #[serde(default)]
    pub arch: Option<String>,
}

/// Camera and video encoding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Video {
    /// GStreamer launch description of the camera, e.g. `v4l2src device=/dev/video0`.
    pub source: String,
    /// Encoders to try, first available wins (hardware first, software last).
    pub encoders: Vec<String>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Highest video bitrate in kbit/s: the rate controller follows the network below it.
    pub bitrate_kbps: u32,
    /// Offer ULPFEC beside retransmission (its share then follows the loss). Off by default:
    /// on the floor link the media bench measured it costing more picture than it repaired.
    #[serde(default)]
    pub fec: bool,
    /// Test and bench only: stamp the capture time into the top of every sent picture and read
    /// it from received ones (glass-to-glass latency). Never on a kiosk in a clinic.
    #[serde(default)]
    pub stamp_time: bool,
}

/// Microphone and speaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audio {
    /// GStreamer launch description of the microphone.
    pub source: String,
    /// GStreamer launch description of the speaker.
    pub sink: String,
    /// Echo cancellation and noise suppression with `webrtcdsp` (needs a real mic + speaker).
    #[serde(default)]
    pub echo_cancel: bool,
    /// How `webrtcdsp` treats the microphone when `echo_cancel` is on (`[audio.processing]`).
    #[serde(default)]
    pub processing: Processing,
    /// Development and tests only: the technician screen's test tone and microphone meter use an
    /// in-process room (the speaker heard by the microphone, `interaudiosink` → `interaudiosrc`)
    /// instead of `sink` and `source`. Visits always use `source` and `sink`.
    #[serde(default)]
    pub virtual_room: bool,
}

/// Voice processing of the microphone (`[audio.processing]`), used when `audio.echo_cancel` is
/// on. The defaults suit open speakers at an unknown distance from the microphone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Processing {
    /// How hard echo left over after cancellation is suppressed: `low`, `moderate` or `high`
    /// (higher removes more echo and more of the patient's voice while both talk).
    pub echo_suppression: Level,
    /// Noise suppression: `off`, `low`, `moderate`, `high` or `very-high` (higher removes more
    /// fan and room noise and distorts speech more).
    pub noise_suppression: Level,
    /// Automatic gain control: brings a quiet or distant patient up to a steady level.
    pub gain_control: bool,
    /// The level gain control aims for, in dB below full scale (0..=31).
    pub gain_target_dbfs: u32,
    /// The most gain control may add, in dB (0..=30).
    pub gain_max_db: u32,
    /// Find the speaker-to-microphone delay from the signals rather than from the pipeline's
    /// timestamps and latency. Off by default: in this mode the probe hands the DSP all the
    /// speaker audio it holds, unaligned, and the canceller only starts correcting the delay
    /// after 15 s of call, so an echo more than ~40 ms off its filter is not cancelled before.
    /// Only for devices whose reported latency is known to be wrong by more than that.
    pub delay_agnostic: bool,
    /// The longer echo filter: covers rooms and speakers with a long echo tail.
    pub extended_filter: bool,
}

impl Default for Processing {
    fn default() -> Self {
        Self {
            echo_suppression: Level::Moderate,
            noise_suppression: Level::Moderate,
            gain_control: true,
            gain_target_dbfs: 3,
            gain_max_db: 9,
            delay_agnostic: false,
            extended_filter: true,
        }
    }
}

/// How aggressive a suppressor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Off,
    Low,
    Moderate,
    High,
    VeryHigh,
}

impl Level {
    /// The name `webrtcdsp` gives this level (`off` is not one: the suppressor is switched off).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Low => "low",
            Level::Moderate => "moderate",
            Level::High => "high",
            Level::VeryHigh => "very-high",
        }
    }
}

/// The touchscreen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Display {
    pub width: u32,
    pub height: u32,
    /// Physical pixel density, used to keep touch targets at least 15 mm.
    pub px_per_mm: f32,
    /// How the panel is mounted: 0, 90, 180 or 270 degrees (clockwise) of rotation.
    #[serde(default)]
    pub rotation: u16,
}

impl Display {
    /// The screen before a profile is known (a kiosk not set up yet): on the panel the real
    /// mode is the display's own; this size is used only with `--headless`.
    pub fn fallback() -> Self {
        Display { width: 1280, height: 800, px_per_mm: 5.9, rotation: 0 }
    }
}

/// Where the TPM is reached (used from the device-identity work on).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpm {
    /// TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
    #[serde(default)]
    pub tcti: String,
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { path: shown.clone(), source })?;
        Self::parse(&text).map_err(|message| ProfileError::Invalid { path: shown, message })
    }

    /// Parses and checks a profile's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: Profile = toml::from_str(text).map_err(|e| e.to_string())?;
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), String> {
        let v = &self.video;
        if v.encoders.is_empty() {
            return Err("video.encoders must list at least one encoder".into());
        }
        if !(160..=3840).contains(&v.width) || !(120..=2160).contains(&v.height) {
            return Err(format!(
                "video size {}x{} is outside 160x120..3840x2160",
                v.width, v.height
            ));
        }
        if !(1..=60).contains(&v.fps) {
            return Err(format!("video.fps {} is outside 1..60", v.fps));
        }
        if !(100..=20_000).contains(&v.bitrate_kbps) {
            return Err(format!("video.bitrate_kbps {} is outside 100..20000", v.bitrate_kbps));
        }
        let d = &self.display;
        if d.width < 320 || d.height < 240 || !(1.0..=40.0).contains(&d.px_per_mm) {
            return Err("display must be at least 320x240 with px_per_mm in 1..40".into());
        }
        if ![0, 90, 180, 270].contains(&d.rotation) {
            return Err(format!("display.rotation {} must be 0, 90, 180 or 270", d.rotation));
        }
        // No element that could write visit media anywhere (a file, the network, the log).
        writers::check_description("video.source", &v.source)?;
        writers::check_description("audio.source", &self.audio.source)?;
        writers::check_description("audio.sink", &self.audio.sink)?;
        for encoder in &v.encoders {
            writers::check_encoder(encoder)?;
        }
        self.audio.processing.check()
    }
}

impl Processing {
    fn check(&self) -> Result<(), String> {
        if matches!(self.echo_suppression, Level::Off | Level::VeryHigh) {
            return Err(format!(
                "audio.processing.echo_suppression {} is not one of low, moderate, high",
                self.echo_suppression.as_str()
            ));
        }
        if self.gain_target_dbfs > 31 {
            let v = self.gain_target_dbfs;
            return Err(format!("audio.processing.gain_target_dbfs {v} is outside 0..31"));
        }
        if self.gain_max_db > 30 {
            return Err(format!(
                "audio.processing.gain_max_db {} is outside 0..30",
                self.gain_max_db
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> String {
        let path = format!("{}/../../hw/profiles/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    /// The schema test: every file in `hw/profiles/` loads, passes its checks, is named after
    /// its file, and lists only encoders the one encoder table knows.
    #[test]
    fn every_shipped_profile_loads_and_names_only_known_encoders() {
        let dir = format!("{}/../../hw/profiles", env!("CARGO_MANIFEST_DIR"));
        let mut names = vec![];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let p = Profile::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(Some(p.name.as_str()), path.file_stem().and_then(|s| s.to_str()));
            for encoder in &p.video.encoders {
                assert!(
                    crate::media::KNOWN_ENCODERS.contains(&encoder.as_str()),
                    "{}: {encoder} is not in the encoder table (media/encoder.rs)",
                    p.name
                );
            }
            names.push(p.name);
        }
        names.sort();
        let expected =
            ["dev", "generic-x86", "imx8mp", "intel-nuc", "jetson-orin", "qemu", "rpi4", "rpi5"];
        assert_eq!(names, expected);
    }

    #[test]
    fn profile_without_encoders_is_refused_with_the_field_named() {
        let text = shipped("dev").replace("encoders = [\"x264enc\"]", "encoders = []");
        let err = Profile::parse(&text).unwrap_err();
        assert!(err.contains("video.encoders"), "{err}");
    }

    #[test]
    fn profile_with_a_media_writer_is_refused_at_load_naming_key_and_element() {
        let cases = [
            (
                "sink = \"fakesink sync=false\"",
                "sink = \"tee name=t ! queue ! fakesink t. ! queue ! filesink location=/tmp/a.raw\"",
                "audio.sink: element filesink",
            ),
            (
                "sink = \"fakesink sync=false\"",
                "sink = \"fakesink dump=true\"",
                "audio.sink: element fakesink",
            ),
            (
                "pattern=smpte\"",
                "pattern=smpte ! tee name=t ! queue ! splitmuxsink location=/tmp/v%02d.mp4 t. ! queue\"",
                "video.source: element splitmuxsink",
            ),
            (
                "volume=0.3\"",
                "volume=0.3 ! tee name=t ! queue ! udpsink host=10.0.0.1 port=9 t. ! queue\"",
                "audio.source: element udpsink",
            ),
            (
                "encoders = [\"x264enc\"]",
                "encoders = [\"x264enc\", \"multifilesink\"]",
                "video.encoders: element multifilesink",
            ),
        ];
        for (from, to, expected) in cases {
            let text = shipped("dev").replace(from, to);
            assert_ne!(text, shipped("dev"), "{from}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.toml");
            std::fs::write(&path, text).unwrap();
            let err = Profile::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn voice_processing_defaults_suit_open_speakers() {
        let p = Profile::parse(&shipped("dev")).unwrap();
        assert_eq!(p.audio.processing, Processing::default());
        assert!(!p.audio.processing.delay_agnostic && p.audio.processing.gain_control);
    }

    #[test]
    fn voice_processing_out_of_range_is_refused_with_the_key_named() {
        let with = |line: &str| format!("{}\n[audio.processing]\n{line}\n", shipped("dev"));
        let table = [
            ("gain_target_dbfs = 32", "audio.processing.gain_target_dbfs"),
            ("gain_max_db = 31", "audio.processing.gain_max_db"),
            ("echo_suppression = \"off\"", "audio.processing.echo_suppression"),
            ("noise_suppression = \"extreme\"", "noise_suppression"),
            ("gain_max_db = -1", "gain_max_db"),
        ];
        for (line, key) in table {
            let err = Profile::parse(&with(line)).unwrap_err();
            assert!(err.contains(key), "{line}: {err}");
        }
        let ok =
            Profile::parse(&with("noise_suppression = \"off\"\ngain_control = false")).unwrap();
        assert_eq!(ok.audio.processing.noise_suppression, Level::Off);
        assert!(!ok.audio.processing.gain_control);
    }

    #[test]
    fn unknown_profile_key_is_refused() {
        let text = format!("{}\nbogus = 1\n", shipped("dev"));
        assert!(Profile::parse(&text).unwrap_err().contains("bogus"));
    }
}

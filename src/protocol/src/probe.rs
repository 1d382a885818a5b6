//! What `telekiosk probe` found on a board: the encoders that work and how fast, cameras and
//! their modes, microphones, speakers, the TPM, displays, and the shipped profile it suggests.
//! Printed by the command for a technician and sent to fleetd as the result of a
//! `probe_hardware` command (the JSON text in [`crate::command::CommandResult::detail`]); the
//! admin console shows it in the device's diagnostics. Hardware facts only: no patient data.

use serde::{Deserialize, Serialize};

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeReport {
    /// The kiosk software that probed.
    pub software: String,
    pub machine: Machine,
    /// Every encoder the kiosk knows how to drive, in the kiosk's table order.
    pub encoders: Vec<EncoderProbe>,
    pub cameras: Vec<CaptureDevice>,
    pub microphones: Vec<AudioDevice>,
    pub speakers: Vec<AudioDevice>,
    pub tpm: TpmProbe,
    pub displays: Vec<DisplayProbe>,
    /// Hardware watchdogs (absent in reports of kiosks from before it was probed).
    #[serde(default)]
    pub watchdogs: Vec<WatchdogProbe>,
    pub suggestion: Suggestion,
}

/// The board as the firmware names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Device-tree model (`Raspberry Pi 4 Model B Rev 1.5`) or DMI vendor and product
    /// (`Intel(R) Client Systems NUC12WSHi5`); empty when neither is readable.
    pub model: String,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    pub cpus: u32,
}

/// One encoder of the kiosk's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderProbe {
    /// GStreamer element name.
    pub name: String,
    /// A hardware block (GPU, VPU, V4L2 codec) rather than the CPU.
    pub hardware: bool,
    /// What happened when it was tried.
    pub outcome: EncodeOutcome,
}

/// How an encoder fared on 5 s of 720p30 test pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncodeOutcome {
    /// No such element on this board (its plugin is not installed).
    Missing,
    /// The element exists but could not encode; `error` says what GStreamer said.
    Failed { error: String },
    /// It encoded every frame.
    Encoded {
        frames: u32,
        /// Frames per second encoded flat out (at least 30 keeps up with a 720p30 call).
        fps: f64,
        /// Processor time it used per second of 30 fps video, as a share of one core (%).
        cpu_percent: f64,
        /// Encoded size, kbit/s of video.
        kbps: u32,
    },
}

/// A camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureDevice {
    pub name: String,
    /// Its device node (`/dev/video0`) or another handle GStreamer gave.
    pub device: String,
    /// The stable name the kiosk's udev rules give it, when they matched (`/dev/telekiosk/camera`).
    pub stable_name: String,
    /// `1280x720@30 YUY2`, largest first (at most 24).
    pub modes: Vec<String>,
}

/// A microphone or speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioDevice {
    pub name: String,
    /// The GStreamer launch description that opens it (`alsasrc device=hw:CARD=Speakerphone`).
    pub source: String,
}

/// The TPM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmProbe {
    /// The TCTI tried.
    pub tcti: String,
    /// It answered.
    pub ok: bool,
    /// Its maker when it answered, else why not.
    pub detail: String,
}

/// A display connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayProbe {
    /// DRM connector (`card0-HDMI-A-1`).
    pub connector: String,
    pub connected: bool,
    /// Its preferred mode first (`1920x1080`).
    pub modes: Vec<String>,
    /// Physical size from the monitor's EDID, when it says.
    pub width_mm: Option<u32>,
    pub height_mm: Option<u32>,
    /// Pixels per millimetre of the preferred mode, for the profile's `px_per_mm`.
    pub px_per_mm: Option<f64>,
}

/// A hardware watchdog (`/sys/class/watchdog/watchdog0`): systemd pings it, so a hung kiosk
/// resets itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogProbe {
    /// `watchdog0`.
    pub device: String,
    /// What its driver calls it (`i6300ESB timer`, `iTCO_wdt`, `Broadcom BCM2835 Watchdog timer`).
    pub identity: String,
    /// Running: something (systemd) opened it and must keep pinging it.
    pub active: bool,
    /// Seconds without a ping before it resets the board, when the driver says.
    pub timeout_secs: Option<u32>,
}

/// The shipped profile that fits best, and what a technician should know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suggestion {
    /// A file in `/usr/share/telekiosk/profiles` without `.toml`; `None` when none fits.
    pub profile: Option<String>,
    /// Why, in plain words.
    pub why: String,
    /// What the profile expects that this board does not have, or the reverse.
    pub warnings: Vec<String>,
}

//! `telekiosk probe`: what a board actually has, for a technician bringing up new hardware and
//! for fleetd's device diagnostics (the `probe_hardware` command). Every encoder of the kiosk's
//! table is tried on 5 s of 720p (frames a second flat out, share of a core at 30 fps); cameras
//! with their modes, microphones, speakers, the TPM and the displays are listed; then the shipped
//! profile that fits is suggested, with what does not fit spelled out.
//!
//! Layout: `system` (sysfs: model, DRM connectors, EDID, udev's stable names), `devices`
//! (GStreamer's device monitor), `suggest` (pure: which profile), `text` (the report for people);
//! the encoder trial itself is `media::try_encoder`.

mod devices;
pub mod suggest;
pub mod system;
mod text;

use std::path::{Path, PathBuf};

use telekiosk_protocol::probe::{EncoderProbe, ProbeReport, Suggestion, TpmProbe};

use crate::identity::Tpm;
use crate::media::{KNOWN_ENCODERS, is_hardware, try_encoder};
use crate::profile::Profile;

pub use text::render;

/// What to probe with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the shipped profiles are (`/usr/share/telekiosk/profiles`).
    pub profile_dir: PathBuf,
    /// Seconds of 720p30 each encoder encodes.
    pub seconds: u32,
    /// The TPM to ask when no open handle is given.
    pub tcti: String,
}

/// Probes everything. Blocking: several seconds per encoder that exists. `tpm` is the kiosk's
/// own TPM connection when it has one (a second connection to the same TPM may not be served).
pub fn run(options: &Options, tpm: Option<&Tpm>) -> ProbeReport {
    let root = Path::new("/");
    let encoders = KNOWN_ENCODERS
        .iter()
        .map(|name| EncoderProbe {
            name: name.to_string(),
            hardware: is_hardware(name),
            outcome: try_encoder(name, options.seconds),
        })
        .collect();
    let links = Path::new(system::STABLE_DIR);
    let mut report = ProbeReport {
        software: env!("CARGO_PKG_VERSION").to_string(),
        machine: system::machine(root),
        encoders,
        cameras: devices::cameras(links),
        microphones: devices::audio("Audio/Source"),
        speakers: devices::audio("Audio/Sink"),
        tpm: probe_tpm(&options.tcti, tpm),
        displays: system::displays(root),
        watchdogs: system::watchdogs(root),
        suggestion: Suggestion { profile: None, why: String::new(), warnings: vec![] },
    };
    let (profiles, unreadable) = load_profiles(&options.profile_dir);
    report.suggestion = suggest::suggest(&report, &profiles);
    report.suggestion.warnings.extend(unreadable);
    report
}

fn probe_tpm(tcti: &str, open: Option<&Tpm>) -> TpmProbe {
    let asked = |tpm: &Tpm| match tpm.vendor() {
        Ok(vendor) => {
            TpmProbe { tcti: tpm.tcti().to_string(), ok: true, detail: vendor.trim().to_string() }
        }
        Err(e) => TpmProbe { tcti: tpm.tcti().to_string(), ok: false, detail: e.to_string() },
    };
    match open {
        Some(tpm) => asked(tpm),
        None => match Tpm::open_with_timeout(tcti, std::time::Duration::from_secs(10)) {
            Ok(tpm) => asked(&tpm),
            Err(e) => TpmProbe { tcti: tcti.to_string(), ok: false, detail: e.to_string() },
        },
    }
}

/// Every profile in `dir` that loads, and a sentence for each that does not.
pub fn load_profiles(dir: &Path) -> (Vec<Profile>, Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (vec![], vec![format!("no profiles could be read from {}", dir.display())]);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let (mut profiles, mut unreadable) = (vec![], vec![]);
    for path in paths {
        match Profile::load(&path) {
            Ok(p) => profiles.push(p),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    (profiles, unreadable)
}

//! The technician's screen: behind a hidden gesture (the top-left corner held 3 s or tapped five
//! times, on the idle, closed and out-of-service screens only) and the fleet config's
//! maintenance code, it shows what the device is and how it is connected, and checks its camera,
//! microphone, speaker and network; it can identify the kiosk, restart the app and, on a kiosk
//! not enrolled yet, take an enrolment code.
//!
//! - `rules` (pure): gesture, access, back-off after wrong codes, keypads, grades.
//! - `code`: the Argon2 check of the maintenance code, off the UI thread.
//! - `checks` (GStreamer), `network` (HTTPS): the hardware and network tests.
//! - `screen` (Slint): the adapter between the `Tech` global of `ui/technician/` and the above:
//!   the way in (corner, keypad) and out; `panel`: the open screen's facts and checks.
//! - here: [`Facts`], what the binary learns about the device as bring-up goes, and the
//!   status line each of the technician's actions prints.
//!
//! Must never: show or reach anything of a visit (the screen cannot open during one and closes
//! if one starts), log a code or a hash, or write a picture or sound anywhere.

mod bringup;
pub mod checks;
pub mod code;
pub mod network;
mod panel;
pub mod rules;
mod screen;
mod session;
#[cfg(test)]
mod tests;

pub use bringup::{enrolment_code, learn_identity};
pub use screen::{allow, install, screen_changed};
pub use session::preview_on;

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::store::ConfigStore;
use crate::profile::Profile;
use crate::signed::PinnedKey;

/// How far the kiosk is with joining the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enrolment {
    /// No provisioning (fleet address, CA): nothing can be enrolled from the screen.
    #[default]
    NotSetUp,
    /// Provisioned but without an enrolment code: the screen's keypad takes one.
    NotEnrolled,
    /// A code was sent; waiting for the fleet administrator's approval.
    Enrolling,
    Enrolled,
}

impl Enrolment {
    /// Whether the device has an identity (and so a fleet config to protect the screen with).
    pub fn enrolled(self) -> bool {
        self == Enrolment::Enrolled
    }
}

/// What holds the device key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyHolder {
    /// Not known yet (bring-up has not opened the key).
    #[default]
    Unknown,
    /// The TPM, with its maker's four letters if it said them.
    Tpm(String),
    /// The development key in a file (no TPM).
    DevelopmentKey,
}

/// Reads the version of the config in force and its maintenance code hash (blocking).
pub type ReadConfig = Arc<dyn Fn() -> (u64, String) + Send + Sync>;

/// Where the stored fleet config is read (verified again) when the gesture completes.
#[derive(Clone)]
pub struct ConfigSource {
    pub store: ConfigStore,
    pub pinned: PinnedKey,
    pub device_id: String,
}

impl ConfigSource {
    /// The version of the config in force and its maintenance code hash; `(0, "")` for the
    /// built-in defaults or a stored file that no longer verifies. Blocks (disk, TPM counter).
    pub fn load(&self) -> (u64, String) {
        match self.store.load(&self.pinned, &self.device_id) {
            Ok(Some(accepted)) => {
                (accepted.payload.version, accepted.payload.body.maintenance_code_hash)
            }
            Ok(None) | Err(_) => (0, String::new()),
        }
    }

    /// [`ConfigSource::load`] as the technician screen reads it.
    pub fn reader(self) -> ReadConfig {
        Arc::new(move || self.load())
    }
}

/// How the network test reaches fleetd: its address and the kiosk's own TLS client.
#[derive(Clone)]
pub struct FleetLink {
    pub server: url::Url,
    pub tls: Arc<rustls::ClientConfig>,
}

/// What the technician screen shows about the device, filled in by the binary as bring-up goes.
/// PHI-free by construction: nothing of a visit is ever put here.
#[derive(Clone, Default)]
pub struct Facts {
    pub device_id: String,
    pub key_fingerprint: String,
    pub enrolment: Enrolment,
    /// The MQTT broker, `host:port`.
    pub broker: String,
    pub online: bool,
    pub tpm: KeyHolder,
    pub profile: Option<Profile>,
    pub fleet: Option<FleetLink>,
    /// Reads the config in force when the gesture completes (a [`ConfigSource`] in the kiosk).
    pub config: Option<ReadConfig>,
    /// While the kiosk waits for an enrolment code: where the keypad sends it.
    pub enrol_code: Option<UnboundedSender<String>>,
}

/// The facts, shared between the binary's bring-up and the UI thread.
#[derive(Clone, Default)]
pub struct SharedFacts(Arc<Mutex<Facts>>);

impl SharedFacts {
    /// Changes the facts.
    pub fn update(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// A copy of the facts now.
    pub fn get(&self) -> Facts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Prints one of the technician's actions as a PHI-free status line
/// (`{"event":"technician","action":"opened"}`, with plain extra fields) and logs it for audit.
pub fn action(action: &str, extra: serde_json::Value) {
    let mut line = serde_json::json!({"event": "technician", "action": action});
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    tracing::info!(target: "audit", event = "technician", action, "technician action");
    crate::app::status(&line);
}

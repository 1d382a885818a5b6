//! Signed commands fleetd sends a kiosk on `telekiosk/v1/dev/{id}/cmd` (not retained), and the
//! kiosk's results on `telekiosk/v1/dev/{id}/cmd/result`. Signed like config (Ed25519 over the
//! payload text); a kiosk refuses a command for another device, an expired one, or one whose id
//! it has already run (replay).

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, ident, invalid, text};
use crate::update::UpdateOrder;

/// Wire form: payload text (JSON of [`CommandPayload`]) and fleetd's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub payload: String,
    /// Ed25519 signature over `payload`'s UTF-8 bytes, standard base64.
    pub signature: String,
}

impl Validate for SignedCommand {
    fn validate(&self) -> Result<(), DecodeError> {
        text("payload", &self.payload, 4096)?;
        text("signature", &self.signature, 128)
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Reboot the appliance (after any visit in progress ends).
    Reboot,
    /// Restart the kiosk program (after any visit in progress ends).
    RestartApp,
    /// Flash the screen so a technician can find this kiosk: 1–60 seconds.
    Identify { seconds: u32 },
    /// Send a PHI-free bundle: versions, health, recent errors.
    CollectDiagnostics,
    /// Try every encoder on 5 s of 720p and list cameras, audio devices, TPM and displays
    /// ([`crate::probe::ProbeReport`] as the result's detail). Outside visits only: it loads
    /// the processor for a while.
    ProbeHardware,
    /// Fetch the OS bundle of [`UpdateOrder`] from fleetd, install it into the other slot
    /// outside visits, reboot into it when allowed, and keep it only if it becomes healthy
    /// (progress and failures in the device state's `os`).
    InstallUpdate(UpdateOrder),
}

impl Command {
    /// Checks the command's own fields (identify lasts 1–60 seconds).
    pub fn check(&self) -> Result<(), DecodeError> {
        match self {
            Command::Identify { seconds } if !(1..=60).contains(seconds) => {
                Err(invalid("seconds", format!("{seconds} is outside 1–60")))
            }
            Command::InstallUpdate(order) => order.validate(),
            _ => Ok(()),
        }
    }
}

/// The signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPayload {
    pub device_id: String,
    /// Unique per command; a kiosk runs each id once.
    pub command_id: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; a kiosk refuses the command after this (at most 1 h after `issued_at`).
    pub expires_at: i64,
    pub command: Command,
}

impl Validate for CommandPayload {
    fn validate(&self) -> Result<(), DecodeError> {
        ident("device_id", &self.device_id)?;
        ident("command_id", &self.command_id)?;
        if self.expires_at <= self.issued_at || self.expires_at - self.issued_at > 3600 {
            return Err(invalid("expires_at", "must be within 1 h after issued_at".into()));
        }
        self.command.check()
    }
}

/// How a command went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Done (or, for reboot/restart, about to happen).
    Done,
    /// Accepted; runs when the visit in progress ends.
    Deferred,
    /// Refused; `detail` says why.
    Refused,
}

/// The kiosk's answer on `cmd/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    /// Empty when the command could not even be read.
    pub command_id: String,
    pub outcome: CommandOutcome,
    /// Plain words (refusal reason); for diagnostics, the PHI-free bundle as JSON text.
    pub detail: String,
}

impl Validate for CommandResult {
    fn validate(&self) -> Result<(), DecodeError> {
        if !self.command_id.is_empty() {
            ident("command_id", &self.command_id)?;
        }
        text("detail", &self.detail, 32 * 1024)
    }
}

//! Signed commands from fleetd (`cmd` topic): the pure checks each one passes before the kiosk
//! acts on it, and when it may act.
//!
//! Owns: the order of checks (size and shape, fleetd's signature, device, time window, replay),
//! the plain-words refusal for each, the set of recently run command ids ([`RecentIds`]; kept
//! on disk by `seen`) and the rule that reboot/restart wait for a visit to end ([`plan`]).
//! Must never: do I/O or read a clock here (time comes in as an argument), run a command twice,
//! or interrupt a visit in progress.

pub mod seen;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use telekiosk_protocol::command::{Command, CommandPayload, SignedCommand};
use telekiosk_protocol::{DecodeError, Validate, decode};

use crate::signed::PinnedKey;

/// How far in the future `issued_at` may be before the kiosk's clock is deemed too far off.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// At most this many command ids are remembered (oldest expiry forgotten first). Commands live
/// at most an hour, so this is far more than fleetd sends in that time.
pub const MAX_REMEMBERED: usize = 512;

/// Why a command was refused; the message goes back to fleetd as the result's `detail`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("the command is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("the command is malformed: {0}")]
    Malformed(String),
    #[error(
        "the command's signature does not verify with the fleet signing key pinned at enrolment"
    )]
    BadSignature,
    #[error("the command is for device {got:?}, not for this kiosk ({expected:?})")]
    WrongDevice { expected: String, got: String },
    #[error("the command expired at {expires_at} (Unix seconds); the kiosk's clock says {now}")]
    Expired { expires_at: i64, now: i64 },
    #[error(
        "the command was issued at {issued_at}, in the future by the kiosk's clock ({now}): \
         check the kiosk's time"
    )]
    NotYetValid { issued_at: i64, now: i64 },
    #[error("command {0} has already been run (replayed)")]
    Replayed(String),
    #[error("command field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// A refused command: its id when one could be read (for the result), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Empty when the command could not be read or its id is not a valid identifier.
    pub command_id: String,
    pub error: CommandError,
}

/// Checks one command from the wire at Unix time `now` against the pinned key, this device and
/// the ids already run. The caller must remember the id ([`RecentIds::insert`]) before acting.
pub fn verify(
    bytes: &[u8],
    pinned: &PinnedKey,
    device_id: &str,
    now: i64,
    seen: &RecentIds,
) -> Result<CommandPayload, Refusal> {
    let refuse = |command_id: String, error| Refusal { command_id, error };
    let signed = decode::<SignedCommand>(bytes).map_err(|e| {
        let error = match e {
            DecodeError::TooLarge { len, max } => CommandError::TooLarge { len, max },
            other => CommandError::Malformed(other.to_string()),
        };
        refuse(String::new(), error)
    })?;
    if !pinned.verifies(signed.payload.as_bytes(), &signed.signature) {
        return Err(refuse(claimed_id(&signed.payload), CommandError::BadSignature));
    }
    let payload: CommandPayload = serde_json::from_str(&signed.payload).map_err(|e| {
        refuse(claimed_id(&signed.payload), CommandError::Malformed(format!("payload: {e}")))
    })?;
    let id = claimed_id(&signed.payload);
    if payload.device_id != device_id {
        let error =
            CommandError::WrongDevice { expected: device_id.into(), got: payload.device_id };
        return Err(refuse(id, error));
    }
    payload.validate().map_err(|e| {
        let error = match e {
            DecodeError::Invalid { field, reason } => CommandError::Invalid { field, reason },
            other => CommandError::Malformed(other.to_string()),
        };
        refuse(id.clone(), error)
    })?;
    if now > payload.expires_at {
        return Err(refuse(id, CommandError::Expired { expires_at: payload.expires_at, now }));
    }
    if payload.issued_at > now + MAX_CLOCK_SKEW_SECS {
        return Err(refuse(id, CommandError::NotYetValid { issued_at: payload.issued_at, now }));
    }
    if seen.contains(&payload.command_id) {
        return Err(refuse(id, CommandError::Replayed(payload.command_id)));
    }
    Ok(payload)
}

/// The command id a payload claims, if it is a valid identifier (else empty): for results only.
fn claimed_id(payload: &str) -> String {
    #[derive(Deserialize)]
    struct Id {
        command_id: String,
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    serde_json::from_str::<Id>(payload)
        .ok()
        .map(|i| i.command_id)
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(ok))
        .unwrap_or_default()
}

/// Command ids already run, each kept until its command expires (after which the command would
/// be refused as expired anyway).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentIds {
    /// id → expires_at (Unix seconds).
    ids: BTreeMap<String, i64>,
}

impl RecentIds {
    /// True when the command id has been run.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    /// Remembers `id` (valid until `expires_at`), forgetting ids expired before `now` and, past
    /// [`MAX_REMEMBERED`], those that expire soonest.
    pub fn insert(&mut self, id: &str, expires_at: i64, now: i64) {
        self.ids.retain(|_, exp| *exp >= now);
        self.ids.insert(id.to_string(), expires_at);
        while self.ids.len() > MAX_REMEMBERED {
            let soonest = self.ids.iter().min_by_key(|(_, exp)| **exp).map(|(k, _)| k.clone());
            match soonest {
                Some(k) => self.ids.remove(&k),
                None => break,
            };
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// When a verified command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Now.
    Now,
    /// When the visit in progress ends (reboot and restart never cut a visit short).
    AfterVisit,
}

/// Reboot and restart wait for a visit in progress; everything else runs at once.
pub fn plan(command: &Command, visit_in_progress: bool) -> Plan {
    match command {
        Command::Reboot | Command::RestartApp | Command::ProbeHardware if visit_in_progress => {
            Plan::AfterVisit
        }
        _ => Plan::Now,
    }
}

#[cfg(test)]
mod tests;

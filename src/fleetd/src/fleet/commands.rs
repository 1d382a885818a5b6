//! Commands for one kiosk (reboot, restart the app, identify, diagnostics): queued here by the
//! CLI or the API, signed and sent by the running server ([`super::step`]), answered on the
//! kiosk's `cmd/result`. A command is valid for [`COMMAND_TTL_SECS`] after it is signed; one
//! still queued that long after it was made is never sent.

use telekiosk_protocol::api::{CommandInfo, CommandStatus};
use telekiosk_protocol::command::Command;

use super::{Fleet, FleetError};
use crate::store::bump;
use crate::store::fleet::{self as q, CommandRow};

/// How long a signed command stays valid, and how long a queued one waits to be sent.
pub const COMMAND_TTL_SECS: i64 = 600;

/// `cmd-` and 20 random base32 characters (an identifier by the protocol's rule).
pub(super) fn new_command_id() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)?;
    let tail: String = bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    Ok(format!("cmd-{tail}"))
}

/// A stored command as admins see it.
pub fn command_info(row: &CommandRow) -> Result<CommandInfo, FleetError> {
    let corrupt = |what: &str, e: serde_json::Error| FleetError::Corrupt {
        what: format!("{what} of command {}", row.command_id),
        reason: e.to_string(),
    };
    let command: Command = serde_json::from_str(&row.command).map_err(|e| corrupt("command", e))?;
    let result = row
        .result
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("result", e))?;
    let status = match row.status.as_str() {
        "queued" => CommandStatus::Queued,
        "sent" => CommandStatus::Sent,
        "answered" => CommandStatus::Answered,
        _ => CommandStatus::Expired,
    };
    Ok(CommandInfo {
        command_id: row.command_id.clone(),
        device_id: row.device_id.clone(),
        command,
        status,
        created_at: row.created_at,
        created_by: row.created_by.clone(),
        issued_at: row.issued_at,
        expires_at: row.expires_at,
        result,
        result_at: row.result_at,
    })
}

/// The command's name in audit lines.
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Reboot => "reboot",
        Command::RestartApp => "restart-app",
        Command::Identify { .. } => "identify",
        Command::CollectDiagnostics => "diagnostics",
        Command::ProbeHardware => "probe",
        Command::InstallUpdate(_) => "install-update",
    }
}

impl Fleet {
    /// Queues a command for an active device; the running server signs and sends it.
    pub fn new_command(
        &self,
        id: &str,
        command: Command,
        by: &str,
        now: i64,
    ) -> Result<CommandInfo, FleetError> {
        telekiosk_protocol::Validate::validate(&telekiosk_protocol::api::NewCommand {
            command: command.clone(),
        })?;
        let device = self.device(id)?;
        if device.status != "active" {
            return Err(FleetError::NotActive { id: id.into(), status: device.status });
        }
        let row = CommandRow {
            command_id: new_command_id().map_err(FleetError::Random)?,
            device_id: id.into(),
            command: serde_json::to_string(&command).expect("commands serialise"),
            status: "queued".into(),
            created_at: now,
            created_by: by.into(),
            issued_at: None,
            expires_at: None,
            result: None,
            result_at: None,
        };
        self.store.write(|c| {
            q::insert_command(c, &row)?;
            bump(c)?;
            Ok::<_, FleetError>(())
        })?;
        let name = command_name(&command);
        tracing::info!(by, device = id, group = %device.clinic, command = name, command_id = %row.command_id, "command queued");
        command_info(&row)
    }

    /// One command, if it exists.
    pub fn command(&self, command_id: &str) -> Result<Option<CommandInfo>, FleetError> {
        let row = self.store.read(|c| q::command(c, command_id))?;
        row.as_ref().map(command_info).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_are_protocol_identifiers_and_differ() {
        let (a, b) = (new_command_id().unwrap(), new_command_id().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{a}");
    }
}

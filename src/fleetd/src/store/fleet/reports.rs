//! What devices report and what is asked of them: each device's latest state, and commands
//! with their results. Plain queries, like the rest of [`super`].

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

/// One command row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    pub command_id: String,
    pub device_id: String,
    /// JSON of the protocol's `Command`.
    pub command: String,
    pub status: String,
    pub created_at: i64,
    pub created_by: String,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// JSON of the protocol's `CommandResult`.
    pub result: Option<String>,
    pub result_at: Option<i64>,
}

/// Stores a device's latest state (JSON of `DeviceState`).
pub fn upsert_state(c: &Connection, device: &str, state: &str, now: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO device_state (device_id, state, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id) DO UPDATE SET state = ?2, updated_at = ?3",
    )?
    .execute(params![device, state, now])
    .map(drop)
}

/// Every device's latest state: id → (JSON, when received).
pub fn states(c: &Connection) -> rusqlite::Result<HashMap<String, (String, i64)>> {
    let mut stmt = c.prepare("SELECT device_id, state, updated_at FROM device_state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    rows.collect()
}

/// One device's latest state: (JSON, when received).
pub fn state_of(c: &Connection, device: &str) -> rusqlite::Result<Option<(String, i64)>> {
    c.prepare_cached("SELECT state, updated_at FROM device_state WHERE device_id = ?1")?
        .query_row(params![device], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

const COMMAND_COLUMNS: &str = "command_id, device_id, command, status, created_at, created_by, \
    issued_at, expires_at, result, result_at";

fn command_row(r: &Row<'_>) -> rusqlite::Result<CommandRow> {
    Ok(CommandRow {
        command_id: r.get(0)?,
        device_id: r.get(1)?,
        command: r.get(2)?,
        status: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        issued_at: r.get(6)?,
        expires_at: r.get(7)?,
        result: r.get(8)?,
        result_at: r.get(9)?,
    })
}

/// Queues a command (status `queued`).
pub fn insert_command(c: &Connection, row: &CommandRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO commands (command_id, device_id, command, status, created_at, created_by)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
        params![row.command_id, row.device_id, row.command, row.created_at, row.created_by],
    )
    .map(drop)
}

/// One command.
pub fn command(c: &Connection, id: &str) -> rusqlite::Result<Option<CommandRow>> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = ?1");
    c.query_row(&sql, params![id], command_row).optional()
}

/// Commands in `status`, oldest first.
pub fn commands_in(c: &Connection, status: &str) -> rusqlite::Result<Vec<CommandRow>> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE status = ?1 ORDER BY created_at, command_id"
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(params![status], command_row)?;
    rows.collect()
}

/// The device's latest commands, newest first.
pub fn commands_of(c: &Connection, device: &str, limit: u32) -> rusqlite::Result<Vec<CommandRow>> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE device_id = ?1
         ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(params![device, limit], command_row)?;
    rows.collect()
}

/// Marks a command sent, with when it was signed and when it expires.
pub fn command_sent(
    c: &Connection,
    id: &str,
    issued_at: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE commands SET status = 'sent', issued_at = ?2, expires_at = ?3
         WHERE command_id = ?1 AND status = 'queued'",
        params![id, issued_at, expires_at],
    )
    .map(drop)
}

/// Marks queued or sent commands expired when their time is up; returns how many.
pub fn expire_commands(c: &Connection, queued_before: i64, now: i64) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE commands SET status = 'expired'
         WHERE (status = 'queued' AND created_at < ?1) OR (status = 'sent' AND expires_at < ?2)",
        params![queued_before, now],
    )
}

/// Stores a device's result for one of its sent commands; `false` if it has no such command
/// waiting for an answer. A command is answered once: a later result for an answered or
/// expired command changes nothing, except that a `deferred` answer (it runs after the visit)
/// is followed by the final one (`is_final`: any outcome but `deferred`).
pub fn record_result(
    c: &Connection,
    device: &str,
    command_id: &str,
    result: &str,
    is_final: bool,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = c
        .prepare_cached(
            "UPDATE commands SET status = 'answered', result = ?3, result_at = ?4
             WHERE command_id = ?2 AND device_id = ?1
               AND (status = 'sent' OR (?5 AND status = 'answered'
                    AND json_extract(result, '$.outcome') = 'deferred'))",
        )?
        .execute(params![device, command_id, result, now, is_final])?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn queued(store: &Store, id: &str) {
        store
            .read(|c| {
                c.execute(
                    "INSERT OR IGNORE INTO devices (id, clinic, room, public_key, status, created_at)
                     VALUES ('d-1', 'North Clinic', '1', x'01', 'active', 0)",
                    [],
                )?;
                let row = CommandRow {
                    command_id: id.into(),
                    device_id: "d-1".into(),
                    command: r#"{"type":"identify","seconds":5}"#.into(),
                    status: "queued".into(),
                    created_at: 100,
                    created_by: "admin".into(),
                    issued_at: None,
                    expires_at: None,
                    result: None,
                    result_at: None,
                };
                insert_command(c, &row)?;
                command_sent(c, id, 100, 200)
            })
            .unwrap();
    }

    const DONE: &str = r#"{"command_id":"c","outcome":"done","detail":"late"}"#;

    #[test]
    fn a_result_for_an_expired_command_is_ignored() {
        let store = Store::in_memory();
        queued(&store, "c-1");
        assert_eq!(store.read(|c| expire_commands(c, 0, 201)).unwrap(), 1);
        let recorded = store.read(|c| record_result(c, "d-1", "c-1", DONE, true, 300)).unwrap();
        assert!(!recorded, "a result for an expired command was recorded");
        let row = store.read(|c| command(c, "c-1")).unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.result), ("expired", None));
    }

    #[test]
    fn a_result_for_an_answered_command_or_another_devices_is_ignored() {
        let store = Store::in_memory();
        queued(&store, "c-1");
        assert!(!store.read(|c| record_result(c, "d-2", "c-1", DONE, true, 150)).unwrap());
        assert!(store.read(|c| record_result(c, "d-1", "c-1", DONE, true, 150)).unwrap());
        let rewrite = r#"{"command_id":"c","outcome":"refused","detail":"rewritten"}"#;
        assert!(!store.read(|c| record_result(c, "d-1", "c-1", rewrite, true, 160)).unwrap());
        let row = store.read(|c| command(c, "c-1")).unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.result.as_deref()), ("answered", Some(DONE)));
    }
}

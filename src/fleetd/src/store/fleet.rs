//! The fleet tables: group config bodies, per-device overrides, the fleet-wide config version
//! counter, rollouts (the engine's state as JSON), what was published to each device, the
//! latest state each device reported, and commands with their results (those two in
//! [`reports`]). Plain queries over a connection or transaction; [`super::Store::read`] and
//! [`super::Store::write`] provide those.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

mod reports;
pub use reports::*;

/// Migration 4: devices by group (clinic), for the per-group queries below.
pub(super) const GROUP_INDEX: &str = "CREATE INDEX devices_by_clinic ON devices (clinic, status);";

/// Migration 3: the fleet tables.
pub(super) const SCHEMA: &str = "
    CREATE TABLE config_version_counter (
        only  INTEGER PRIMARY KEY CHECK (only = 1),
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO config_version_counter VALUES (1, 0);
    CREATE TABLE config_groups (
        grp        TEXT PRIMARY KEY NOT NULL,
        body       TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL
    ) STRICT;
    CREATE TABLE config_overrides (
        device_id  TEXT PRIMARY KEY NOT NULL REFERENCES devices (id),
        body       TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL
    ) STRICT;
    CREATE TABLE rollouts (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        grp        TEXT NOT NULL,
        version    INTEGER NOT NULL UNIQUE,
        kind       TEXT NOT NULL CHECK (kind IN ('rollout', 'rollback')),
        body       TEXT NOT NULL,
        overrides  TEXT NOT NULL,
        status     TEXT NOT NULL,
        state      TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX rollouts_by_group ON rollouts (grp, id);
    CREATE INDEX rollouts_by_status ON rollouts (status);
    CREATE TABLE device_config (
        device_id    TEXT PRIMARY KEY NOT NULL REFERENCES devices (id),
        grp          TEXT NOT NULL,
        version      INTEGER NOT NULL,
        rollout_id   INTEGER NOT NULL,
        payload      TEXT NOT NULL,
        signature    TEXT NOT NULL,
        published_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE device_state (
        device_id  TEXT PRIMARY KEY NOT NULL,
        state      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE commands (
        command_id TEXT PRIMARY KEY NOT NULL,
        device_id  TEXT NOT NULL REFERENCES devices (id),
        command    TEXT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'answered', 'expired')),
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        issued_at  INTEGER,
        expires_at INTEGER,
        result     TEXT,
        result_at  INTEGER
    ) STRICT;
    CREATE INDEX commands_by_device ON commands (device_id, created_at);
    CREATE INDEX commands_by_status ON commands (status);";

/// A config document as stored, with who last set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authored {
    /// JSON object text.
    pub body: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// An active device and its enrolled place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub id: String,
    pub clinic: String,
    pub room: String,
}

/// One rollout row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    pub id: i64,
    pub group: String,
    pub version: u64,
    /// `rollout` or `rollback`.
    pub kind: String,
    /// The group body rolled out (JSON object text).
    pub body: String,
    /// Device id → override (JSON object text), as they were when the rollout started.
    pub overrides: String,
    pub status: String,
    /// The engine's [`crate::fleet::rollout::Rollout`] as JSON.
    pub state: String,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
}

/// What was last published to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRow {
    pub device_id: String,
    pub group: String,
    pub version: u64,
    pub rollout_id: i64,
    pub payload: String,
    pub signature: String,
    pub published_at: i64,
}

/// Takes the next fleet-wide config version.
pub fn next_config_version(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("UPDATE config_version_counter SET value = value + 1 RETURNING value", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v as u64)
}

fn authored(r: &Row<'_>) -> rusqlite::Result<Authored> {
    Ok(Authored { body: r.get(0)?, updated_at: r.get(1)?, updated_by: r.get(2)? })
}

/// The group's body, if one was set.
pub fn group_body(c: &Connection, group: &str) -> rusqlite::Result<Option<Authored>> {
    c.query_row(
        "SELECT body, updated_at, updated_by FROM config_groups WHERE grp = ?1",
        params![group],
        authored,
    )
    .optional()
}

/// Stores the group's body.
pub fn set_group_body(
    c: &Connection,
    group: &str,
    body: &str,
    by: &str,
    now: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO config_groups (grp, body, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (grp) DO UPDATE SET body = ?2, updated_at = ?3, updated_by = ?4",
        params![group, body, now, by],
    )
    .map(drop)
}

/// The device's override, if any.
pub fn override_body(c: &Connection, device: &str) -> rusqlite::Result<Option<Authored>> {
    c.query_row(
        "SELECT body, updated_at, updated_by FROM config_overrides WHERE device_id = ?1",
        params![device],
        authored,
    )
    .optional()
}

/// Stores (or, with `None`, removes) the device's override.
pub fn set_override(
    c: &Connection,
    device: &str,
    body: Option<&str>,
    by: &str,
    now: i64,
) -> rusqlite::Result<()> {
    match body {
        Some(body) => c.execute(
            "INSERT INTO config_overrides (device_id, body, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device_id) DO UPDATE SET body = ?2, updated_at = ?3, updated_by = ?4",
            params![device, body, now, by],
        ),
        None => c.execute("DELETE FROM config_overrides WHERE device_id = ?1", params![device]),
    }
    .map(drop)
}

/// Overrides of the group's devices: device id → JSON object text.
pub fn overrides_in_group(
    c: &Connection,
    group: &str,
) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt = c.prepare(
        "SELECT o.device_id, o.body FROM config_overrides o JOIN devices d ON d.id = o.device_id
         WHERE d.clinic = ?1",
    )?;
    let rows = stmt.query_map(params![group], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The group's active devices, by id.
pub fn active_devices_in(c: &Connection, group: &str) -> rusqlite::Result<Vec<Placed>> {
    let mut stmt = c.prepare(
        "SELECT id, clinic, room FROM devices WHERE clinic = ?1 AND status = 'active' ORDER BY id",
    )?;
    let rows = stmt.query_map(params![group], |r| {
        Ok(Placed { id: r.get(0)?, clinic: r.get(1)?, room: r.get(2)? })
    })?;
    rows.collect()
}

/// Every group: the clinics devices were enrolled for and those with a body, with the number
/// of active devices in each.
pub fn groups(c: &Connection) -> rusqlite::Result<Vec<(String, u32)>> {
    let mut stmt = c.prepare(
        "SELECT grp, SUM(active) FROM (
             SELECT clinic AS grp, status = 'active' AS active FROM devices
             UNION ALL SELECT grp, 0 FROM config_groups
         ) GROUP BY grp ORDER BY grp",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

const ROLLOUT_COLUMNS: &str = "id, grp, version, kind, body, overrides, status, state, created_at, \
    created_by, updated_at";

fn rollout_row(r: &Row<'_>) -> rusqlite::Result<RolloutRow> {
    Ok(RolloutRow {
        id: r.get(0)?,
        group: r.get(1)?,
        version: r.get::<_, i64>(2)? as u64,
        kind: r.get(3)?,
        body: r.get(4)?,
        overrides: r.get(5)?,
        status: r.get(6)?,
        state: r.get(7)?,
        created_at: r.get(8)?,
        created_by: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// Adds a rollout; returns its id (`row.id` is ignored).
pub fn insert_rollout(c: &Connection, row: &RolloutRow) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO rollouts (grp, version, kind, body, overrides, status, state, created_at,
             created_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8)",
        params![
            row.group,
            row.version as i64,
            row.kind,
            row.body,
            row.overrides,
            row.status,
            row.state,
            row.created_at,
            row.created_by
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// One rollout.
pub fn rollout(c: &Connection, id: i64) -> rusqlite::Result<Option<RolloutRow>> {
    let sql = format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?1");
    c.query_row(&sql, params![id], rollout_row).optional()
}

/// Rollouts, newest first: of one group or all, at most `limit`.
pub fn rollouts(
    c: &Connection,
    group: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<RolloutRow>> {
    let sql = format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE ?1 IS NULL OR grp = ?1 ORDER BY id DESC LIMIT ?2"
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(params![group, limit], rollout_row)?;
    rows.collect()
}

/// Running and paused rollouts, oldest first.
pub fn live_rollouts(c: &Connection) -> rusqlite::Result<Vec<RolloutRow>> {
    let sql = format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE status IN ('running', 'paused') ORDER BY id"
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map([], rollout_row)?;
    rows.collect()
}

/// The latest completed rollout of `group` older than rollout `before`.
pub fn completed_before(
    c: &Connection,
    group: &str,
    before: i64,
) -> rusqlite::Result<Option<RolloutRow>> {
    let sql = format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE grp = ?1 AND id < ?2 AND status = 'completed'
         ORDER BY id DESC LIMIT 1"
    );
    c.query_row(&sql, params![group, before], rollout_row).optional()
}

/// Active devices that were never sent a config although their group has a completed
/// rollout (they joined after it): each with that group's latest completed rollout.
pub fn late_joiners(c: &Connection) -> rusqlite::Result<Vec<(Placed, i64)>> {
    // Driven from the groups with a completed rollout (few), into their devices by clinic.
    let mut stmt = c.prepare_cached(
        "SELECT d.id, d.clinic, d.room, r.latest
         FROM (SELECT grp, MAX(id) AS latest FROM rollouts WHERE status = 'completed'
               GROUP BY grp) r
         JOIN devices d ON d.clinic = r.grp AND d.status = 'active'
         WHERE NOT EXISTS (SELECT 1 FROM device_config c WHERE c.device_id = d.id)
         ORDER BY d.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((Placed { id: r.get(0)?, clinic: r.get(1)?, room: r.get(2)? }, r.get(3)?))
    })?;
    rows.collect()
}

/// Saves the engine's state and status.
pub fn save_rollout(
    c: &Connection,
    id: i64,
    status: &str,
    state: &str,
    now: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE rollouts SET status = ?2, state = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, status, state, now],
    )
    .map(drop)
}

fn published_row(r: &Row<'_>) -> rusqlite::Result<PublishedRow> {
    Ok(PublishedRow {
        device_id: r.get(0)?,
        group: r.get(1)?,
        version: r.get::<_, i64>(2)? as u64,
        rollout_id: r.get(3)?,
        payload: r.get(4)?,
        signature: r.get(5)?,
        published_at: r.get(6)?,
    })
}

const PUBLISHED_COLUMNS: &str =
    "device_id, grp, version, rollout_id, payload, signature, published_at";

/// Records what was published to a device.
pub fn upsert_published(c: &Connection, p: &PublishedRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO device_config (device_id, grp, version, rollout_id, payload, signature,
             published_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (device_id) DO UPDATE SET grp = ?2, version = ?3, rollout_id = ?4,
             payload = ?5, signature = ?6, published_at = ?7",
    )?
    .execute(params![
        p.device_id,
        p.group,
        p.version as i64,
        p.rollout_id,
        p.payload,
        p.signature,
        p.published_at
    ])
    .map(drop)
}

/// What was published to each device still active (revoked ones get nothing again).
pub fn published(c: &Connection) -> rusqlite::Result<Vec<PublishedRow>> {
    let sql = format!(
        "SELECT {PUBLISHED_COLUMNS} FROM device_config
         WHERE device_id IN (SELECT id FROM devices WHERE status = 'active') ORDER BY device_id"
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map([], published_row)?;
    rows.collect()
}

/// What was published to one device.
pub fn published_to(c: &Connection, device: &str) -> rusqlite::Result<Option<PublishedRow>> {
    let sql = format!("SELECT {PUBLISHED_COLUMNS} FROM device_config WHERE device_id = ?1");
    c.query_row(&sql, params![device], published_row).optional()
}

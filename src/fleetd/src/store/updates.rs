//! The OS update tables: the bundles fleetd hands out (the files are in the data directory's
//! `bundles/`, named by their SHA-256) and update rollouts (the rollout engine's state as
//! JSON, as for config rollouts). Plain queries over a connection or transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};

/// Migration: bundles and update rollouts.
pub(super) const SCHEMA: &str = "
    CREATE TABLE os_bundles (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        version    TEXT NOT NULL UNIQUE,
        sha256     TEXT NOT NULL UNIQUE,
        size       INTEGER NOT NULL,
        added_at   INTEGER NOT NULL,
        added_by   TEXT NOT NULL
    ) STRICT;
    CREATE TABLE os_updates (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        grp             TEXT NOT NULL,
        bundle_id       INTEGER NOT NULL REFERENCES os_bundles (id),
        reboot_in_hours INTEGER NOT NULL,
        health_timeout  INTEGER NOT NULL,
        status          TEXT NOT NULL,
        state           TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        created_by      TEXT NOT NULL,
        updated_at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX os_updates_by_status ON os_updates (status);";

/// One bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRow {
    pub id: i64,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub added_at: i64,
    pub added_by: String,
}

/// One update rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRow {
    pub id: i64,
    pub group: String,
    pub bundle_id: i64,
    pub reboot_in_opening_hours: bool,
    pub health_timeout_secs: u32,
    pub status: String,
    /// The engine's [`crate::fleet::rollout::Rollout`] as JSON.
    pub state: String,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
}

const BUNDLE_COLUMNS: &str = "id, version, sha256, size, added_at, added_by";

fn bundle_row(r: &Row<'_>) -> rusqlite::Result<BundleRow> {
    Ok(BundleRow {
        id: r.get(0)?,
        version: r.get(1)?,
        sha256: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        added_at: r.get(4)?,
        added_by: r.get(5)?,
    })
}

/// Adds a bundle; returns its id.
pub fn insert_bundle(c: &Connection, b: &BundleRow) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO os_bundles (version, sha256, size, added_at, added_by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![b.version, b.sha256, b.size as i64, b.added_at, b.added_by],
    )?;
    Ok(c.last_insert_rowid())
}

/// Every bundle, newest first.
pub fn bundles(c: &Connection) -> rusqlite::Result<Vec<BundleRow>> {
    let mut stmt =
        c.prepare(&format!("SELECT {BUNDLE_COLUMNS} FROM os_bundles ORDER BY id DESC"))?;
    let rows = stmt.query_map([], bundle_row)?;
    rows.collect()
}

/// The bundle of a version.
pub fn bundle_by_version(c: &Connection, version: &str) -> rusqlite::Result<Option<BundleRow>> {
    let sql = format!("SELECT {BUNDLE_COLUMNS} FROM os_bundles WHERE version = ?1");
    c.query_row(&sql, params![version], bundle_row).optional()
}

/// The bundle of a SHA-256.
pub fn bundle_by_sha256(c: &Connection, sha256: &str) -> rusqlite::Result<Option<BundleRow>> {
    let sql = format!("SELECT {BUNDLE_COLUMNS} FROM os_bundles WHERE sha256 = ?1");
    c.query_row(&sql, params![sha256], bundle_row).optional()
}

/// A bundle by id.
pub fn bundle(c: &Connection, id: i64) -> rusqlite::Result<Option<BundleRow>> {
    let sql = format!("SELECT {BUNDLE_COLUMNS} FROM os_bundles WHERE id = ?1");
    c.query_row(&sql, params![id], bundle_row).optional()
}

const UPDATE_COLUMNS: &str = "id, grp, bundle_id, reboot_in_hours, health_timeout, status, state, \
    created_at, created_by, updated_at";

fn update_row(r: &Row<'_>) -> rusqlite::Result<UpdateRow> {
    Ok(UpdateRow {
        id: r.get(0)?,
        group: r.get(1)?,
        bundle_id: r.get(2)?,
        reboot_in_opening_hours: r.get::<_, i64>(3)? != 0,
        health_timeout_secs: r.get::<_, i64>(4)? as u32,
        status: r.get(5)?,
        state: r.get(6)?,
        created_at: r.get(7)?,
        created_by: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

/// Adds an update rollout; returns its id (`row.id` is ignored).
pub fn insert_update(c: &Connection, row: &UpdateRow) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO os_updates (grp, bundle_id, reboot_in_hours, health_timeout, status, state,
             created_at, created_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)",
        params![
            row.group,
            row.bundle_id,
            i64::from(row.reboot_in_opening_hours),
            i64::from(row.health_timeout_secs),
            row.status,
            row.state,
            row.created_at,
            row.created_by
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// One update rollout.
pub fn update(c: &Connection, id: i64) -> rusqlite::Result<Option<UpdateRow>> {
    let sql = format!("SELECT {UPDATE_COLUMNS} FROM os_updates WHERE id = ?1");
    c.query_row(&sql, params![id], update_row).optional()
}

/// Update rollouts, newest first, at most `limit`.
pub fn updates(c: &Connection, limit: u32) -> rusqlite::Result<Vec<UpdateRow>> {
    let sql = format!("SELECT {UPDATE_COLUMNS} FROM os_updates ORDER BY id DESC LIMIT ?1");
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(params![limit], update_row)?;
    rows.collect()
}

/// Running and paused update rollouts, oldest first.
pub fn live_updates(c: &Connection) -> rusqlite::Result<Vec<UpdateRow>> {
    let sql = format!(
        "SELECT {UPDATE_COLUMNS} FROM os_updates WHERE status IN ('running', 'paused') ORDER BY id"
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map([], update_row)?;
    rows.collect()
}

/// Saves the engine's state.
pub fn save_update(
    c: &Connection,
    id: i64,
    status: &str,
    state: &str,
    now: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE os_updates SET status = ?2, state = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, status, state, now],
    )
    .map(drop)
}

/// Whether `device` was given an `install_update` command for `sha256` that did not expire
/// unsent or unanswered (queued, sent, or answered): then another is not queued.
pub fn install_sent(c: &Connection, device: &str, sha256: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM commands WHERE device_id = ?1 AND status IN ('queued', 'sent', 'answered')
             AND json_extract(command, '$.type') = 'install_update'
             AND json_extract(command, '$.sha256') = ?2)",
        params![device, sha256],
        |r| r.get(0),
    )
}

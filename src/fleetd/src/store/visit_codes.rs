//! The visit codes table: a keyed hash of each code (never the code), its clinic, the
//! clinician who made it, when it was made and expires, and the visit that holds it. Plain
//! queries, like the rest of [`super`]; the rules of what a code allows are
//! [`crate::visit_codes::rules`]'.

use rusqlite::{Connection, OptionalExtension, params};

use crate::visit_codes::rules::Stored;

/// Migration 11: visit codes.
pub(super) const SCHEMA: &str = "
    CREATE TABLE visit_codes (
        id          TEXT PRIMARY KEY NOT NULL,
        code_hash   BLOB NOT NULL UNIQUE,
        clinic      TEXT NOT NULL,
        clinician   TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        used_by     TEXT
    ) STRICT;
    CREATE INDEX visit_codes_by_clinician ON visit_codes (clinician, expires_at);";

/// One code as its clinician lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub id: String,
    pub clinic: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub in_use: bool,
}

/// Stores a new code; `Ok(false)` if a live code has the same hash (the caller draws again).
pub fn insert(
    c: &Connection,
    id: &str,
    hash: &[u8],
    clinic: &str,
    clinician: &str,
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "INSERT INTO visit_codes (id, code_hash, clinic, clinician, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        params![id, hash, clinic, clinician, now, expires_at],
    )?;
    Ok(n == 1)
}

/// Drops the codes whose time is over, unless a visit took one up less than a day ago (it may
/// still be waiting, and give it back).
pub fn prune(c: &Connection, now: i64) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM visit_codes
         WHERE expires_at <= ?1 AND (used_by IS NULL OR used_at <= ?1 - 86400)",
        params![now],
    )
}

/// The code with this hash: its id, clinician and what the rules need.
pub fn find(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<(String, String, Stored)>> {
    c.query_row(
        "SELECT id, clinician, clinic, expires_at, used_by FROM visit_codes WHERE code_hash = ?1",
        params![hash],
        |r| {
            let stored = Stored { clinic: r.get(2)?, expires_at: r.get(3)?, used_by: r.get(4)? };
            Ok((r.get(0)?, r.get(1)?, stored))
        },
    )
    .optional()
}

/// Marks code `id` as held by `visit_id`.
pub fn hold(c: &Connection, id: &str, visit_id: &str, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE visit_codes SET used_at = ?3, used_by = ?2 WHERE id = ?1",
        params![id, visit_id, now],
    )?;
    Ok(())
}

/// Gives code `id` back (if `visit_id` still holds it): the visit ended before a clinician
/// joined, so the patient may use it again until it expires.
pub fn release(c: &Connection, id: &str, visit_id: &str) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE visit_codes SET used_at = NULL, used_by = NULL WHERE id = ?1 AND used_by = ?2",
        params![id, visit_id],
    )?;
    Ok(n == 1)
}

/// `clinician`'s codes that have not expired (used ones too), soonest to expire first.
pub fn active(c: &Connection, clinician: &str, now: i64) -> rusqlite::Result<Vec<CodeRow>> {
    let mut stmt = c.prepare(
        "SELECT id, clinic, created_at, expires_at, used_by IS NOT NULL FROM visit_codes
         WHERE clinician = ?1 AND expires_at > ?2
         ORDER BY expires_at, id",
    )?;
    let rows = stmt.query_map(params![clinician, now], |r| {
        Ok(CodeRow {
            id: r.get(0)?,
            clinic: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            in_use: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Deletes `clinician`'s code `id`; its clinic, or `None` if they have no such code.
pub fn delete(c: &Connection, id: &str, clinician: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "DELETE FROM visit_codes WHERE id = ?1 AND clinician = ?2 RETURNING clinic",
        params![id, clinician],
        |r| r.get(0),
    )
    .optional()
}

//! The audit table: append-only, hash-chained records (see [`crate::audit::chain`]) and the one
//! anchor retention pruning leaves behind. SQLite triggers refuse every UPDATE and DELETE of a
//! record, except deleting records the anchor already covers; the anchor only moves forward,
//! onto a hash that is in the table. Owns SQL only: it never computes a hash itself.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::chain::{Anchor, Head, Record};

/// The audit table, its anchor and the triggers that keep both append-only.
pub const SCHEMA: &str = "
CREATE TABLE audit (
    seq     INTEGER NOT NULL UNIQUE,
    at_ms   INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    object  TEXT NOT NULL,
    place   TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    TEXT NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at_ms);
CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq  INTEGER NOT NULL,
    prev_hash TEXT NOT NULL
) STRICT;
INSERT INTO audit_anchor VALUES
    (1, 1, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: records cannot be changed'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN OLD.seq >= (SELECT next_seq FROM audit_anchor)
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: only pruned records can go'); END;
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
WHEN NEW.next_seq <= OLD.next_seq
  OR NOT EXISTS (SELECT 1 FROM audit WHERE seq = NEW.next_seq - 1 AND hash = NEW.prev_hash)
BEGIN SELECT RAISE(ABORT, 'the audit anchor only moves forward, onto a recorded hash'); END;
CREATE TRIGGER audit_anchor_kept BEFORE DELETE ON audit_anchor
BEGIN SELECT RAISE(ABORT, 'the audit anchor cannot be removed'); END;
";

const COLUMNS: &str = "seq, at_ms, actor, action, object, place, outcome, detail, hash";

fn record(r: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        object: r.get(4)?,
        place: r.get(5)?,
        outcome: r.get(6)?,
        detail: r.get(7)?,
        hash: r.get(8)?,
    })
}

/// Where the stored chain starts.
pub fn anchor(c: &Connection) -> rusqlite::Result<Anchor> {
    c.query_row("SELECT next_seq, prev_hash FROM audit_anchor WHERE id = 1", [], |r| {
        Ok(Anchor { next_seq: r.get(0)?, prev_hash: r.get(1)? })
    })
}

/// The last record's sequence number and hash, or the anchor's if there is none.
pub fn head(c: &Connection) -> rusqlite::Result<Head> {
    let last = c
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok(Head { seq: r.get(0)?, hash: r.get(1)? })
        })
        .optional()?;
    match last {
        Some(head) => Ok(head),
        None => anchor(c).map(|a| Head { seq: a.next_seq - 1, hash: a.prev_hash }),
    }
}

/// Appends one sealed record.
pub fn insert(c: &Connection, r: &Record) -> rusqlite::Result<()> {
    c.execute(
        &format!("INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![r.seq, r.at_ms, r.actor, r.action, r.object, r.place, r.outcome, r.detail, r.hash],
    )?;
    Ok(())
}

/// Every record, in the order they were written (rowid), for verification.
pub fn all(c: &Connection) -> rusqlite::Result<Vec<Record>> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY rowid"))?;
    stmt.query_map([], record)?.collect()
}

/// The records written in `[from_ms, to_ms)`, by sequence number.
pub fn between(c: &Connection, from_ms: i64, to_ms: i64) -> rusqlite::Result<Vec<Record>> {
    let sql = format!("SELECT {COLUMNS} FROM audit WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq");
    let mut stmt = c.prepare(&sql)?;
    stmt.query_map(params![from_ms, to_ms], record)?.collect()
}

/// Drops the records written before `before_ms`, always keeping the last one so the head stays
/// in the table: the anchor first moves onto the hash of the last record dropped. Returns the
/// new first sequence number, or `None` if nothing was old enough.
pub fn prune(c: &Connection, before_ms: i64) -> rusqlite::Result<Option<i64>> {
    let last = head(c)?.seq;
    let first_kept: Option<i64> =
        c.query_row("SELECT MIN(seq) FROM audit WHERE at_ms >= ?1", params![before_ms], |r| {
            r.get(0)
        })?;
    let next = first_kept.unwrap_or(last).min(last);
    if next <= anchor(c)?.next_seq {
        return Ok(None);
    }
    let prev: String =
        c.query_row("SELECT hash FROM audit WHERE seq = ?1", params![next - 1], |r| r.get(0))?;
    c.execute(
        "UPDATE audit_anchor SET next_seq = ?1, prev_hash = ?2 WHERE id = 1",
        params![next, prev],
    )?;
    c.execute("DELETE FROM audit WHERE seq < ?1", params![next])?;
    Ok(Some(next))
}

//! fleetd's SQLite database (`fleetd.db` in the data directory): the schema, its migrations,
//! and the queries on it. Owns SQL; knows nothing of passwords beyond storing their hashes,
//! nor of enrolment tokens beyond storing theirs. `fleetd serve` and the CLI may have the file
//! open at once: writers wait for each other (busy timeout) rather than fail.
//!
//! One file per group of tables: `users.rs` (users, sessions), `devices.rs` (enrolment tokens,
//! devices, the registry generation), `fleet.rs` (config, rollouts, what was published,
//! commands and reports), `audit.rs` (the append-only audit trail). One query style throughout: each query is a free function over a
//! `&Connection`, run inside [`Store::read`] (reads, single statements) or [`Store::write`]
//! (an IMMEDIATE transaction), the only two places that take the connection's lock; several
//! compose in one transaction, e.g. `store.write(|c| { devices::approve(c, ..)?; .. })`.
//!
//! One connection per [`Store`], behind a mutex, not a pool: SQLite takes one writer at a
//! time whatever the number of connections, and WAL lets readers in other connections go on
//! meanwhile. `fleetd serve` opens one `Store` for each of sign-ins, enrolment and fleet
//! administration, so one part's reads never wait behind another part's long write (a
//! rollout step); within one part, queries are short and take turns.
//!
//! A poisoned lock (a thread panicked while holding the connection) is recovered, not
//! propagated: SQLite rolled back whatever that thread had not committed (a `Transaction`
//! rolls back when dropped), so the connection is as consistent as before. One panic must not
//! take every later request down with it. [`crate::accounts`]' session table follows the same
//! rule.

pub mod audit;
pub mod devices;
pub mod fleet;
pub mod idp;
pub mod updates;
pub mod users;
pub mod visit_codes;

pub use devices::{DeviceRecord, EnrolDecision, TokenRecord, bump};
pub use users::UserRecord;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

/// Schema migrations; entry `n` moves the database from `user_version` n to n + 1.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE users (
        username      TEXT PRIMARY KEY NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('clinician', 'admin')),
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    ) STRICT;",
    devices::SCHEMA,
    fleet::SCHEMA,
    fleet::GROUP_INDEX,
    // Console sessions outlive a fleetd restart (a visit in progress re-attaches to its
    // clinician's console). Only a hash of each token is kept.
    "CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY NOT NULL,
        username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
        last_seen    INTEGER NOT NULL
    ) STRICT;",
    users::ROLES_AND_CLINICS,
    // The audit trail: append-only and hash-chained (see `audit.rs`).
    audit::SCHEMA,
    users::ACCOUNT_SCHEMA,
    idp::SCHEMA,
    devices::CERTS_SCHEMA,
    // Visit codes for scheduled visits: a keyed hash of each, never the code.
    visit_codes::SCHEMA,
    // OS bundles and update rollouts.
    updates::SCHEMA,
];

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or migrated.
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    /// A user of that name already exists.
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    /// No user has that name.
    #[error("there is no user {0:?} (see `fleetd user list`)")]
    NoSuchUser(String),
    /// No device has that id.
    #[error("there is no device {0:?} (see `fleetd device list`)")]
    NoSuchDevice(String),
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A handle on the database, shareable across threads.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.into(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
        // WAL: readers (the consoles, the CLI) never wait for the server's writes, and a
        // commit is one append and one fsync. `synchronous` stays FULL: a config version
        // handed out must survive a power cut, or it could be handed out twice.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        migrate(&conn).map_err(open_err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// An empty in-memory database, for tests.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        Self { conn: Mutex::new(conn) }
    }

    /// The connection, recovering a poisoned lock (see the module comment).
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection outside a transaction: reads, and single statements (each is
    /// atomic on its own, and waits for other writers like a transaction does).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.conn();
        Ok(f(&conn)?)
    }

    /// Runs `f` in an IMMEDIATE transaction (one writer at a time, across processes too), and
    /// commits if it succeeds.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(e.into()))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| E::from(e.into()))?;
        Ok(value)
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "foreign_keys", true)?;
    let version = |c: &Connection| c.pragma_query_value(None, "user_version", |r| r.get(0));
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(version(conn)?) {
        // IMMEDIATE, and the version read again inside: the CLI and the server may both start
        // on an old database at once.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = (|| {
            if version(conn)? == n {
                conn.execute_batch(sql)?;
                conn.pragma_update(None, "user_version", n + 1)?;
            }
            conn.execute_batch("COMMIT")
        })();
        if step.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        step?;
    }
    Ok(())
}

//! fleetd's SQLite database (`fleetd.db` in the data directory): the schema, its migrations,
//! and the queries on it. Owns SQL; knows nothing of passwords beyond storing their hashes,
//! nor of enrolment tokens beyond storing theirs. `fleetd serve` and the CLI may have the file
//! open at once: writers wait for each other (busy timeout) rather than fail.
//!
//! Queries: every one runs on a `&Connection` inside [`Store::read`] or [`Store::write`] (a
//! transaction), so queries compose; `fleet.rs` holds them as free functions, and the user,
//! session and device methods here and in `devices.rs` are thin wrappers on the same two.
//!
//! A poisoned lock (a thread panicked while holding the connection) is recovered, not
//! propagated: SQLite rolled back whatever that thread had not committed (a `Transaction`
//! rolls back when dropped), so the connection is as consistent as before. One panic must not
//! take every later request down with it. [`crate::accounts`]' session table follows the same
//! rule.

mod devices;
pub mod fleet;

pub use devices::{DeviceRecord, EnrolDecision, TokenRecord, bump};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

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
    /// No device has that id.
    #[error("there is no device {0:?} (see `fleetd device list`)")]
    NoSuchDevice(String),
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// One row of the `users` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Sign-in name.
    pub username: String,
    /// `clinician` or `admin`.
    pub role: String,
    /// The argon2id hash in PHC string form.
    pub password_hash: String,
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

    /// Adds a user; refuses a name that is taken.
    pub fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.write(|c| {
            let inserted = c.execute(
                "INSERT INTO users (username, role, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (username) DO NOTHING",
                params![user.username, user.role, user.password_hash, unix_now()],
            )?;
            match inserted {
                0 => Err(StoreError::UserExists(user.username.clone())),
                _ => Ok(()),
            }
        })
    }

    /// The user of that name, if any.
    pub fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT username, role, password_hash FROM users WHERE username = ?1",
                params![username],
                |r| {
                    Ok(UserRecord {
                        username: r.get(0)?,
                        role: r.get(1)?,
                        password_hash: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }
}

/// Console sessions, by the SHA-256 of their token (hex).
impl Store {
    /// Records a new session, forgetting those idle since before `idle_before`.
    pub fn insert_session(
        &self,
        token_sha256: &str,
        username: &str,
        now: i64,
        idle_before: i64,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute("DELETE FROM sessions WHERE last_seen < ?1", params![idle_before])?;
            c.execute(
                "INSERT OR REPLACE INTO sessions (token_sha256, username, last_seen)
                 VALUES (?1, ?2, ?3)",
                params![token_sha256, username, now],
            )?;
            Ok(())
        })
    }

    /// The user name and last use (Unix seconds) of a session, if it is recorded.
    pub fn session(&self, token_sha256: &str) -> Result<Option<(String, i64)>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT username, last_seen FROM sessions WHERE token_sha256 = ?1",
                params![token_sha256],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// Marks a session as used at `now`.
    pub fn touch_session(&self, token_sha256: &str, now: i64) -> Result<(), StoreError> {
        self.read(|c| {
            c.execute(
                "UPDATE sessions SET last_seen = ?2 WHERE token_sha256 = ?1",
                params![token_sha256, now],
            )
        })?;
        Ok(())
    }

    /// Forgets a session (sign-out, idle time-out).
    pub fn delete_session(&self, token_sha256: &str) -> Result<(), StoreError> {
        self.read(|c| {
            c.execute("DELETE FROM sessions WHERE token_sha256 = ?1", params![token_sha256])
        })?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserRecord {
        UserRecord { username: "alice".into(), role: "clinician".into(), password_hash: "h".into() }
    }

    #[test]
    fn a_user_is_stored_and_found_by_name() {
        let store = Store::in_memory();
        store.insert_user(&alice()).unwrap();
        assert_eq!(store.user("alice").unwrap(), Some(alice()));
        assert_eq!(store.user("bob").unwrap(), None);
    }

    #[test]
    fn a_taken_user_name_is_refused() {
        let store = Store::in_memory();
        store.insert_user(&alice()).unwrap();
        assert!(matches!(store.insert_user(&alice()), Err(StoreError::UserExists(_))));
    }

    #[test]
    fn reopening_a_database_keeps_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleetd.db");
        Store::open(&path).unwrap().insert_user(&alice()).unwrap();
        assert!(Store::open(&path).unwrap().user("alice").unwrap().is_some());
    }
}

//! The `users` and `sessions` tables: console users (with their password hashes) and console
//! sessions, by the SHA-256 of their token (hex), and the clinics assigned to each user
//! (`user_clinics`). Plain queries, like the rest of [`super`].

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, unix_now};

/// One row of the `users` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Sign-in name.
    pub username: String,
    /// `admin`, `clinician`, `auditor` or `technician`.
    pub role: String,
    /// The argon2id hash in PHC string form.
    pub password_hash: String,
}

/// Four roles instead of two, and clinic assignments. SQLite cannot change a CHECK constraint
/// in place, so `users` is rebuilt; `sessions` refers to it (ON DELETE CASCADE, and dropping a
/// table deletes its rows first), so its rows are set aside and put back.
pub const ROLES_AND_CLINICS: &str = "
    CREATE TEMP TABLE sessions_kept AS SELECT token_sha256, username, last_seen FROM sessions;
    DROP TABLE sessions;
    CREATE TABLE users_new (
        username      TEXT PRIMARY KEY NOT NULL,
        role          TEXT NOT NULL
                      CHECK (role IN ('admin', 'clinician', 'auditor', 'technician')),
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    ) STRICT;
    INSERT INTO users_new (username, role, password_hash, created_at)
        SELECT username, role, password_hash, created_at FROM users;
    DROP TABLE users;
    ALTER TABLE users_new RENAME TO users;
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY NOT NULL,
        username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
        last_seen    INTEGER NOT NULL
    ) STRICT;
    INSERT INTO sessions SELECT token_sha256, username, last_seen FROM sessions_kept;
    DROP TABLE sessions_kept;
    CREATE TABLE user_clinics (
        username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
        clinic   TEXT NOT NULL,
        PRIMARY KEY (username, clinic)
    ) STRICT;";

/// Adds a user; refuses a name that is taken.
pub fn insert_user(c: &Connection, user: &UserRecord) -> Result<(), StoreError> {
    let inserted = c.execute(
        "INSERT INTO users (username, role, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (username) DO NOTHING",
        params![user.username, user.role, user.password_hash, unix_now()],
    )?;
    match inserted {
        0 => Err(StoreError::UserExists(user.username.clone())),
        _ => Ok(()),
    }
}

/// The user of that name, if any.
pub fn user(c: &Connection, username: &str) -> rusqlite::Result<Option<UserRecord>> {
    c.query_row(
        "SELECT username, role, password_hash FROM users WHERE username = ?1",
        params![username],
        |r| Ok(UserRecord { username: r.get(0)?, role: r.get(1)?, password_hash: r.get(2)? }),
    )
    .optional()
}

/// Changes a user's role; `false` if there is no such user.
pub fn set_role(c: &Connection, username: &str, role: &str) -> rusqlite::Result<bool> {
    let n = c.execute("UPDATE users SET role = ?2 WHERE username = ?1", params![username, role])?;
    Ok(n > 0)
}

/// The clinics assigned to a user, sorted.
pub fn clinics(c: &Connection, username: &str) -> rusqlite::Result<Vec<String>> {
    let mut q = c.prepare("SELECT clinic FROM user_clinics WHERE username = ?1 ORDER BY clinic")?;
    q.query_map(params![username], |r| r.get(0))?.collect()
}

/// Replaces the clinics assigned to a user. Run it in a write transaction.
pub fn set_clinics(c: &Connection, username: &str, clinics: &[String]) -> rusqlite::Result<()> {
    c.execute("DELETE FROM user_clinics WHERE username = ?1", params![username])?;
    for clinic in clinics {
        c.execute(
            "INSERT OR IGNORE INTO user_clinics (username, clinic) VALUES (?1, ?2)",
            params![username, clinic],
        )?;
    }
    Ok(())
}

/// Records a new session (`enrol_only`: it may only set up two-step sign-in), forgetting those
/// idle since before `idle_before`.
pub fn insert_session(
    c: &Connection,
    token_sha256: &str,
    username: &str,
    now: i64,
    idle_before: i64,
    enrol_only: bool,
) -> rusqlite::Result<()> {
    c.execute("DELETE FROM sessions WHERE last_seen < ?1", params![idle_before])?;
    c.execute(
        "INSERT OR REPLACE INTO sessions (token_sha256, username, last_seen, created_at, enrol_only)
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![token_sha256, username, now, enrol_only],
    )
    .map(drop)
}

/// A recorded session: its user, last use and start (Unix seconds), and whether it may only
/// set up two-step sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub username: String,
    pub last_seen: i64,
    pub created_at: i64,
    pub enrol_only: bool,
}

/// The session of that token hash, if it is recorded.
pub fn session(c: &Connection, token_sha256: &str) -> rusqlite::Result<Option<SessionRecord>> {
    c.query_row(
        "SELECT username, last_seen, created_at, enrol_only FROM sessions WHERE token_sha256 = ?1",
        params![token_sha256],
        |r| {
            Ok(SessionRecord {
                username: r.get(0)?,
                last_seen: r.get(1)?,
                created_at: r.get(2)?,
                enrol_only: r.get(3)?,
            })
        },
    )
    .optional()
}

/// A session that has set up two-step sign-in becomes a full one.
pub fn mark_session_full(c: &Connection, token_sha256: &str) -> rusqlite::Result<()> {
    c.execute("UPDATE sessions SET enrol_only = 0 WHERE token_sha256 = ?1", params![token_sha256])
        .map(drop)
}

/// Forgets every session of a user (disabled, removed, signed out by an admin, new password).
pub fn delete_sessions_of(c: &Connection, username: &str) -> rusqlite::Result<usize> {
    c.execute("DELETE FROM sessions WHERE username = ?1", params![username])
}

/// Marks a session as used at `now`.
pub fn touch_session(c: &Connection, token_sha256: &str, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE sessions SET last_seen = ?2 WHERE token_sha256 = ?1",
        params![token_sha256, now],
    )
    .map(drop)
}

/// Forgets a session (sign-out, idle time-out).
pub fn delete_session(c: &Connection, token_sha256: &str) -> rusqlite::Result<()> {
    c.execute("DELETE FROM sessions WHERE token_sha256 = ?1", params![token_sha256]).map(drop)
}

/// The account columns added for two-step sign-in, lifecycle and throttling (a migration).
pub const ACCOUNT_SCHEMA: &str = "
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN totp_secret TEXT;
    ALTER TABLE users ADD COLUMN totp_pending TEXT;
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT -1;
    ALTER TABLE users ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN last_failure INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN enrol_only INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE recovery_codes (
        username    TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
        code_sha256 TEXT NOT NULL,
        PRIMARY KEY (username, code_sha256)
    ) STRICT;";

/// What a user's account holds besides name, role and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub disabled: bool,
    /// The confirmed TOTP secret (base32), if two-step sign-in is set up.
    pub totp_secret: Option<String>,
    /// A secret shown for enrolment, not yet confirmed with a code.
    pub totp_pending: Option<String>,
    /// The last TOTP time step accepted (-1: none).
    pub totp_last_step: i64,
    /// Failed sign-ins since the last success or unlock, and when the last was.
    pub failures: u32,
    pub last_failure: i64,
}

const STATE_COLUMNS: &str = "username, role, created_at, disabled, totp_secret, totp_pending,
    totp_last_step, failures, last_failure";

fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountState> {
    Ok(AccountState {
        username: r.get(0)?,
        role: r.get(1)?,
        created_at: r.get(2)?,
        disabled: r.get(3)?,
        totp_secret: r.get(4)?,
        totp_pending: r.get(5)?,
        totp_last_step: r.get(6)?,
        failures: r.get(7)?,
        last_failure: r.get(8)?,
    })
}

/// The account of that name, if any.
pub fn state(c: &Connection, username: &str) -> rusqlite::Result<Option<AccountState>> {
    let sql = format!("SELECT {STATE_COLUMNS} FROM users WHERE username = ?1");
    c.query_row(&sql, params![username], state_row).optional()
}

/// Every account, by name.
pub fn list(c: &Connection) -> rusqlite::Result<Vec<AccountState>> {
    let sql = format!("SELECT {STATE_COLUMNS} FROM users ORDER BY username");
    let mut stmt = c.prepare(&sql)?;
    stmt.query_map([], state_row)?.collect()
}

fn changed(n: usize, username: &str) -> Result<(), StoreError> {
    match n {
        0 => Err(StoreError::NoSuchUser(username.into())),
        _ => Ok(()),
    }
}

/// Disables or enables an account; a disabled one's sessions are forgotten.
pub fn set_disabled(c: &Connection, username: &str, disabled: bool) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE users SET disabled = ?2 WHERE username = ?1",
        params![username, disabled],
    )?;
    changed(n, username)?;
    if disabled {
        delete_sessions_of(c, username)?;
    }
    Ok(())
}

/// Removes an account, its sessions and recovery codes.
pub fn delete_user(c: &Connection, username: &str) -> Result<(), StoreError> {
    delete_sessions_of(c, username)?;
    c.execute("DELETE FROM recovery_codes WHERE username = ?1", params![username])?;
    let n = c.execute("DELETE FROM users WHERE username = ?1", params![username])?;
    changed(n, username)
}

/// Sets a new password hash and forgets the user's sessions.
pub fn set_password(c: &Connection, username: &str, hash: &str) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE users SET password_hash = ?2 WHERE username = ?1",
        params![username, hash],
    )?;
    changed(n, username)?;
    delete_sessions_of(c, username).map(drop).map_err(Into::into)
}

/// Records the failed sign-ins of an account (0 failures: unlocked).
pub fn set_failures(
    c: &Connection,
    username: &str,
    failures: u32,
    last_failure: i64,
) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE users SET failures = ?2, last_failure = ?3 WHERE username = ?1",
        params![username, failures, last_failure],
    )?;
    changed(n, username)
}

/// Keeps a secret shown for enrolment until it is confirmed (`None`: forget it).
pub fn set_totp_pending(
    c: &Connection,
    username: &str,
    secret: Option<&str>,
) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE users SET totp_pending = ?2 WHERE username = ?1",
        params![username, secret],
    )?;
    changed(n, username)
}

/// Sets up two-step sign-in: the confirmed secret, the step of the code that confirmed it, and
/// the hashes of new recovery codes (replacing any old ones).
pub fn set_totp(
    c: &Connection,
    username: &str,
    secret: &str,
    step: i64,
    recovery_hashes: &[String],
) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE users SET totp_secret = ?2, totp_pending = NULL, totp_last_step = ?3
         WHERE username = ?1",
        params![username, secret, step],
    )?;
    changed(n, username)?;
    c.execute("DELETE FROM recovery_codes WHERE username = ?1", params![username])?;
    for hash in recovery_hashes {
        c.execute(
            "INSERT OR IGNORE INTO recovery_codes (username, code_sha256) VALUES (?1, ?2)",
            params![username, hash],
        )?;
    }
    Ok(())
}

/// Records `step` as the last TOTP step used, if it is later than the one recorded; false if it
/// is not (the code was used already, perhaps by a request racing this one).
pub fn advance_totp_step(c: &Connection, username: &str, step: i64) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE users SET totp_last_step = ?2 WHERE username = ?1 AND totp_last_step < ?2",
        params![username, step],
    )?;
    Ok(n == 1)
}

/// Uses up a recovery code; false if the user has no such (unused) code.
pub fn use_recovery_code(c: &Connection, username: &str, hash: &str) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM recovery_codes WHERE username = ?1 AND code_sha256 = ?2",
        params![username, hash],
    )?;
    Ok(n == 1)
}

/// Recovery codes a user has left.
pub fn recovery_codes_left(c: &Connection, username: &str) -> rusqlite::Result<u32> {
    c.query_row("SELECT count(*) FROM recovery_codes WHERE username = ?1", params![username], |r| {
        r.get(0)
    })
}

/// Removes a user's two-step sign-in (secret, recovery codes) and their sessions: they set it
/// up again at their next sign-in.
pub fn reset_mfa(c: &Connection, username: &str) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = -1
         WHERE username = ?1",
        params![username],
    )?;
    changed(n, username)?;
    c.execute("DELETE FROM recovery_codes WHERE username = ?1", params![username])?;
    delete_sessions_of(c, username).map(drop).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn alice() -> UserRecord {
        UserRecord { username: "alice".into(), role: "clinician".into(), password_hash: "h".into() }
    }

    #[test]
    fn a_user_is_stored_and_found_by_name() {
        let store = Store::in_memory();
        store.write(|c| insert_user(c, &alice())).unwrap();
        assert_eq!(store.read(|c| user(c, "alice")).unwrap(), Some(alice()));
        assert_eq!(store.read(|c| user(c, "bob")).unwrap(), None);
    }

    #[test]
    fn a_taken_user_name_is_refused() {
        let store = Store::in_memory();
        store.write(|c| insert_user(c, &alice())).unwrap();
        let again = store.write(|c| insert_user(c, &alice()));
        assert!(matches!(again, Err(StoreError::UserExists(_))));
    }

    #[test]
    fn every_role_can_be_stored_and_clinics_are_kept_per_user() {
        let store = Store::in_memory();
        for role in ["admin", "clinician", "auditor", "technician"] {
            let record = UserRecord { username: role.into(), role: role.into(), ..alice() };
            store.write(|c| insert_user(c, &record)).unwrap();
        }
        let bad = UserRecord { username: "x".into(), role: "root".into(), ..alice() };
        assert!(store.write(|c| insert_user(c, &bad)).is_err(), "an unknown role was stored");
        let clinics = vec!["North".to_string(), "East".to_string()];
        store.write(|c| set_clinics(c, "clinician", &clinics).map_err(StoreError::from)).unwrap();
        let got = store.read(|c| super::clinics(c, "clinician")).unwrap();
        assert_eq!(got, ["East", "North"]);
        assert!(store.read(|c| super::clinics(c, "auditor")).unwrap().is_empty());
    }

    /// A database from before the four roles keeps its users and their sessions.
    #[test]
    fn the_roles_migration_keeps_users_and_sessions() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let all = super::super::MIGRATIONS;
        let at = all.iter().position(|m| *m == ROLES_AND_CLINICS).unwrap();
        let old = &all[..at];
        for sql in old {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute("INSERT INTO users VALUES ('alice', 'admin', 'h', 1)", []).unwrap();
        conn.execute("INSERT INTO sessions VALUES ('t', 'alice', 5)", []).unwrap();
        conn.execute_batch(ROLES_AND_CLINICS).unwrap();
        let kept = |conn: &Connection| {
            conn.query_row(
                "SELECT username, last_seen FROM sessions WHERE token_sha256 = 't'",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()
            .unwrap()
        };
        assert_eq!(kept(&conn), Some(("alice".into(), 5)));
        assert_eq!(user(&conn, "alice").unwrap().unwrap().role, "admin");
        conn.execute("INSERT INTO users VALUES ('bob', 'auditor', 'h', 1)", []).unwrap();
        conn.execute("DELETE FROM users WHERE username = 'alice'", []).unwrap();
        assert_eq!(kept(&conn), None, "sessions no longer follow their user");
    }

    #[test]
    fn reopening_a_database_keeps_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::data_dir::DataDir::of(&dir).db();
        Store::open(&path).unwrap().write(|c| insert_user(c, &alice())).unwrap();
        assert!(Store::open(&path).unwrap().read(|c| user(c, "alice")).unwrap().is_some());
    }
}

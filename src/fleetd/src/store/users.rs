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

/// Records a new session, forgetting those idle since before `idle_before`.
pub fn insert_session(
    c: &Connection,
    token_sha256: &str,
    username: &str,
    now: i64,
    idle_before: i64,
) -> rusqlite::Result<()> {
    c.execute("DELETE FROM sessions WHERE last_seen < ?1", params![idle_before])?;
    c.execute(
        "INSERT OR REPLACE INTO sessions (token_sha256, username, last_seen) VALUES (?1, ?2, ?3)",
        params![token_sha256, username, now],
    )
    .map(drop)
}

/// The user name and last use (Unix seconds) of a session, if it is recorded.
pub fn session(c: &Connection, token_sha256: &str) -> rusqlite::Result<Option<(String, i64)>> {
    c.query_row(
        "SELECT username, last_seen FROM sessions WHERE token_sha256 = ?1",
        params![token_sha256],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
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
        insert_session(&conn, "t", "alice", 5, 0).unwrap();
        conn.execute_batch(ROLES_AND_CLINICS).unwrap();
        assert_eq!(session(&conn, "t").unwrap(), Some(("alice".into(), 5)));
        assert_eq!(user(&conn, "alice").unwrap().unwrap().role, "admin");
        conn.execute("INSERT INTO users VALUES ('bob', 'auditor', 'h', 1)", []).unwrap();
        conn.execute("DELETE FROM users WHERE username = 'alice'", []).unwrap();
        assert_eq!(session(&conn, "t").unwrap(), None, "sessions no longer follow their user");
    }

    #[test]
    fn reopening_a_database_keeps_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::data_dir::DataDir::of(&dir).db();
        Store::open(&path).unwrap().write(|c| insert_user(c, &alice())).unwrap();
        assert!(Store::open(&path).unwrap().read(|c| user(c, "alice")).unwrap().is_some());
    }
}

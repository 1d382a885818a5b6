//! The `users` and `sessions` tables: console users (with their password hashes) and console
//! sessions, by the SHA-256 of their token (hex). Plain queries, like the rest of [`super`].

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, unix_now};

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
    fn reopening_a_database_keeps_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::data_dir::DataDir::of(&dir).db();
        Store::open(&path).unwrap().write(|c| insert_user(c, &alice())).unwrap();
        assert!(Store::open(&path).unwrap().read(|c| user(c, "alice")).unwrap().is_some());
    }
}

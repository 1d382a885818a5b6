//! Accounts that sign in through an identity provider (OpenID Connect): the `users` columns that
//! tie a row to one provider's subject (`idp_issuer`, `idp_subject`, unique together), and the
//! queries on them. Such a row has no usable password hash. Plain queries, like the rest of
//! [`super`]; knows nothing of tokens.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::users::{self, UserRecord};

/// The migration: which provider and subject a user row stands for (both NULL: a local account).
pub const SCHEMA: &str = "
    ALTER TABLE users ADD COLUMN idp_issuer TEXT;
    ALTER TABLE users ADD COLUMN idp_subject TEXT;
    CREATE UNIQUE INDEX users_idp ON users (idp_issuer, idp_subject)
        WHERE idp_issuer IS NOT NULL;";

/// What an identity-provider account stores instead of a password hash: not a PHC string, so
/// no password ever matches it.
pub const NO_PASSWORD: &str = "!identity-provider";

/// The user name of the account of `issuer`'s `subject`, if there is one.
pub fn find(c: &Connection, issuer: &str, subject: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT username FROM users WHERE idp_issuer = ?1 AND idp_subject = ?2",
        params![issuer, subject],
        |r| r.get(0),
    )
    .optional()
}

/// The issuer a user signs in through; `None` for a local account (or no such user).
pub fn issuer_of(c: &Connection, username: &str) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT idp_issuer FROM users WHERE username = ?1", params![username], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

/// Every identity-provider account: (user name, issuer).
pub fn all(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut q = c.prepare(
        "SELECT username, idp_issuer FROM users WHERE idp_issuer IS NOT NULL ORDER BY username",
    )?;
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// Adds the account of `issuer`'s `subject` as `username` with `role` (no usable password).
/// Refuses a name that is taken. Run it in a write transaction.
pub fn insert(
    c: &Connection,
    username: &str,
    role: &str,
    issuer: &str,
    subject: &str,
) -> Result<(), StoreError> {
    let record = UserRecord {
        username: username.into(),
        role: role.into(),
        password_hash: NO_PASSWORD.into(),
    };
    users::insert_user(c, &record)?;
    c.execute(
        "UPDATE users SET idp_issuer = ?2, idp_subject = ?3 WHERE username = ?1",
        params![username, issuer, subject],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn an_account_is_found_by_issuer_and_subject_and_a_local_one_has_no_issuer() {
        let store = Store::in_memory();
        store.write(|c| insert(c, "ann", "clinician", "https://idp.example", "sub-1")).unwrap();
        let local =
            UserRecord { username: "bob".into(), role: "admin".into(), password_hash: "h".into() };
        store.write(|c| users::insert_user(c, &local)).unwrap();
        let found = store.read(|c| find(c, "https://idp.example", "sub-1")).unwrap();
        assert_eq!(found.as_deref(), Some("ann"));
        assert_eq!(store.read(|c| find(c, "https://other.example", "sub-1")).unwrap(), None);
        assert_eq!(store.read(|c| issuer_of(c, "bob")).unwrap(), None);
        let ann = store.read(|c| issuer_of(c, "ann")).unwrap();
        assert_eq!(ann.as_deref(), Some("https://idp.example"));
        assert_eq!(store.read(all).unwrap(), [("ann".into(), "https://idp.example".into())]);
    }

    #[test]
    fn one_subject_of_one_issuer_is_one_account() {
        let store = Store::in_memory();
        store.write(|c| insert(c, "ann", "clinician", "https://idp.example", "sub-1")).unwrap();
        let again = store.write(|c| insert(c, "ann2", "clinician", "https://idp.example", "sub-1"));
        assert!(again.is_err(), "a second account for the same subject was stored");
        store.write(|c| insert(c, "ann3", "clinician", "https://b.example", "sub-1")).unwrap();
    }
}

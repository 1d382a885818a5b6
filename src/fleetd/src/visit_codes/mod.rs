//! Visit codes for scheduled visits: a clinician makes a six-digit code for a patient with an
//! appointment; the patient types it at a kiosk of that clinic and waits for that clinician
//! only. This module is the thin shell over [`rules`] (the pure part: drawing, checking,
//! back-off) and [`crate::store::visit_codes`] (the table): [`VisitCodes`] makes, lists,
//! revokes, takes up and gives back codes. Blocking (SQLite): call it on the blocking pool.
//!
//! A code is kept only as its HMAC-SHA256 under a per-fleet key (`visit-code-key` in the data
//! directory); the digits are returned once, by [`VisitCodes::create`], and never logged,
//! audited or stored.

pub mod rules;

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use telekiosk_protocol::api::{VisitCode, VisitCodeInfo};
use telekiosk_protocol::visit::CodeRefusal;

use crate::store::{Store, StoreError, visit_codes as table};

/// Why a code could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum VisitCodeError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system's random source failed.
    #[error("no random numbers: {0}")]
    Random(getrandom::Error),
    /// Every draw hit a live code (the fleet has very many codes at once).
    #[error("no free code could be drawn; try again")]
    Crowded,
}

impl From<rusqlite::Error> for VisitCodeError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A code a patient took up: which one (its id) and whose visit it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenUp {
    /// The code's short id.
    pub id: String,
    /// The clinician who made it, whom the visit waits for.
    pub clinician: String,
}

/// The visit codes of the fleet.
#[derive(Debug)]
pub struct VisitCodes {
    store: Store,
    key: hmac::Key,
}

impl VisitCodes {
    /// Codes in `store`, hashed with the key in `key_file` (made, owner-only, if missing).
    pub fn open(store: Store, key_file: &Path) -> anyhow::Result<Self> {
        let key = match std::fs::read_to_string(key_file) {
            Ok(text) => STANDARD
                .decode(text.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .with_context(|| format!("{} is not a visit code key", key_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
                crate::pki::write(key_file, &format!("{}\n", STANDARD.encode(key)), 0o600)?;
                key.to_vec()
            }
            Err(e) => return Err(e).context(format!("cannot read {}", key_file.display())),
        };
        Ok(Self::with_key(store, &key))
    }

    fn with_key(store: Store, key: &[u8]) -> Self {
        Self { store, key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    /// An in-memory table with a fixed key, for tests.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Self::with_key(Store::in_memory(), b"test key")
    }

    fn hash(&self, code: &str) -> Vec<u8> {
        hmac::sign(&self.key, code.as_bytes()).as_ref().to_vec()
    }

    /// Makes a code for `clinic`, by `clinician`, working `valid_mins` from `now` (Unix
    /// seconds). The only time the digits leave fleetd.
    pub fn create(
        &self,
        clinic: &str,
        clinician: &str,
        valid_mins: u32,
        now: i64,
    ) -> Result<VisitCode, VisitCodeError> {
        let expires_at = now + i64::from(valid_mins) * 60;
        self.store.write(|c| {
            table::prune(c, now)?;
            for _ in 0..20 {
                let mut bytes = [0u8; 4];
                getrandom::fill(&mut bytes).map_err(VisitCodeError::Random)?;
                let Some(code) = rules::code_from(bytes) else { continue };
                let id = short_id()?;
                if table::insert(c, &id, &self.hash(&code), clinic, clinician, now, expires_at)? {
                    return Ok(VisitCode { code, id, clinic: clinic.into(), expires_at });
                }
            }
            Err(VisitCodeError::Crowded)
        })
    }

    /// `clinician`'s codes that have not expired, without their digits.
    pub fn list(&self, clinician: &str, now: i64) -> Result<Vec<VisitCodeInfo>, VisitCodeError> {
        let rows = self.store.read(|c| table::active(c, clinician, now))?;
        Ok(rows
            .into_iter()
            .map(|r| VisitCodeInfo {
                id: r.id,
                clinic: r.clinic,
                created_at: r.created_at,
                expires_at: r.expires_at,
                in_use: r.in_use,
            })
            .collect())
    }

    /// Revokes `clinician`'s code `id`; its clinic, or `None` if they have no such code.
    pub fn revoke(&self, id: &str, clinician: &str) -> Result<Option<String>, VisitCodeError> {
        Ok(self.store.write(|c| Ok::<_, StoreError>(table::delete(c, id, clinician)?))?)
    }

    /// Takes up `code` for visit `visit_id` at a kiosk of `clinic` at `now`, or says why not.
    pub fn take_up(
        &self,
        code: &str,
        clinic: &str,
        visit_id: &str,
        now: i64,
    ) -> Result<Result<TakenUp, CodeRefusal>, VisitCodeError> {
        let hash = self.hash(code);
        self.store.write(|c| {
            let found = table::find(c, &hash)?;
            let stored = found.as_ref().map(|(.., s)| s);
            if let Err(refusal) = rules::check(stored, clinic, visit_id, now) {
                return Ok(Err(refusal));
            }
            let (id, clinician, _) = found.expect("checked above");
            table::hold(c, &id, visit_id, now)?;
            Ok(Ok(TakenUp { id, clinician }))
        })
    }

    /// Gives code `id` back from visit `visit_id` (it ended before a clinician joined); true if
    /// the visit held it.
    pub fn give_back(&self, id: &str, visit_id: &str) -> Result<bool, VisitCodeError> {
        Ok(self.store.write(|c| Ok::<_, StoreError>(table::release(c, id, visit_id)?))?)
    }
}

/// A short id for a code, no secret: `vc-` and 8 hex digits.
fn short_id() -> Result<String, VisitCodeError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(VisitCodeError::Random)?;
    Ok(format!("vc-{:08x}", u32::from_le_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_for_its_clinic_and_again_after_the_visit_gives_it_back() {
        let codes = VisitCodes::in_memory();
        let made = codes.create("North", "alice", 60, 1000).unwrap();
        assert!(made.code.len() == 6 && made.code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(made.expires_at, 1000 + 3600);
        let taken = codes.take_up(&made.code, "North", "v-1", 1010).unwrap().unwrap();
        assert_eq!(taken, TakenUp { id: made.id.clone(), clinician: "alice".into() });
        assert_eq!(
            codes.take_up(&made.code, "North", "v-2", 1020).unwrap(),
            Err(CodeRefusal::Used)
        );
        assert_eq!(
            codes.take_up(&made.code, "South", "v-2", 1020).unwrap(),
            Err(CodeRefusal::OtherClinic)
        );
        assert!(codes.give_back(&made.id, "v-1").unwrap());
        assert!(codes.take_up(&made.code, "North", "v-2", 1030).unwrap().is_ok());
        assert_eq!(
            codes.take_up(&made.code, "North", "v-3", 1000 + 3600).unwrap(),
            Err(CodeRefusal::Used)
        );
        assert!(codes.give_back(&made.id, "v-2").unwrap());
        assert_eq!(
            codes.take_up(&made.code, "North", "v-3", 1000 + 3600).unwrap(),
            Err(CodeRefusal::Expired)
        );
    }

    #[test]
    fn the_key_is_made_once_owner_only_and_kept_across_restarts() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (db, key) = (dir.path().join("fleetd.db"), dir.path().join("visit-code-key"));
        let first = VisitCodes::open(Store::open(&db).unwrap(), &key).unwrap();
        let made = first.create("North", "alice", 60, 1000).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(first);
        let again = VisitCodes::open(Store::open(&db).unwrap(), &key).unwrap();
        assert!(again.take_up(&made.code, "North", "v-1", 1010).unwrap().is_ok());
        std::fs::write(&key, "not a key\n").unwrap();
        assert!(VisitCodes::open(Store::open(&db).unwrap(), &key).is_err());
    }

    #[test]
    fn the_table_keeps_no_digits_and_lists_a_clinicians_own_codes_without_them() {
        let codes = VisitCodes::in_memory();
        let made = codes.create("North", "alice", 60, 1000).unwrap();
        codes.create("North", "bob", 60, 1000).unwrap();
        let dump: Vec<String> = codes
            .store
            .read(|c| {
                let mut s = c.prepare("SELECT * FROM visit_codes")?;
                let n = s.column_count();
                let rows = s.query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })?;
                rows.map(|r| r.map(|v| format!("{v:?}"))).collect()
            })
            .unwrap();
        let digits_as_bytes = format!("{:?}", made.code.as_bytes());
        assert!(
            dump.iter().all(|row| !row.contains(&made.code) && !row.contains(&digits_as_bytes))
        );
        let listed = codes.list("alice", 1000).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id.as_str(), listed[0].in_use), (made.id.as_str(), false));
        assert_eq!(codes.revoke(&made.id, "bob").unwrap(), None, "bob revoked alice's code");
        assert_eq!(codes.revoke(&made.id, "alice").unwrap().as_deref(), Some("North"));
        assert_eq!(
            codes.take_up(&made.code, "North", "v-1", 1010).unwrap(),
            Err(CodeRefusal::Unknown)
        );
    }
}

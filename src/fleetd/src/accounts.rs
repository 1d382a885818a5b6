//! People who sign in to the consoles: their roles, password hashes (argon2id) and sessions.
//!
//! Owns the password rules, sign-in, and the session table (random 256-bit tokens, 15-minute
//! idle time-out): in memory, and in the store by the SHA-256 of each token so that sessions
//! outlive a fleetd restart (a clinician in a visit re-attaches to it without signing in again).
//! Never logs or stores a password; never logs or stores a session token.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub use crate::access::Role;
use crate::access::Scope;
use crate::store::users;
use crate::store::{Store, StoreError, UserRecord, unix_now};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// A session unused for this long is gone.
pub const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// A session's last use is written to the store at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Sign-in name.
    pub username: String,
    /// What they may do.
    pub role: Role,
    /// The clinics assigned to them (a clinician's visits, a technician's kiosks).
    pub clinics: Vec<String>,
}

impl User {
    /// Their role and clinics, as the access rules take them.
    pub fn scope(&self) -> Scope {
        Scope::new(self.role, self.clinics.iter().cloned())
    }
}

/// Why an account operation was refused. Messages are fit to show to the person concerned.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The new password is shorter than [`MIN_PASSWORD_CHARS`].
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password is too long: use at most {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    /// The user name breaks the naming rule.
    #[error("a user name is 1-64 characters of letters, digits, '.', '_', '-' or '@'")]
    BadUsername,
    /// No user has that name.
    #[error("there is no user {0:?}")]
    NoSuchUser(String),
    /// A clinic name is empty, too long or has control characters.
    #[error("{0:?} is not a clinic name: use 1-128 printable characters")]
    BadClinic(String),
    /// Unknown user or wrong password; deliberately does not say which.
    #[error("Wrong user name or password.")]
    WrongCredentials,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// argon2 failed (out of memory, broken stored hash).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes a new password with argon2id (default parameters: 19 MiB, 2 passes), refusing one that
/// is too short or too long.
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountsError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountsError::PasswordTooLong);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountsError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountsError::Hash(e.to_string()))?;
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt);
    Ok(hash.map_err(|e| AccountsError::Hash(e.to_string()))?.to_string())
}

/// Whether `password` matches the stored PHC-format `hash`. A broken hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Users (in the store) and their sessions (in memory).
#[derive(Debug)]
pub struct Accounts {
    store: Store,
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Debug)]
struct Session {
    user: User,
    last_seen: Instant,
    /// When `last_seen` was last written to the store.
    stored: Instant,
}

impl Accounts {
    /// Accounts backed by `store`, with no sessions.
    pub fn new(store: Store) -> Self {
        Self { store, sessions: Mutex::new(HashMap::new()) }
    }

    /// Adds a user with a new password and no clinics.
    #[cfg(test)]
    pub fn add_user(
        &self,
        username: &str,
        role: Role,
        password: &str,
    ) -> Result<(), AccountsError> {
        self.add_user_in(username, role, &[], password)
    }

    /// Adds a user with a new password, assigned to `clinics`.
    pub fn add_user_in(
        &self,
        username: &str,
        role: Role,
        clinics: &[String],
        password: &str,
    ) -> Result<(), AccountsError> {
        check_username(username)?;
        let clinics = check_clinics(clinics)?;
        let password_hash = hash_password(password)?;
        let record =
            UserRecord { username: username.into(), role: role.as_str().into(), password_hash };
        Ok(self.store.write(|c| {
            users::insert_user(c, &record)?;
            users::set_clinics(c, username, &clinics).map_err(StoreError::from)
        })?)
    }

    /// Changes a user's role; their open sessions take it at once.
    pub fn set_role(&self, username: &str, role: Role) -> Result<User, AccountsError> {
        let changed = self
            .store
            .write(|c| Ok::<_, StoreError>(users::set_role(c, username, role.as_str())?))?;
        if !changed {
            return Err(AccountsError::NoSuchUser(username.into()));
        }
        self.refresh(username)
    }

    /// Replaces the clinics assigned to a user; their open sessions take them at once.
    pub fn set_clinics(&self, username: &str, clinics: &[String]) -> Result<User, AccountsError> {
        let clinics = check_clinics(clinics)?;
        let known = self.store.write(|c| {
            if users::user(c, username)?.is_none() {
                return Ok::<_, StoreError>(false);
            }
            users::set_clinics(c, username, &clinics)?;
            Ok(true)
        })?;
        if !known {
            return Err(AccountsError::NoSuchUser(username.into()));
        }
        self.refresh(username)
    }

    /// The user as stored now, with their clinics.
    pub fn user(&self, username: &str) -> Result<User, AccountsError> {
        let record = self.store.read(|c| users::user(c, username))?;
        let record = record.ok_or_else(|| AccountsError::NoSuchUser(username.into()))?;
        self.user_of(record)
    }

    fn user_of(&self, record: UserRecord) -> Result<User, AccountsError> {
        let role = Role::parse(&record.role)
            .ok_or_else(|| AccountsError::Hash(format!("unknown role {:?}", record.role)))?;
        let clinics = self.store.read(|c| users::clinics(c, &record.username))?;
        Ok(User { username: record.username, role, clinics })
    }

    /// Gives the live sessions of `username` their stored role and clinics.
    fn refresh(&self, username: &str) -> Result<User, AccountsError> {
        let user = self.user(username)?;
        for session in self.sessions().values_mut().filter(|s| s.user.username == username) {
            session.user = user.clone();
        }
        Ok(user)
    }

    /// Checks a user name and password and opens a session; returns its token. Slow on purpose
    /// (argon2): call it off the async runtime.
    pub fn sign_in(
        &self,
        username: &str,
        password: &str,
        now: Instant,
    ) -> Result<(String, User), AccountsError> {
        if password.len() > MAX_PASSWORD_BYTES || check_username(username).is_err() {
            return Err(AccountsError::WrongCredentials);
        }
        let record = self.store.read(|c| users::user(c, username))?;
        // An unknown user costs the same hashing work as a known one, so timing tells nothing.
        let hash = record.as_ref().map_or_else(|| dummy_hash(), |r| r.password_hash.as_str());
        let matches = verify_password(hash, password);
        let (Some(record), true) = (record, matches) else {
            return Err(AccountsError::WrongCredentials);
        };
        let user = self.user_of(record)?;
        let token = new_token()?;
        let idle_before = unix_now() - SESSION_IDLE.as_secs() as i64;
        let hash = token_hash(&token);
        self.store.write(|c| {
            users::insert_session(c, &hash, &user.username, unix_now(), idle_before)
                .map_err(StoreError::from)
        })?;
        let mut sessions = self.sessions();
        sessions.retain(|_, s| now.saturating_duration_since(s.last_seen) < SESSION_IDLE);
        let session = Session { user: user.clone(), last_seen: now, stored: now };
        sessions.insert(token.clone(), session);
        Ok((token, user))
    }

    /// The live sessions; a poisoned lock is recovered, as the store's is (a panicking holder
    /// leaves at worst one session half-updated, which its next use settles).
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user of a live session, marking it as used at `now`; `None` if unknown or idle too long.
    pub fn session(&self, token: &str, now: Instant) -> Option<User> {
        let mut sessions = self.sessions();
        if !sessions.contains_key(token) {
            let restored = self.restore(token, now)?;
            sessions.insert(token.to_string(), restored);
        }
        let session = sessions.get_mut(token)?;
        if now.saturating_duration_since(session.last_seen) >= SESSION_IDLE {
            sessions.remove(token);
            let _ = self.store.read(|c| users::delete_session(c, &token_hash(token)));
            return None;
        }
        session.last_seen = now;
        // The role and clinics as stored now: a change made from the CLI (another process)
        // applies to open sessions at their next request.
        if let Ok(Some(record)) = self.store.read(|c| users::user(c, &session.user.username))
            && let Ok(user) = self.user_of(record)
        {
            session.user = user;
        }
        if now.saturating_duration_since(session.stored) >= TOUCH_EVERY {
            session.stored = now;
            if let Err(e) =
                self.store.read(|c| users::touch_session(c, &token_hash(token), unix_now()))
            {
                tracing::warn!("cannot record a session's use: {e}");
            }
        }
        Some(session.user.clone())
    }

    /// A session the store has (fleetd restarted since it began), if it is live and its user
    /// still exists, with its current role.
    fn restore(&self, token: &str, now: Instant) -> Option<Session> {
        let (username, last_seen) =
            self.store.read(|c| users::session(c, &token_hash(token))).ok()??;
        let idle = Duration::from_secs(unix_now().saturating_sub(last_seen).max(0) as u64);
        if idle >= SESSION_IDLE {
            return None;
        }
        let record = self.store.read(|c| users::user(c, &username)).ok()??;
        let user = self.user_of(record).ok()?;
        let last_seen = now.checked_sub(idle).unwrap_or(now);
        Some(Session { user, last_seen, stored: now })
    }

    /// Whether a session is live at `now`, without counting this as use.
    pub fn is_live(&self, token: &str, now: Instant) -> bool {
        let sessions = self.sessions();
        sessions
            .get(token)
            .is_some_and(|s| now.saturating_duration_since(s.last_seen) < SESSION_IDLE)
    }

    /// Ends a session (sign-out). Unknown tokens are ignored.
    pub fn sign_out(&self, token: &str) {
        self.sessions().remove(token);
        if let Err(e) = self.store.read(|c| users::delete_session(c, &token_hash(token))) {
            tracing::warn!("cannot forget a session: {e}");
        }
    }
}

/// Longest clinic name, in bytes (the protocol's limit on place names).
const MAX_CLINIC_BYTES: usize = 128;

/// Clinic names without duplicates, each non-empty, printable and at most [`MAX_CLINIC_BYTES`].
fn check_clinics(clinics: &[String]) -> Result<Vec<String>, AccountsError> {
    let mut out: Vec<String> = Vec::new();
    for clinic in clinics {
        let clinic = clinic.trim();
        let ok = !clinic.is_empty()
            && clinic.len() <= MAX_CLINIC_BYTES
            && !clinic.chars().any(char::is_control);
        if !ok {
            return Err(AccountsError::BadClinic(clinic.into()));
        }
        if !out.iter().any(|c| c == clinic) {
            out.push(clinic.into());
        }
    }
    Ok(out)
}

fn check_username(username: &str) -> Result<(), AccountsError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    let ok = (1..=64).contains(&username.len()) && username.chars().all(ok_char);
    ok.then_some(()).ok_or(AccountsError::BadUsername)
}

/// A random 256-bit session token, hex-encoded.
fn new_token() -> Result<String, AccountsError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AccountsError::Hash(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the store keeps of a token: its SHA-256, hex.
fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts_with_alice() -> Accounts {
        let accounts = Accounts::new(Store::in_memory());
        accounts.add_user("alice", Role::Clinician, "correct horse").unwrap();
        accounts
    }

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        assert_ne!(
            hash_password("correct horse").unwrap(),
            hash_password("correct horse").unwrap()
        );
    }

    #[test]
    fn a_password_shorter_than_eight_characters_is_refused() {
        assert!(matches!(hash_password("1234567"), Err(AccountsError::PasswordTooShort)));
        let accounts = Accounts::new(Store::in_memory());
        let refused = accounts.add_user("bob", Role::FleetAdmin, "short");
        assert!(matches!(refused, Err(AccountsError::PasswordTooShort)));
        assert!(hash_password("12345678").is_ok());
    }

    #[test]
    fn signing_in_gives_a_256_bit_token_that_identifies_the_user() {
        let accounts = accounts_with_alice();
        let now = Instant::now();
        let (token, user) = accounts.sign_in("alice", "correct horse", now).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(user, User { username: "alice".into(), role: Role::Clinician, clinics: vec![] });
        assert_eq!(accounts.session(&token, now), Some(user));
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_get_the_same_refusal() {
        let accounts = accounts_with_alice();
        let now = Instant::now();
        for (user, password) in [("alice", "wrong password"), ("mallory", "correct horse")] {
            let refused = accounts.sign_in(user, password, now);
            assert!(matches!(refused, Err(AccountsError::WrongCredentials)), "{user}");
        }
    }

    #[test]
    fn a_session_idle_for_fifteen_minutes_is_gone_but_use_keeps_it_alive() {
        let accounts = accounts_with_alice();
        let t0 = Instant::now();
        let (token, _) = accounts.sign_in("alice", "correct horse", t0).unwrap();
        let t1 = t0 + Duration::from_secs(14 * 60);
        assert!(accounts.session(&token, t1).is_some());
        assert!(accounts.session(&token, t1 + Duration::from_secs(14 * 60)).is_some());
        assert!(accounts.session(&token, t1 + Duration::from_secs(44 * 60)).is_none());
    }

    #[test]
    fn a_session_outlives_a_restart_but_not_sign_out_and_the_store_never_holds_the_token() {
        let accounts = accounts_with_alice();
        let now = Instant::now();
        let (token, user) = accounts.sign_in("alice", "correct horse", now).unwrap();
        let (other, _) = accounts.sign_in("alice", "correct horse", now).unwrap();
        assert!(
            accounts.store.read(|c| users::session(c, &token)).unwrap().is_none(),
            "the token itself is stored"
        );
        let restarted = Accounts::new(accounts.store);
        assert_eq!(restarted.session(&token, now), Some(user));
        restarted.sign_out(&other);
        let again = Accounts::new(restarted.store);
        assert!(again.session(&other, now).is_none());
        assert!(again.session("not-a-token", now).is_none());
    }

    #[test]
    fn a_role_or_clinic_change_made_by_another_process_applies_to_an_open_session() {
        let accounts = accounts_with_alice();
        let now = Instant::now();
        let (token, _) = accounts.sign_in("alice", "correct horse", now).unwrap();
        // What `fleetd user role` / `fleetd user clinics` write, behind the server's back.
        accounts.store.read(|c| users::set_role(c, "alice", "auditor")).unwrap();
        let clinics = ["South".to_string()];
        accounts.store.read(|c| users::set_clinics(c, "alice", &clinics)).unwrap();
        let user = accounts.session(&token, now).unwrap();
        assert_eq!((user.role, user.clinics), (Role::Auditor, vec!["South".to_string()]));
    }

    #[test]
    fn set_role_and_set_clinics_refuse_an_unknown_user_and_a_bad_clinic() {
        let accounts = accounts_with_alice();
        assert!(matches!(
            accounts.set_role("bob", Role::Auditor),
            Err(AccountsError::NoSuchUser(_))
        ));
        let bad = accounts.set_clinics("alice", &["No\nrth".to_string()]);
        assert!(matches!(bad, Err(AccountsError::BadClinic(_))));
        let user = accounts.set_clinics("alice", &[" North ".into(), "North".into()]).unwrap();
        assert_eq!(user.clinics, ["North"]);
    }

    #[test]
    fn signing_out_ends_the_session() {
        let accounts = accounts_with_alice();
        let now = Instant::now();
        let (token, _) = accounts.sign_in("alice", "correct horse", now).unwrap();
        accounts.sign_out(&token);
        assert!(accounts.session(&token, now).is_none());
    }
}

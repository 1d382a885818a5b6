//! People who sign in to the consoles: their roles, password hashes (argon2id), two-step
//! sign-in (TOTP, [`totp`]), throttling ([`throttle`]), the password policy ([`policy`]) and
//! sessions.
//!
//! Signing in takes two steps: the password ([`Accounts::sign_in`]) gives a short-lived pending
//! sign-in, and a code from the user's authenticator app or a recovery code
//! ([`Accounts::sign_in_code`]) turns it into a session. A user who must use two-step sign-in
//! but has not set it up gets a session that may only set it up ([`Reach::EnrolOnly`]).
//! Sessions are random 256-bit tokens, kept in memory and in the store by the SHA-256 of each
//! token (so they outlive a fleetd restart); each ends after an idle time (15 min) and an
//! absolute lifetime (12 h), and at once when its account is disabled, removed or signed out by
//! an admin, from the API or the CLI (every lookup checks the store). Account administration is
//! in `accounts/admin.rs`. Accounts of an identity provider (OpenID Connect) are created and
//! updated at their sign-in (`accounts/idp.rs`, from the claims mapped by `oidc_claims.rs`).
//! Never logs or stores a password, a TOTP secret in a log, a code, or a session token.

mod admin;
pub mod idp;
pub mod oidc_claims;
mod policy;
mod sessions;
mod sign_in;
pub mod throttle;
pub mod totp;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::watch;

pub use policy::{MAX_PASSWORD_BYTES, PolicyError};
use throttle::{ByAddress, Policy};

pub use crate::access::Role;
use crate::access::Scope;
use crate::store::users;
use crate::store::{Store, StoreError, UserRecord};

/// A session unused for this long is gone (unless configured otherwise).
pub const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// A session is gone this long after sign-in, used or not.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A session's last use is written to the store at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// How long the code step of a sign-in may take, and how many codes it may try.
const PENDING_FOR: Duration = Duration::from_secs(5 * 60);
const PENDING_TRIES: u32 = 5;

/// Who must use two-step sign-in (`fleetd serve --require-mfa`). Admins always must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RequireMfa {
    /// Every account.
    #[default]
    All,
    /// Admins only.
    Admins,
}

impl RequireMfa {
    fn applies_to(self, role: Role) -> bool {
        self == RequireMfa::All || role == Role::FleetAdmin
    }
}

/// How sign-in and sessions behave in this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Idle time-out.
    pub idle: Duration,
    /// Absolute session lifetime.
    pub lifetime: Duration,
    /// Who must use two-step sign-in.
    pub require_mfa: RequireMfa,
    /// Back-off after failed sign-ins, per account.
    pub account: Policy,
    /// Back-off after failed sign-ins, per source address.
    pub address: Policy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle: SESSION_IDLE,
            lifetime: SESSION_LIFETIME,
            require_mfa: RequireMfa::All,
            account: Policy::ACCOUNT,
            address: Policy::ADDRESS,
        }
    }
}

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

/// What a session may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Everything the user's role allows.
    Full,
    /// Only setting up two-step sign-in.
    EnrolOnly,
}

/// Where a sign-in stands after the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A session was opened.
    Session { token: String, user: User, reach: Reach },
    /// The password was right; a code must follow, with this pending sign-in's token.
    Code { pending: String },
}

/// Why an account operation was refused. Messages are fit to show to the person concerned.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The new password breaks the policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
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
    /// Too many failures: heard again after `secs` (back-off), without checking anything.
    #[error("too many failed sign-ins: try again in {secs} seconds")]
    Throttled { secs: u64 },
    /// The account is locked for `secs` more after too many failures.
    #[error("this account is locked after too many failed sign-ins: try again in {} minutes, or ask an admin to unlock it", secs.div_ceil(60))]
    Locked { secs: u64 },
    /// The account is disabled (said only after a right password).
    #[error("this account is disabled: ask an admin")]
    Disabled,
    /// Not the code shown now.
    #[error("That code is not right. Codes change every 30 seconds — type the one shown now.")]
    WrongCode,
    /// A code (or recovery code) used before.
    #[error("That code was used already. Wait for the next one: codes change every 30 seconds.")]
    UsedCode,
    /// The code step came too late, or after too many wrong codes.
    #[error(
        "that sign-in took too long or had too many wrong codes: enter your user name and password again"
    )]
    PendingExpired,
    /// Two-step sign-in is already set up for this account.
    #[error("two-step sign-in is already set up for this account; an admin can reset it")]
    MfaAlreadySet,
    /// A code was sent to confirm an enrolment that was not started.
    #[error("start setting up two-step sign-in first")]
    NoEnrolment,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// argon2 or the random source failed (out of memory, broken stored hash).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes a new password with argon2id (default parameters: 19 MiB, 2 passes), refusing one that
/// breaks the policy for `username`.
pub fn hash_password(username: &str, password: &str) -> Result<String, AccountsError> {
    policy::check(username, password)?;
    hash_unchecked(password)
}

/// The Argon2 hash of a technician's maintenance code (4–12 digits) for the fleet config's
/// `maintenance_code_hash`, which kiosks check the code against; the code itself is kept nowhere.
pub fn hash_maintenance_code(code: &str) -> Result<String, String> {
    if !(4..=12).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "a maintenance code is 4 to 12 digits (the kiosk's keypad has only digits)".into()
        );
    }
    hash_unchecked(code).map_err(|e| e.to_string())
}

fn hash_unchecked(password: &str) -> Result<String, AccountsError> {
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

/// Users (in the store), their sessions and pending sign-ins (in memory), and the throttle of
/// source addresses.
#[derive(Debug)]
pub struct Accounts {
    store: Store,
    settings: Settings,
    sessions: Mutex<HashMap<String, Session>>,
    pending: Mutex<HashMap<String, Pending>>,
    by_address: Mutex<ByAddress>,
    /// Bumped whenever sessions are ended by an account change, so open WebSockets look again.
    revoked: watch::Sender<u64>,
}

#[derive(Debug)]
struct Session {
    user: User,
    reach: Reach,
    created: Instant,
    last_seen: Instant,
    /// When `last_seen` was last written to the store.
    stored: Instant,
}

#[derive(Debug)]
struct Pending {
    username: String,
    expires: Instant,
    tries: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock is recovered, as the store's is (a panicking holder leaves at worst one
    // entry half-updated, which its next use settles).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Accounts {
    /// Accounts backed by `store`, with the default settings and no sessions.
    pub fn new(store: Store) -> Self {
        Self::with_settings(store, Settings::default())
    }

    /// Accounts backed by `store`, with `settings`.
    pub fn with_settings(store: Store, settings: Settings) -> Self {
        Self {
            store,
            settings,
            sessions: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            by_address: Mutex::new(ByAddress::new(settings.address)),
            revoked: watch::Sender::new(0),
        }
    }

    /// Told (a new value) whenever an account change ends sessions.
    pub fn revocations(&self) -> watch::Receiver<u64> {
        self.revoked.subscribe()
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
        let password_hash = hash_password(username, password)?;
        let record =
            UserRecord { username: username.into(), role: role.as_str().into(), password_hash };
        Ok(self.store.write(|c| {
            users::insert_user(c, &record)?;
            users::set_clinics(c, username, &clinics).map_err(StoreError::from)
        })?)
    }

    /// Changes a user's role; their open sessions take it at their next request.
    pub fn set_role(&self, username: &str, role: Role) -> Result<User, AccountsError> {
        let changed = self
            .store
            .write(|c| Ok::<_, StoreError>(users::set_role(c, username, role.as_str())?))?;
        if !changed {
            return Err(AccountsError::NoSuchUser(username.into()));
        }
        self.user(username)
    }

    /// Replaces the clinics assigned to a user; their open sessions take them at their next
    /// request.
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
        self.user(username)
    }

    /// The user as stored now, with their clinics.
    pub fn user(&self, username: &str) -> Result<User, AccountsError> {
        let clinics = self.store.read(|c| users::clinics(c, username))?;
        let record = self.store.read(|c| users::user(c, username))?;
        let record = record.ok_or_else(|| AccountsError::NoSuchUser(username.into()))?;
        Ok(User { username: record.username, role: parse_role(&record.role)?, clinics })
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

fn parse_role(s: &str) -> Result<Role, AccountsError> {
    Role::parse(s).ok_or_else(|| AccountsError::Hash(format!("unknown role {s:?}")))
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
    DUMMY.get_or_init(|| hash_unchecked("not-a-real-password").unwrap_or_default())
}

#[cfg(test)]
mod tests;

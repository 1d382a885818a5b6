//! People who sign in to the consoles: their roles, password hashes (argon2id), two-step
//! sign-in (TOTP, [`totp`]), throttling ([`throttle`]), the password policy ([`policy`]) and
//! sessions.
//!
//! Signing in takes two steps: the password ([`Accounts::sign_in`]) gives a short-lived pending
//! sign-in, and a code from the user's authenticator app or a recovery code
//! ([`Accounts::sign_in_code`]) turns it into a session. A user who must use two-step sign-in
//! but has not set it up gets a session that may only set it up ([`Scope::EnrolOnly`]).
//! Sessions are random 256-bit tokens, kept in memory and in the store by the SHA-256 of each
//! token (so they outlive a fleetd restart); each ends after an idle time (15 min) and an
//! absolute lifetime (12 h), and at once when its account is disabled, removed or signed out by
//! an admin, from the API or the CLI (every lookup checks the store). Account administration is
//! in `accounts/admin.rs`.
//! Never logs or stores a password, a TOTP secret in a log, a code, or a session token.

mod admin;
mod policy;
pub mod throttle;
pub mod totp;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::watch;

pub use policy::{MAX_PASSWORD_BYTES, PolicyError};
use throttle::{Attempts, ByAddress, Decision, Policy};

use crate::store::users::{self, AccountState};
use crate::store::{Store, StoreError, UserRecord, unix_now};

/// A session unused for this long is gone (unless configured otherwise).
pub const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// A session is gone this long after sign-in, used or not.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A session's last use is written to the store at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// How long the code step of a sign-in may take, and how many codes it may try.
const PENDING_FOR: Duration = Duration::from_secs(5 * 60);
const PENDING_TRIES: u32 = 5;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Sees the waiting queue and joins visits.
    Clinician,
    /// Everything a clinician can, plus fleet administration (later issues).
    Admin,
}

impl Role {
    /// The name stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clinician => "clinician",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Role::Clinician, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

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
        self == RequireMfa::All || role == Role::Admin
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
}

/// What a session may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything the user's role allows.
    Full,
    /// Only setting up two-step sign-in.
    EnrolOnly,
}

/// Where a sign-in stands after the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A session was opened.
    Session { token: String, user: User, scope: Scope },
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
    scope: Scope,
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

    /// Adds a user with a new password.
    pub fn add_user(
        &self,
        username: &str,
        role: Role,
        password: &str,
    ) -> Result<(), AccountsError> {
        check_username(username)?;
        let password_hash = hash_password(username, password)?;
        let record =
            UserRecord { username: username.into(), role: role.as_str().into(), password_hash };
        Ok(self.store.write(|c| users::insert_user(c, &record))?)
    }

    /// Whether an attempt from `ip` would be heard now, without checking anything (cheap: call
    /// it before queueing for argon2).
    pub fn address_decision(&self, ip: Option<IpAddr>) -> Decision {
        ip.map_or(Decision::Go, |ip| lock(&self.by_address).decide(ip, unix_now()))
    }

    /// Checks a user name and password (first step). Refuses a throttled address or account
    /// without hashing anything. Slow on purpose (argon2): call it off the async runtime.
    pub fn sign_in(
        &self,
        username: &str,
        password: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<SignIn, AccountsError> {
        let unix = unix_now();
        match self.address_decision(ip) {
            Decision::Go => {}
            Decision::Wait { secs } | Decision::Locked { secs } => {
                return Err(AccountsError::Throttled { secs });
            }
        }
        if password.len() > MAX_PASSWORD_BYTES || check_username(username).is_err() {
            self.address_failed(ip, unix);
            return Err(AccountsError::WrongCredentials);
        }
        let state = self.store.read(|c| users::state(c, username))?;
        if let Some(state) = &state {
            self.account_decision(state, unix)?;
        }
        let hash = self.store.read(|c| users::user(c, username))?.map(|r| r.password_hash);
        // An unknown user costs the same hashing work as a known one, so timing tells nothing.
        let matches = verify_password(hash.as_deref().unwrap_or_else(|| dummy_hash()), password);
        let (Some(state), true) = (&state, matches) else {
            self.address_failed(ip, unix);
            if let Some(state) = &state {
                self.account_failed(&state.username, unix)?;
            }
            return Err(AccountsError::WrongCredentials);
        };
        let state = state.clone();
        if state.disabled {
            return Err(AccountsError::Disabled);
        }
        let role = parse_role(&state.role)?;
        if state.totp_secret.is_some() {
            let pending = new_token()?;
            let entry = Pending { username: state.username, expires: now + PENDING_FOR, tries: 0 };
            let mut all = lock(&self.pending);
            all.retain(|_, p| p.expires > now);
            all.insert(pending.clone(), entry);
            return Ok(SignIn::Code { pending });
        }
        self.succeeded(ip, &state)?;
        let user = User { username: state.username, role };
        let scope = match self.settings.require_mfa.applies_to(role) {
            true => Scope::EnrolOnly,
            false => Scope::Full,
        };
        let token = self.open_session(&user, scope, now)?;
        Ok(SignIn::Session { token, user, scope })
    }

    /// The second step: a TOTP code (6 digits) or a recovery code for a pending sign-in.
    pub fn sign_in_code(
        &self,
        pending: &str,
        code: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(String, User), AccountsError> {
        let unix = unix_now();
        if let Some(secs) = self.address_decision(ip).retry_after() {
            return Err(AccountsError::Throttled { secs });
        }
        let username = {
            let mut all = lock(&self.pending);
            let entry = all.get_mut(pending).filter(|p| p.expires > now);
            let Some(entry) = entry.filter(|p| p.tries < PENDING_TRIES) else {
                all.remove(pending);
                return Err(AccountsError::PendingExpired);
            };
            entry.tries += 1;
            entry.username.clone()
        };
        let state = self.store.read(|c| users::state(c, &username))?;
        let Some(state) = state.filter(|s| !s.disabled) else {
            return Err(AccountsError::PendingExpired);
        };
        self.account_decision(&state, unix)?;
        let Some(secret) = &state.totp_secret else { return Err(AccountsError::PendingExpired) };
        let digits = code.chars().filter(|c| !c.is_whitespace()).count();
        let checked = if digits == 6 {
            match totp::verify(secret, code, unix as u64, state.totp_last_step) {
                Ok(step) => {
                    match self.store.read(|c| users::advance_totp_step(c, &username, step))? {
                        true => Ok(()),
                        false => Err(AccountsError::UsedCode),
                    }
                }
                Err(totp::CodeError::Wrong) => Err(AccountsError::WrongCode),
                Err(totp::CodeError::Used) => Err(AccountsError::UsedCode),
            }
        } else {
            let hash = totp::recovery_hash(code);
            match self.store.read(|c| users::use_recovery_code(c, &username, &hash))? {
                true => {
                    let left = self.store.read(|c| users::recovery_codes_left(c, &username))?;
                    tracing::info!(target: "fleetd::audit", user = %username, left, "recovery code used");
                    Ok(())
                }
                false => Err(AccountsError::WrongCode),
            }
        };
        if let Err(e) = checked {
            self.account_failed(&state.username, unix)?;
            self.address_failed(ip, unix);
            return Err(e);
        }
        lock(&self.pending).remove(pending);
        self.succeeded(ip, &state)?;
        let user = User { username: state.username, role: parse_role(&state.role)? };
        let token = self.open_session(&user, Scope::Full, now)?;
        Ok((token, user))
    }

    /// Whose pending sign-in `pending` is, for the audit line of its code step.
    pub fn pending_user(&self, pending: &str) -> Option<String> {
        lock(&self.pending).get(pending).map(|p| p.username.clone())
    }

    fn account_decision(&self, state: &AccountState, unix: i64) -> Result<(), AccountsError> {
        let attempts = Attempts { failures: state.failures, last_failure: state.last_failure };
        match self.settings.account.decide(&attempts, unix) {
            Decision::Go => Ok(()),
            Decision::Wait { secs } => Err(AccountsError::Throttled { secs }),
            Decision::Locked { secs } => Err(AccountsError::Locked { secs }),
        }
    }

    /// A wrong password or code for an existing account: counts it (read and written in one
    /// transaction, so racing failures all count), and says so once when it locks the account.
    fn account_failed(&self, name: &str, unix: i64) -> Result<(), AccountsError> {
        let policy = self.settings.account;
        let (after, locked) = self.store.write(|c| {
            let state = users::state(c, name).map_err(StoreError::from)?;
            let before = state.map_or(Attempts::default(), |s| Attempts {
                failures: s.failures,
                last_failure: s.last_failure,
            });
            let (after, locked) = policy.failed(before, unix);
            users::set_failures(c, name, after.failures, after.last_failure)?;
            Ok::<_, StoreError>((after, locked))
        })?;
        if locked {
            let minutes = policy.lock_for.as_secs() / 60;
            tracing::warn!(target: "fleetd::audit", user = %name, failures = after.failures, "account locked for {minutes} min after failed sign-ins");
        }
        Ok(())
    }

    fn address_failed(&self, ip: Option<IpAddr>, unix: i64) {
        if let Some(ip) = ip
            && lock(&self.by_address).failed(ip, unix)
        {
            tracing::warn!(target: "fleetd::audit", source = %ip, "source address locked after failed sign-ins");
        }
    }

    fn succeeded(&self, ip: Option<IpAddr>, state: &AccountState) -> Result<(), AccountsError> {
        if let Some(ip) = ip {
            lock(&self.by_address).succeeded(ip);
        }
        if state.failures > 0 {
            self.store.write(|c| users::set_failures(c, &state.username, 0, 0))?;
        }
        Ok(())
    }

    fn open_session(
        &self,
        user: &User,
        scope: Scope,
        now: Instant,
    ) -> Result<String, AccountsError> {
        let token = new_token()?;
        let idle_before = unix_now() - self.settings.idle.as_secs() as i64;
        let hash = token_hash(&token);
        let enrol_only = scope == Scope::EnrolOnly;
        self.store.write(|c| {
            users::insert_session(c, &hash, &user.username, unix_now(), idle_before, enrol_only)
                .map_err(StoreError::from)
        })?;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| !self.expired(s, now));
        let session =
            Session { user: user.clone(), scope, created: now, last_seen: now, stored: now };
        sessions.insert(token.clone(), session);
        Ok(token)
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) >= self.settings.idle
            || now.saturating_duration_since(s.created) >= self.settings.lifetime
    }

    /// The user of a live full session, marking it as used at `now`; `None` if unknown, idle
    /// too long, too old, enrol-only, or its account is disabled or gone.
    pub fn session(&self, token: &str, now: Instant) -> Option<User> {
        self.lookup(token, now, true).filter(|(_, scope)| *scope == Scope::Full).map(|(u, _)| u)
    }

    /// The user and scope of a live session; `touch`: count this as use (not for background
    /// polls). Checks the store each time, so a change made by the CLI counts at once.
    pub fn lookup(&self, token: &str, now: Instant, touch: bool) -> Option<(User, Scope)> {
        let hash = token_hash(token);
        let stored = self.store.read(|c| users::session(c, &hash)).ok().flatten();
        let account = stored
            .as_ref()
            .and_then(|s| self.store.read(|c| users::state(c, &s.username)).ok().flatten());
        let mut sessions = lock(&self.sessions);
        let (Some(stored), Some(account)) = (stored, account.filter(|a| !a.disabled)) else {
            sessions.remove(token);
            return None;
        };
        let role = parse_role(&account.role).ok()?;
        let session = sessions.entry(token.to_string()).or_insert_with(|| {
            // fleetd restarted since the session began.
            let ago = |t: i64| Duration::from_secs(unix_now().saturating_sub(t).max(0) as u64);
            let at = |t: i64| now.checked_sub(ago(t)).unwrap_or(now);
            let scope = if stored.enrol_only { Scope::EnrolOnly } else { Scope::Full };
            let user = User { username: stored.username.clone(), role };
            Session {
                user,
                scope,
                created: at(stored.created_at),
                last_seen: at(stored.last_seen),
                stored: now,
            }
        });
        if self.expired(session, now) {
            sessions.remove(token);
            let _ = self.store.read(|c| users::delete_session(c, &hash));
            return None;
        }
        session.user.role = role;
        if touch {
            session.last_seen = now;
            if now.saturating_duration_since(session.stored) >= TOUCH_EVERY {
                session.stored = now;
                if let Err(e) = self.store.read(|c| users::touch_session(c, &hash, unix_now())) {
                    tracing::warn!("cannot record a session's use: {e}");
                }
            }
        }
        Some((session.user.clone(), session.scope))
    }

    /// Whether a session is live at `now`, without counting this as use.
    pub fn is_live(&self, token: &str, now: Instant) -> bool {
        self.lookup(token, now, false).is_some()
    }

    /// Ends a session (sign-out). Unknown tokens are ignored.
    pub fn sign_out(&self, token: &str) {
        lock(&self.sessions).remove(token);
        if let Err(e) = self.store.read(|c| users::delete_session(c, &token_hash(token))) {
            tracing::warn!("cannot forget a session: {e}");
        }
    }
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

//! The two steps of signing in: the password ([`Accounts::sign_in`]: argon2, after the
//! throttle of the source address and of the account has said the attempt may be heard), then
//! a TOTP code or a recovery code for the pending sign-in ([`Accounts::sign_in_code`]). Counts
//! failures per account (in the store) and per source address (in memory), and audits a
//! lock-out once. Never logs a password, code or secret.

use std::net::IpAddr;
use std::time::Instant;

use super::throttle::{Attempts, Decision};
use super::{
    Accounts, AccountsError, MAX_PASSWORD_BYTES, PENDING_FOR, PENDING_TRIES, Pending, Reach,
    SignIn, User, check_username, dummy_hash, lock, new_token, parse_role, totp, verify_password,
};
use crate::store::users::{self, AccountState};
use crate::store::{StoreError, unix_now};

impl Accounts {
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
        // An account of an identity provider has no password here, even one an admin set.
        let external = self.store.read(|c| crate::store::idp::issuer_of(c, username))?.is_some();
        let hash = hash.filter(|_| !external);
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
        let clinics = self.store.read(|c| users::clinics(c, &state.username))?;
        let user = User { username: state.username, role, clinics };
        let reach = match self.settings.require_mfa.applies_to(role) {
            true => Reach::EnrolOnly,
            false => Reach::Full,
        };
        let token = self.open_session(&user, reach, now)?;
        Ok(SignIn::Session { token, user, reach })
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
        let clinics = self.store.read(|c| users::clinics(c, &state.username))?;
        let user = User { username: state.username, role: parse_role(&state.role)?, clinics };
        let token = self.open_session(&user, Reach::Full, now)?;
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
}

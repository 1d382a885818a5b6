//! What is done to accounts rather than by signing in: setting up two-step sign-in (the user,
//! in an enrol-only or full session) and the account lifecycle (an admin, from the API or the
//! CLI): list, disable, enable, remove, new password, sign out everywhere, unlock, reset
//! two-step sign-in. Every change that ends sessions ends them in the store (so a running
//! fleetd sees a change made by the CLI at its next lookup) and tells open WebSockets.
//! Never logs a secret, code or password.

use super::{Accounts, AccountsError, Reach, Role, hash_password, lock, token_hash, totp};
use crate::store::StoreError;
use crate::store::users::{self, AccountState};

/// A secret to set up two-step sign-in with: as text, as an `otpauth://` URI, and as a QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub secret: String,
    pub uri: String,
    pub qr_svg: String,
}

impl Accounts {
    /// Starts setting up two-step sign-in for `username`: a new secret, kept until confirmed.
    pub fn enrol_start(&self, username: &str) -> Result<Enrolment, AccountsError> {
        let state = self.account(username)?;
        if state.totp_secret.is_some() {
            return Err(AccountsError::MfaAlreadySet);
        }
        let secret = totp::new_secret().map_err(|e| AccountsError::Hash(e.to_string()))?;
        self.store.write(|c| users::set_totp_pending(c, username, Some(&secret)))?;
        let uri = totp::uri(&secret, username);
        let qr_svg = totp::qr_svg(&uri);
        Ok(Enrolment { secret, uri, qr_svg })
    }

    /// Confirms the enrolment with a current code: two-step sign-in is on, the session `token`
    /// becomes a full one, and the recovery codes (shown once, stored hashed) are returned.
    pub fn enrol_confirm(
        &self,
        token: &str,
        username: &str,
        code: &str,
    ) -> Result<Vec<String>, AccountsError> {
        let state = self.account(username)?;
        if state.totp_secret.is_some() {
            return Err(AccountsError::MfaAlreadySet);
        }
        let Some(secret) = state.totp_pending else { return Err(AccountsError::NoEnrolment) };
        let step = totp::verify(&secret, code, crate::store::unix_now() as u64, -1)
            .map_err(|_| AccountsError::WrongCode)?;
        let codes = self.set_totp(username, &secret, step)?;
        let hash = token_hash(token);
        self.store.read(|c| users::mark_session_full(c, &hash))?;
        if let Some(s) = lock(&self.sessions).get_mut(token) {
            s.reach = Reach::Full;
        }
        tracing::info!(target: "fleetd::audit", user = %username, "two-step sign-in set up");
        Ok(codes)
    }

    fn set_totp(
        &self,
        username: &str,
        secret: &str,
        step: i64,
    ) -> Result<Vec<String>, AccountsError> {
        let codes = totp::new_recovery_codes().map_err(|e| AccountsError::Hash(e.to_string()))?;
        let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_hash(c)).collect();
        self.store.write(|c| users::set_totp(c, username, secret, step, &hashes))?;
        Ok(codes)
    }

    /// Adds a user with two-step sign-in already set up (for provisioning scripts and tests):
    /// returns the secret and the recovery codes.
    pub fn add_user_with_totp(
        &self,
        username: &str,
        role: Role,
        clinics: &[String],
        password: &str,
    ) -> Result<(String, Vec<String>), AccountsError> {
        let secret = totp::new_secret().map_err(|e| AccountsError::Hash(e.to_string()))?;
        self.add_user_in(username, role, clinics, password)?;
        let codes = self.set_totp(username, &secret, -1)?;
        Ok((secret, codes))
    }

    fn account(&self, username: &str) -> Result<AccountState, AccountsError> {
        let state = self.store.read(|c| users::state(c, username))?;
        state.ok_or_else(|| StoreError::NoSuchUser(username.into()).into())
    }

    /// Every account.
    pub fn list(&self) -> Result<Vec<AccountState>, AccountsError> {
        Ok(self.store.read(users::list)?)
    }

    /// Disables (`true`) or enables an account; disabling ends its sessions at once.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> Result<(), AccountsError> {
        self.store.write(|c| users::set_disabled(c, username, disabled))?;
        if disabled {
            self.forget_sessions_of(username);
        }
        Ok(())
    }

    /// Removes an account; its sessions end at once.
    pub fn remove(&self, username: &str) -> Result<(), AccountsError> {
        self.store.write(|c| users::delete_user(c, username))?;
        self.forget_sessions_of(username);
        Ok(())
    }

    /// Sets a new password (checked against the policy); the user's sessions end.
    pub fn set_password(&self, username: &str, password: &str) -> Result<(), AccountsError> {
        let hash = hash_password(username, password)?;
        self.store.write(|c| users::set_password(c, username, &hash))?;
        self.forget_sessions_of(username);
        Ok(())
    }

    /// Ends every session of a user.
    pub fn sign_out_everywhere(&self, username: &str) -> Result<usize, AccountsError> {
        self.account(username)?;
        let n = self
            .store
            .write(|c| users::delete_sessions_of(c, username).map_err(StoreError::from))?;
        self.forget_sessions_of(username);
        Ok(n)
    }

    /// Lifts a lock (and the back-off) after failed sign-ins.
    pub fn unlock(&self, username: &str) -> Result<(), AccountsError> {
        Ok(self.store.write(|c| users::set_failures(c, username, 0, 0))?)
    }

    /// Removes a user's two-step sign-in; they set it up again at their next sign-in. Their
    /// sessions end.
    pub fn reset_mfa(&self, username: &str) -> Result<(), AccountsError> {
        self.store.write(|c| users::reset_mfa(c, username))?;
        self.forget_sessions_of(username);
        Ok(())
    }

    fn forget_sessions_of(&self, username: &str) {
        lock(&self.sessions).retain(|_, s| s.user.username != username);
        lock(&self.pending).retain(|_, p| p.username != username);
        self.revoked.send_modify(|n| *n += 1);
    }
}

//! Console sessions: opening one after sign-in, looking one up on each request (idle time-out,
//! absolute lifetime, and the store checked each time so that an account change made by the
//! CLI counts at once), and signing out. A session is in memory and, by the SHA-256 of its
//! token, in the store. Never logs or stores a token.

use std::time::{Duration, Instant};

use super::{
    Accounts, AccountsError, Reach, Session, TOUCH_EVERY, User, lock, new_token, parse_role,
    token_hash,
};
use crate::store::users;
use crate::store::{StoreError, unix_now};

impl Accounts {
    pub(super) fn open_session(
        &self,
        user: &User,
        reach: Reach,
        now: Instant,
    ) -> Result<String, AccountsError> {
        let token = new_token()?;
        let idle_before = unix_now() - self.settings.idle.as_secs() as i64;
        let hash = token_hash(&token);
        let enrol_only = reach == Reach::EnrolOnly;
        self.store.write(|c| {
            users::insert_session(c, &hash, &user.username, unix_now(), idle_before, enrol_only)
                .map_err(StoreError::from)
        })?;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| !self.expired(s, now));
        let session =
            Session { user: user.clone(), reach, created: now, last_seen: now, stored: now };
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
        self.lookup(token, now, true).filter(|(_, reach)| *reach == Reach::Full).map(|(u, _)| u)
    }

    /// The user and reach of a live session; `touch`: count this as use (not for background
    /// polls). Checks the store each time, so a change made by the CLI counts at once.
    pub fn lookup(&self, token: &str, now: Instant, touch: bool) -> Option<(User, Reach)> {
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
        // The clinics as stored now: a change made from the CLI applies at the next request.
        let clinics = self.store.read(|c| users::clinics(c, &account.username)).ok()?;
        let session = sessions.entry(token.to_string()).or_insert_with(|| {
            // fleetd restarted since the session began.
            let ago = |t: i64| Duration::from_secs(unix_now().saturating_sub(t).max(0) as u64);
            let at = |t: i64| now.checked_sub(ago(t)).unwrap_or(now);
            let reach = if stored.enrol_only { Reach::EnrolOnly } else { Reach::Full };
            let user = User { username: stored.username.clone(), role, clinics: clinics.clone() };
            Session {
                user,
                reach,
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
        session.user.clinics = clinics;
        if touch {
            session.last_seen = now;
            if now.saturating_duration_since(session.stored) >= TOUCH_EVERY {
                session.stored = now;
                if let Err(e) = self.store.read(|c| users::touch_session(c, &hash, unix_now())) {
                    tracing::warn!("cannot record a session's use: {e}");
                }
            }
        }
        Some((session.user.clone(), session.reach))
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

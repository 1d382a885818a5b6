//! Sign-ins sent to the identity provider and not back yet: what the callback needs to finish
//! one (PKCE verifier, nonce, the redirect URI used, which console), found by its `state` and
//! only for the browser that started it (the random id in its `__Host-tk_oidc` cookie). Each is
//! used once, lives [`PENDING_FOR`], and at most [`MAX_PENDING`] are kept (the oldest dropped).
//! Pure: plain data and the caller's clock; no I/O, no logging.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the person has to sign in at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(10 * 60);
/// How many unfinished sign-ins are kept at once.
pub const MAX_PENDING: usize = 1000;

/// Which console a sign-in started from, and goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Clinician,
    Admin,
}

impl Console {
    /// `clinician` or `admin` (the `console` query parameter).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "clinician" => Some(Console::Clinician),
            "admin" => Some(Console::Admin),
            _ => None,
        }
    }

    /// The console's page.
    pub fn path(self) -> &'static str {
        match self {
            Console::Clinician => "/",
            Console::Admin => "/admin",
        }
    }
}

/// One sign-in sent to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The random id in the browser's `__Host-tk_oidc` cookie.
    pub browser: String,
    pub console: Console,
    /// The PKCE code verifier (its S256 challenge went to the provider).
    pub verifier: String,
    pub nonce: String,
    /// The redirect URI sent with the authorization request (sent again with the code).
    pub redirect: String,
    pub at: Instant,
}

/// Why a callback has no sign-in to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPending {
    /// No sign-in has that state (never, used already, or dropped).
    Unknown,
    /// It took longer than [`PENDING_FOR`].
    Expired,
    /// Another browser started it (or the cookie is missing).
    OtherBrowser,
}

/// The unfinished sign-ins, by `state`.
#[derive(Debug)]
pub struct PendingLogins {
    by_state: HashMap<String, PendingLogin>,
    max: usize,
    ttl: Duration,
}

impl Default for PendingLogins {
    fn default() -> Self {
        Self::new(MAX_PENDING, PENDING_FOR)
    }
}

impl PendingLogins {
    /// At most `max` kept, each for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self { by_state: HashMap::new(), max: max.max(1), ttl }
    }

    /// How many are kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_state.len()
    }

    /// Keeps `login` under `state`, dropping expired ones and, when full, the oldest.
    pub fn insert(&mut self, state: String, login: PendingLogin, now: Instant) {
        let ttl = self.ttl;
        self.by_state.retain(|_, p| now.saturating_duration_since(p.at) < ttl);
        while self.by_state.len() >= self.max {
            let oldest = self.by_state.iter().min_by_key(|(_, p)| p.at).map(|(s, _)| s.clone());
            match oldest {
                Some(s) => self.by_state.remove(&s),
                None => break,
            };
        }
        self.by_state.insert(state, login);
    }

    /// Takes the sign-in of `state` for the browser whose cookie holds `browser`. A state is
    /// good for one try only: it is forgotten whatever the outcome.
    pub fn take(
        &mut self,
        state: &str,
        browser: Option<&str>,
        now: Instant,
    ) -> Result<PendingLogin, NotPending> {
        let login = self.by_state.remove(state).ok_or(NotPending::Unknown)?;
        if now.saturating_duration_since(login.at) >= self.ttl {
            return Err(NotPending::Expired);
        }
        let same = browser.is_some_and(|b| same_secret(b, &login.browser));
        if !same {
            return Err(NotPending::OtherBrowser);
        }
        Ok(login)
    }
}

/// Compares two secrets without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(a).as_ref() == digest(b).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(browser: &str, at: Instant) -> PendingLogin {
        PendingLogin {
            browser: browser.into(),
            console: Console::Clinician,
            verifier: "v".into(),
            nonce: "n".into(),
            redirect: "https://fleet.example/api/oidc/callback".into(),
            at,
        }
    }

    #[test]
    fn a_sign_in_is_taken_once_by_the_browser_that_started_it() {
        let mut p = PendingLogins::default();
        let now = Instant::now();
        p.insert("st".into(), login("b1", now), now);
        assert_eq!(p.take("st", Some("b1"), now).unwrap().browser, "b1");
        assert_eq!(p.take("st", Some("b1"), now), Err(NotPending::Unknown), "used twice");
    }

    #[test]
    fn another_browser_or_no_cookie_is_refused_and_the_state_is_spent() {
        let mut p = PendingLogins::default();
        let now = Instant::now();
        p.insert("st".into(), login("b1", now), now);
        assert_eq!(p.take("st", Some("b2"), now), Err(NotPending::OtherBrowser));
        assert_eq!(p.take("st", Some("b1"), now), Err(NotPending::Unknown));
        p.insert("s2".into(), login("b1", now), now);
        assert_eq!(p.take("s2", None, now), Err(NotPending::OtherBrowser));
        assert_eq!(p.take("nope", Some("b1"), now), Err(NotPending::Unknown));
    }

    #[test]
    fn a_sign_in_expires_after_ten_minutes() {
        let mut p = PendingLogins::default();
        let then = Instant::now();
        p.insert("st".into(), login("b1", then), then);
        let late = then + PENDING_FOR;
        assert_eq!(p.take("st", Some("b1"), late), Err(NotPending::Expired));
        p.insert("s2".into(), login("b1", then), then);
        let in_time = then + PENDING_FOR - Duration::from_secs(1);
        assert!(p.take("s2", Some("b1"), in_time).is_ok());
    }

    #[test]
    fn the_store_is_bounded_and_drops_the_oldest_first() {
        let mut p = PendingLogins::new(3, PENDING_FOR);
        let t0 = Instant::now();
        for i in 0..5u64 {
            let at = t0 + Duration::from_secs(i);
            p.insert(format!("s{i}"), login("b", at), at);
        }
        assert_eq!(p.len(), 3);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(p.take("s0", Some("b"), now), Err(NotPending::Unknown));
        assert_eq!(p.take("s1", Some("b"), now), Err(NotPending::Unknown));
        assert!(p.take("s4", Some("b"), now).is_ok());
    }

    #[test]
    fn expired_sign_ins_are_dropped_when_a_new_one_comes() {
        let mut p = PendingLogins::default();
        let t0 = Instant::now();
        p.insert("old".into(), login("b", t0), t0);
        p.insert("new".into(), login("b", t0 + PENDING_FOR), t0 + PENDING_FOR);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn consoles_are_parsed_and_go_back_to_their_page() {
        assert_eq!(Console::parse("admin").map(Console::path), Some("/admin"));
        assert_eq!(Console::parse("clinician").map(Console::path), Some("/"));
        assert_eq!(Console::parse("https://evil.example"), None);
    }
}

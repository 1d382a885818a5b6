//! How a visit's two sides may reach each other: the STUN and TURN servers fleetd was started
//! with, and TURN credentials minted for each visit in the shared-secret scheme coturn implements
//! (`use-auth-secret`): the user name is `<expiry, Unix seconds>:<who>`, the password the base64
//! HMAC-SHA1 of that name under the secret. Credentials expire on their own; no TURN account is
//! ever stored or handed out for good. Pure: the time comes in.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use telekiosk_protocol::config::IceServer;
use telekiosk_protocol::visit::IceSettings;

/// How long minted credentials stay valid: a visit may wait up to an hour and last up to four
/// (the fleet config's limits), and coturn checks them again when a relay is refreshed.
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(6 * 3600);

/// The servers and the shared secret; `None` from [`IceConfig::new`] when fleetd has none.
#[derive(Clone)]
pub struct IceConfig {
    stun: Vec<String>,
    turn: Vec<String>,
    secret: Option<hmac::Key>,
    relay_only: bool,
}

/// Why the ICE settings fleetd was started with cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IceConfigError {
    #[error("{0:?} is not a stun: URL")]
    NotStun(String),
    #[error("{0:?} is not a turn: or turns: URL")]
    NotTurn(String),
    #[error("TURN servers need --turn-secret-file (the secret coturn's static-auth-secret is)")]
    NoSecret,
    #[error("--turn-relay-only needs a TURN server (--turn-url)")]
    RelayOnlyWithoutTurn,
    #[error("the TURN secret is empty")]
    EmptySecret,
}

impl std::fmt::Debug for IceConfig {
    // Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun", &self.stun)
            .field("turn", &self.turn)
            .field("relay_only", &self.relay_only)
            .finish_non_exhaustive()
    }
}

impl IceConfig {
    /// Checks and keeps the servers; `secret` is the TURN shared secret (trailing newline
    /// ignored).
    pub fn new(
        stun: Vec<String>,
        turn: Vec<String>,
        secret: Option<&[u8]>,
        relay_only: bool,
    ) -> Result<Self, IceConfigError> {
        if let Some(bad) = stun.iter().find(|u| !u.starts_with("stun:")) {
            return Err(IceConfigError::NotStun(bad.clone()));
        }
        if let Some(bad) = turn.iter().find(|u| !u.starts_with("turn:") && !u.starts_with("turns:"))
        {
            return Err(IceConfigError::NotTurn(bad.clone()));
        }
        let secret = secret.map(|s| s.strip_suffix(b"\n").unwrap_or(s));
        if secret.is_some_and(<[u8]>::is_empty) {
            return Err(IceConfigError::EmptySecret);
        }
        if !turn.is_empty() && secret.is_none() {
            return Err(IceConfigError::NoSecret);
        }
        if relay_only && turn.is_empty() {
            return Err(IceConfigError::RelayOnlyWithoutTurn);
        }
        let secret = secret.map(|s| hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, s));
        Ok(Self { stun, turn, secret, relay_only })
    }

    /// What one side of a visit gets: the STUN servers, and TURN credentials for `who` (a
    /// pseudonymous id: the visit id and the side) valid from `now_unix` for [`CREDENTIAL_TTL`].
    pub fn settings(&self, who: &str, now_unix: i64) -> IceSettings {
        let mut servers = vec![];
        if !self.stun.is_empty() {
            servers.push(IceServer { urls: self.stun.clone(), username: None, credential: None });
        }
        if let (false, Some(key)) = (self.turn.is_empty(), &self.secret) {
            let username = format!("{}:{who}", now_unix + CREDENTIAL_TTL.as_secs() as i64);
            let credential = STANDARD.encode(hmac::sign(key, username.as_bytes()).as_ref());
            servers.push(IceServer {
                urls: self.turn.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        IceSettings { servers, relay_only: self.relay_only }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_shared_secret_scheme_and_expire() {
        let ice = IceConfig::new(
            vec!["stun:stun.example.org:3478".into()],
            vec!["turn:turn.example.org:3478".into()],
            Some(b"north-secret\n"),
            false,
        )
        .unwrap();
        let s = ice.settings("visit-1-k", 1_700_000_000);
        assert_eq!(s.servers.len(), 2);
        let turn = &s.servers[1];
        assert_eq!(turn.username.as_deref(), Some("1700021600:visit-1-k"));
        // base64(HMAC-SHA1("north-secret", "1700021600:visit-1-k")), computed independently.
        assert_eq!(turn.credential.as_deref(), Some("Tm1gZ23Wg4FBbSRTd/S8Gc70l3U="));
        assert!(!format!("{ice:?}").contains("north-secret"));
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_what_is_wrong() {
        let turn = || vec!["turn:t.example.org:3478".to_string()];
        let cases = [
            (
                vec!["http://x".to_string()],
                vec![],
                None,
                false,
                IceConfigError::NotStun("http://x".into()),
            ),
            (
                vec![],
                vec!["stun:x".to_string()],
                Some(&b"s"[..]),
                false,
                IceConfigError::NotTurn("stun:x".into()),
            ),
            (vec![], turn(), None, false, IceConfigError::NoSecret),
            (vec![], turn(), Some(&b"\n"[..]), false, IceConfigError::EmptySecret),
            (vec![], vec![], None, true, IceConfigError::RelayOnlyWithoutTurn),
        ];
        for (stun, turn, secret, relay, want) in cases {
            assert_eq!(IceConfig::new(stun, turn, secret, relay).unwrap_err(), want);
        }
        let none = IceConfig::new(vec![], vec![], None, false).unwrap();
        assert_eq!(none.settings("v", 0), IceSettings::default());
    }
}

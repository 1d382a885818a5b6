//! The identity provider as fleetd's client sees it: discovery (at first use, kept, tried again
//! after a failure), the authorization request (code flow, PKCE S256, `state`, `nonce`; scopes
//! `openid profile email`), and the code exchange with the ID token verified by the
//! `openidconnect` crate (signature against the provider's keys, `iss`, `aud`, `exp`, `nonce`,
//! and `at_hash`). Its HTTPS client trusts the public roots and `--oidc-ca`, follows no
//! redirects and gives up after [`TIMEOUT`].
//! Never logs or returns the client secret, an authorization code or a token.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, TokenResponse,
};
use serde_json::{Map, Value};

use super::Settings;
use super::pending::{Console, NotPending, PendingLogin, PendingLogins};

/// How long one request to the provider may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in through the provider did not get as far as its claims.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or the token request failed on the way (network, TLS, the provider's server).
    #[error("the identity provider at {issuer} could not be reached: {reason}")]
    Unreachable { issuer: String, reason: String },
    /// The provider said no (at its sign-in page, or when the code was exchanged).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The provider's answer failed verification (ID token signature, issuer, audience, expiry,
    /// nonce) or was not understood.
    #[error("the identity provider's answer could not be verified: {0}")]
    Invalid(String),
    /// The callback matches no sign-in this browser started (or it took too long).
    #[error("this sign-in was not started here, was used already or took too long")]
    NotPending(NotPending),
}

impl OidcError {
    /// The code the sign-in page is sent back with.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Unreachable { .. } => "unreachable",
            OidcError::Refused(_) => "provider_refused",
            OidcError::Invalid(_) => "invalid_token",
            OidcError::NotPending(NotPending::Expired) => "expired",
            OidcError::NotPending(_) => "state_mismatch",
        }
    }
}

/// A client made from discovered metadata: authorization endpoint set, token and userinfo
/// endpoints as the provider says.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider, its discovered metadata and the sign-ins sent to it.
#[derive(Debug)]
pub struct Provider {
    settings: Settings,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<CoreProviderMetadata>>,
    pending: Mutex<PendingLogins>,
}

/// A sign-in sent to the provider: where to send the browser, and the id for its cookie.
#[derive(Debug)]
pub struct Started {
    pub authorize_url: String,
    pub browser: String,
}

impl Provider {
    /// The provider of `settings`; nothing is fetched until the first sign-in.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let http = http_client(&settings.extra_roots)?;
        let metadata = tokio::sync::Mutex::new(None);
        Ok(Self { settings, http, metadata, pending: Mutex::new(PendingLogins::default()) })
    }

    /// The configuration.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> OidcError {
        OidcError::Unreachable { issuer: self.settings.issuer.clone(), reason: reason.to_string() }
    }

    /// The provider's metadata and keys: discovered at first use, then kept.
    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut kept = self.metadata.lock().await;
        if let Some(m) = kept.as_ref() {
            return Ok(m.clone());
        }
        let issuer =
            IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| self.unreachable(e))?;
        let found = CoreProviderMetadata::discover_async(issuer, &self.http).await;
        let found = found.map_err(|e| self.unreachable(error_chain(&e)))?;
        *kept = Some(found.clone());
        Ok(found)
    }

    /// fleetd's client at the provider, sending the browser back to `redirect`. The secret goes
    /// in the Authorization header, or in the body if the provider only takes it there.
    async fn client(&self, redirect: &str) -> Result<Client, OidcError> {
        let metadata = self.metadata().await?;
        let methods = metadata.token_endpoint_auth_methods_supported().cloned().unwrap_or_default();
        let post_only = methods.contains(&CoreClientAuthMethod::ClientSecretPost)
            && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic);
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|e| OidcError::Invalid(format!("bad redirect URL: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        Ok(if post_only { client.set_auth_type(AuthType::RequestBody) } else { client })
    }

    async fn forget_metadata(&self) {
        *self.metadata.lock().await = None;
    }

    /// Starts a sign-in from `console`: where to send the browser, and the random id to put in
    /// its cookie. `redirect` is fleetd's callback URL as the browser reaches it.
    pub async fn start(
        &self,
        console: Console,
        redirect: &str,
        now: Instant,
    ) -> Result<Started, OidcError> {
        let client = self.client(redirect).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let browser = CsrfToken::new_random().secret().clone();
        let login = PendingLogin {
            browser: browser.clone(),
            console,
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            redirect: redirect.to_string(),
            at: now,
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(state.secret().clone(), login, now);
        Ok(Started { authorize_url: url.to_string(), browser })
    }

    /// The sign-in of `state` for the browser whose cookie holds `browser` (used up).
    pub fn take(
        &self,
        state: &str,
        browser: Option<&str>,
        now: Instant,
    ) -> Result<PendingLogin, OidcError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.take(state, browser, now).map_err(OidcError::NotPending)
    }

    /// Exchanges `code` for tokens and verifies the ID token: its claims, as sent.
    pub async fn finish(
        &self,
        login: &PendingLogin,
        code: String,
    ) -> Result<Map<String, Value>, OidcError> {
        let client = self.client(&login.redirect).await?;
        let request = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Invalid(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(login.verifier.clone()));
        let response = match request.request_async(&self.http).await {
            Ok(r) => r,
            Err(RequestTokenError::ServerResponse(e)) => {
                return Err(OidcError::Refused(e.to_string()));
            }
            Err(RequestTokenError::Request(e)) => return Err(self.unreachable(error_chain(&e))),
            Err(e) => return Err(OidcError::Invalid(error_chain(&e))),
        };
        let id_token =
            response.id_token().ok_or_else(|| OidcError::Invalid("no ID token was sent".into()))?;
        let verifier = client.id_token_verifier();
        let claims = match id_token.claims(&verifier, &Nonce::new(login.nonce.clone())) {
            Ok(claims) => claims,
            Err(e) => {
                if matches!(e, ClaimsVerificationError::SignatureVerification(_)) {
                    // Perhaps the provider changed its keys: discover them again next time.
                    self.forget_metadata().await;
                }
                return Err(OidcError::Invalid(e.to_string()));
            }
        };
        if let Some(expected) = claims.access_token_hash() {
            let invalid = |e: &dyn std::fmt::Display| OidcError::Invalid(e.to_string());
            let alg = id_token.signing_alg().map_err(|e| invalid(&e))?;
            let key = id_token.signing_key(&verifier).map_err(|e| invalid(&e))?;
            let actual = AccessTokenHash::from_token(response.access_token(), alg, key)
                .map_err(|e| invalid(&e))?;
            if actual != *expected {
                return Err(OidcError::Invalid(
                    "the access token does not match the ID token".into(),
                ));
            }
        }
        // The claims as sent, from the token just verified (for the claims this crate does not
        // model: roles, clinics).
        payload(&id_token.to_string())
    }
}

/// The JSON payload of a compact JWS (already verified by the caller).
fn payload(jws: &str) -> Result<Map<String, Value>, OidcError> {
    let bad = |what: &str| OidcError::Invalid(format!("the ID token's payload {what}"));
    let part = jws.split('.').nth(1).ok_or_else(|| bad("is missing"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| bad("is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| bad("is not a JSON object"))
}

/// An error and its sources, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// HTTPS to the provider: the public roots and `extra_roots`, ring, no redirects, a time-out.
fn http_client(extra_roots: &[Vec<u8>]) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra_roots {
        roots.add(rustls::pki_types::CertificateDer::from(der.clone()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_of_a_compact_token_is_read_as_json() {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"s","telekiosk_roles":["clinician"]}"#);
        let claims = payload(&format!("eyJhbGciOiJSUzI1NiJ9.{body}.c2ln")).unwrap();
        assert_eq!(claims["telekiosk_roles"][0], "clinician");
        assert!(payload("no-dots").is_err());
        assert!(payload("a.!!!.c").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_named_in_plain_words_and_tried_again_next_time() {
        let settings = Settings {
            issuer: "https://127.0.0.1:9".into(),
            client_id: "fleetd".into(),
            client_secret: "s".into(),
            extra_roots: vec![],
            label: "x".into(),
            claims: Default::default(),
            require_mfa: false,
        };
        let provider = Provider::new(settings).unwrap();
        let redirect = "https://127.0.0.1:8443/api/oidc/callback";
        for _ in 0..2 {
            let err =
                provider.start(Console::Clinician, redirect, Instant::now()).await.unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(
                    "the identity provider at https://127.0.0.1:9 could not be reached: "
                ),
                "{text}"
            );
            assert_eq!(err.code(), "unreachable");
        }
        assert!(provider.metadata.lock().await.is_none());
    }
}

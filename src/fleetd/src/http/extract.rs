//! What a handler asks of a request before it runs: [`SignedIn`] (a live session behind the
//! cookie; [`Enrolling`] also takes a session that may only set up two-step sign-in; the
//! permission checks built on it are in [`super::allowed`]), [`Source`] (the peer address),
//! [`Place`] (the "where" of an audit record: the peer address and the user agent, cut short)
//! and [`Valid`] (a JSON body read with `telekiosk_protocol::decode`: declared as JSON, then
//! size, JSON and field limits). Each refuses with an [`ApiError`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::de::DeserializeOwned;
use telekiosk_protocol::Validate;
use telekiosk_protocol::api::{
    CodeRequest, ConfigDraft, ConfirmMfa, EnrolRequest, LoginRequest, NewCommand, NewEnrolToken,
    NewPassword, NewRollout,
};

use super::error::ApiError;
use super::{AppState, SESSION_COOKIE};
use crate::accounts::{Reach, User};

/// The user of the request's live session, and the session token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who is signed in.
    pub user: User,
    /// The session token (from the cookie).
    pub token: String,
}

/// The header the consoles send on background polls: such a request does not count as use,
/// so an unattended console still times out (automatic logoff).
pub const BACKGROUND: &str = "x-telekiosk-background";

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Enrolling { user, token, reach } = Enrolling::from_request_parts(parts, state).await?;
        match reach {
            Reach::Full => Ok(Self { user, token }),
            Reach::EnrolOnly => Err(ApiError::MfaSetupNeeded),
        }
    }
}

/// The user of the request's live session, full or only for setting up two-step sign-in.
#[derive(Debug, Clone)]
pub struct Enrolling {
    /// Who is signed in.
    pub user: User,
    /// The session token (from the cookie).
    pub token: String,
    /// What the session may reach.
    pub reach: Reach,
}

impl FromRequestParts<Arc<AppState>> for Enrolling {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar.get(SESSION_COOKIE).ok_or(ApiError::NotSignedIn)?.value().to_string();
        let touch = !parts.headers.contains_key(BACKGROUND);
        let t = token.clone();
        let (user, reach) = state
            .blocking(move |s| Ok::<_, ApiError>(s.accounts.lookup(&t, Instant::now(), touch)))
            .await?
            .ok_or(ApiError::NotSignedIn)?;
        Ok(Self { user, token, reach })
    }
}

/// The address a request came from (`None` where the server was built without it).
#[derive(Debug, Clone, Copy)]
pub struct Source(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Source(info.map(|ConnectInfo(addr)| addr.ip().to_canonical())))
    }
}

/// A request body type, and the shape a refusal tells the sender to send.
pub trait Body: DeserializeOwned + Validate {
    /// The body's fields, as shown in a refusal.
    const SHAPE: &'static str;
}

impl Body for LoginRequest {
    const SHAPE: &'static str = "{\"username\", \"password\"}";
}
impl Body for CodeRequest {
    const SHAPE: &'static str = "{\"pending\", \"code\"}";
}
impl Body for ConfirmMfa {
    const SHAPE: &'static str = "{\"code\"}";
}
impl Body for NewPassword {
    const SHAPE: &'static str = "{\"password\"}";
}
impl Body for EnrolRequest {
    const SHAPE: &'static str = "{\"token\", \"csr_pem\"}";
}
impl Body for NewEnrolToken {
    const SHAPE: &'static str = "{\"clinic\", \"room\", \"ttl_secs\"}";
}
impl Body for NewCommand {
    const SHAPE: &'static str = "{\"command\": {\"type\": …}}";
}
impl Body for ConfigDraft {
    const SHAPE: &'static str = "{\"body\": {…}}";
}
impl Body for NewRollout {
    const SHAPE: &'static str = "{\"group\", \"canary\", …}";
}

/// A JSON body read with `telekiosk_protocol::decode`. Refuses a body not declared as JSON (so
/// a cross-site form cannot post one) or one that breaks the message's limits.
#[derive(Debug)]
pub struct Valid<T>(pub T);

impl<T: Body, S: Send + Sync> FromRequest<S> for Valid<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let is_json = content_type.is_some_and(|t| t.starts_with("application/json"));
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        if !is_json {
            return Err(ApiError::NotJson(T::SHAPE).into_response());
        }
        telekiosk_protocol::decode(&body).map(Valid).map_err(|e| {
            ApiError::BadBody { shape: T::SHAPE, reason: e.to_string() }.into_response()
        })
    }
}
/// Longest user agent kept, in characters.
const MAX_USER_AGENT: usize = 120;

/// Where a request came from, for its audit records (never a cookie or a body): `ADDRESS USER-AGENT`.
#[derive(Debug, Clone)]
pub struct Place(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Place {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        let addr = addr.map_or_else(|| "-".to_string(), |c| c.0.to_string());
        let agent =
            parts.headers.get(header::USER_AGENT).map(|v| String::from_utf8_lossy(v.as_bytes()));
        let agent: String = agent.unwrap_or_default().chars().take(MAX_USER_AGENT).collect();
        Ok(Place(format!("{addr} {agent}").trim_end().to_string()))
    }
}

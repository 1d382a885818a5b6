//! What a handler asks of a request before it runs: [`SignedIn`] (a live session behind the
//! cookie), [`AdminUser`] (the same, for an admin) and [`Valid`] (a JSON body read with
//! `telekiosk_protocol::decode`: declared as JSON, then size, JSON and field limits). Each
//! refuses with an [`ApiError`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::de::DeserializeOwned;
use telekiosk_protocol::Validate;
use telekiosk_protocol::api::{
    ConfigDraft, EnrolRequest, LoginRequest, NewCommand, NewEnrolToken, NewRollout,
};

use super::audit::Place;
use super::error::ApiError;
use super::{AppState, SESSION_COOKIE};
use crate::accounts::{Role, User};
use crate::audit::{self, Entry};

/// The user of the request's live session, and the session token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who is signed in.
    pub user: User,
    /// The session token (from the cookie).
    pub token: String,
}

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar.get(SESSION_COOKIE).ok_or(ApiError::NotSignedIn)?.value().to_string();
        let t = token.clone();
        let user = state
            .blocking(move |s| Ok::<_, ApiError>(s.accounts.session(&t, Instant::now())))
            .await?
            .ok_or(ApiError::NotSignedIn)?;
        Ok(Self { user, token })
    }
}

/// The signed-in admin. The admin routes check it once, as a layer; a handler that names the
/// user takes it again and gets the checked one.
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl FromRequestParts<Arc<AppState>> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if let Some(admin) = parts.extensions.get::<AdminUser>() {
            return Ok(admin.clone());
        }
        let SignedIn { user, .. } = SignedIn::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            let Ok(Place(place)) = Place::from_request_parts(parts, state).await;
            let (actor, path) = (audit::user(&user.username), parts.uri.path());
            let entry =
                Entry::new(&actor, audit::ACCESS_REFUSED, path, &place).refused("not_admin");
            state.audit.record(entry).await;
            return Err(ApiError::NotAdmin);
        }
        let admin = AdminUser(user);
        parts.extensions.insert(admin.clone());
        Ok(admin)
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

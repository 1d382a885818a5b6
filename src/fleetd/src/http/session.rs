//! Signing in and out of the consoles: `POST /api/login` (sets the session cookie),
//! `POST /api/logout`, `GET /api/me`. Sign-ins are bounded (Argon2 is costly) and audited.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use telekiosk_protocol::api::{LoginRequest, Me};

use super::audit::Place;
use super::error::{ApiError, ApiResult};
use super::extract::{SignedIn, Valid};
use super::{AppState, SESSION_COOKIE};
use crate::accounts::User;
use crate::audit::{self, Entry, class_of};

/// The session routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
}

fn me_body(user: &User) -> Json<Me> {
    let (username, role, clinics) =
        (user.username.clone(), user.role.as_str().into(), user.clinics.clone());
    Json(Me { username, role, clinics })
}

fn cookie(value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
}

async fn login(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Place(place): Place,
    Valid(req): Valid<LoginRequest>,
) -> ApiResult<(CookieJar, Json<Me>)> {
    let shown: String = req.username.chars().take(64).collect();
    let Ok(_slot) = state.sign_in_slots.acquire().await else {
        return Err(ApiError::ShuttingDown);
    };
    let result = state
        .blocking(move |s| s.accounts.sign_in(&req.username, &req.password, Instant::now()))
        .await;
    let entry = Entry::new(&audit::user(&shown), audit::SIGN_IN, "console", &place);
    state.audit.record(entry.outcome(&result, class_of)).await;
    let (token, user) = result?;
    Ok((jar.add(cookie(token)), me_body(&user)))
}

async fn logout(
    State(state): State<Arc<AppState>>,
    signed_in: Result<SignedIn, ApiError>,
    Place(place): Place,
    jar: CookieJar,
) -> ApiResult<(CookieJar, StatusCode)> {
    if let Ok(SignedIn { user, token }) = signed_in {
        state
            .blocking(move |s| {
                s.accounts.sign_out(&token);
                Ok::<_, ApiError>(())
            })
            .await?;
        let entry = Entry::new(&audit::user(&user.username), audit::SIGN_OUT, "console", &place);
        state.audit.record(entry).await;
    }
    Ok((jar.remove(cookie(String::new())), StatusCode::NO_CONTENT))
}

async fn me(SignedIn { user, .. }: SignedIn) -> Json<Me> {
    me_body(&user)
}

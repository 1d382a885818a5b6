//! Signing in and out of the consoles: `POST /api/login` (the password), `POST /api/login/code`
//! (the code from the authenticator app, or a recovery code), `POST /api/logout`, `GET /api/me`,
//! and setting up two-step sign-in: `POST /api/mfa/enrol` (a new secret and its QR code) and
//! `POST /api/mfa/confirm` (a current code; returns the recovery codes, shown once). Password
//! checks are bounded: a throttled source is refused before queueing, and when every argon2
//! slot is busy the answer is 429 with Retry-After rather than a queue. Every outcome is
//! audited under `fleetd::audit`, never with a password, code, secret or token.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use telekiosk_protocol::api::{
    CodeRequest, ConfirmMfa, LoginReply, LoginRequest, Me, MfaEnrolment, RecoveryCodes,
};

use super::error::{ApiError, ApiResult};
use super::extract::{Enrolling, SignedIn, Source, Valid};
use super::{AppState, SESSION_COOKIE};
use crate::accounts::{Scope, SignIn, User};

/// The session routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/login/code", post(login_code))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/mfa/enrol", post(enrol))
        .route("/api/mfa/confirm", post(confirm))
}

fn me_of(user: &User) -> Me {
    Me { username: user.username.clone(), role: user.role.as_str().into() }
}

fn cookie(value: String) -> Cookie<'static> {
    // `__Host-`: only over HTTPS, for this host alone, path `/` (no subdomain can set it).
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
}

/// A user name as it may appear in a log line: no control characters, at most 64.
fn shown(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn audit_refusal(user: &str, source: &Source, e: &ApiError) {
    let ip = source.0.map(|ip| ip.to_string()).unwrap_or_default();
    match e {
        ApiError::Fault(_) => tracing::error!(user = %user, source = %ip, "sign-in failed"),
        e => {
            let status = e.status().as_u16();
            tracing::warn!(target: "fleetd::audit", user = %user, source = %ip, status, "sign-in refused: {}", e.message());
        }
    }
}

async fn login(
    State(state): State<Arc<AppState>>,
    source: Source,
    jar: CookieJar,
    Valid(req): Valid<LoginRequest>,
) -> ApiResult<(CookieJar, Json<LoginReply>)> {
    let name = shown(&req.username);
    // A throttled source is refused before it can take an argon2 slot.
    if let Some(secs) = state.accounts.address_decision(source.0).retry_after() {
        let e = ApiError::from(crate::accounts::AccountsError::Throttled { secs });
        audit_refusal(&name, &source, &e);
        return Err(e);
    }
    let Ok(slot) = state.sign_in_slots.try_acquire() else {
        let message = "Many people are signing in at once: try again in a moment.".to_string();
        return Err(ApiError::TooMany { retry_after: 1, message });
    };
    let ip = source.0;
    let result = state
        .blocking(move |s| s.accounts.sign_in(&req.username, &req.password, ip, Instant::now()))
        .await;
    drop(slot);
    let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
    match result {
        Ok(SignIn::Code { pending }) => {
            tracing::info!(target: "fleetd::audit", user = %name, source = %ip, "password accepted; waiting for the code");
            Ok((jar, Json(LoginReply::Code { pending })))
        }
        Ok(SignIn::Session { token, user, scope }) => {
            let me = me_of(&user);
            let reply = match scope {
                Scope::Full => {
                    tracing::info!(target: "fleetd::audit", user = %name, source = %ip, "signed in");
                    LoginReply::SignedIn { me }
                }
                Scope::EnrolOnly => {
                    tracing::info!(target: "fleetd::audit", user = %name, source = %ip, "signed in to set up two-step sign-in only");
                    LoginReply::Enrol { me }
                }
            };
            Ok((jar.add(cookie(token)), Json(reply)))
        }
        Err(e) => {
            audit_refusal(&name, &source, &e);
            Err(e)
        }
    }
}

async fn login_code(
    State(state): State<Arc<AppState>>,
    source: Source,
    jar: CookieJar,
    Valid(req): Valid<CodeRequest>,
) -> ApiResult<(CookieJar, Json<LoginReply>)> {
    let ip = source.0;
    let name = state.accounts.pending_user(&req.pending);
    let result = state
        .blocking(move |s| s.accounts.sign_in_code(&req.pending, &req.code, ip, Instant::now()))
        .await;
    match result {
        Ok((token, user)) => {
            let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
            tracing::info!(target: "fleetd::audit", user = %user.username, source = %ip, "signed in with two-step sign-in");
            Ok((jar.add(cookie(token)), Json(LoginReply::SignedIn { me: me_of(&user) })))
        }
        Err(e) => {
            let name = name.unwrap_or_else(|| "(unknown pending sign-in)".into());
            audit_refusal(&name, &source, &e);
            Err(e)
        }
    }
}

async fn logout(
    State(state): State<Arc<AppState>>,
    signed_in: Result<Enrolling, ApiError>,
    jar: CookieJar,
) -> ApiResult<(CookieJar, StatusCode)> {
    if let Ok(Enrolling { user, token, .. }) = signed_in {
        state
            .blocking(move |s| {
                s.accounts.sign_out(&token);
                Ok::<_, ApiError>(())
            })
            .await?;
        tracing::info!(target: "fleetd::audit", user = %user.username, "signed out");
    }
    Ok((jar.remove(cookie(String::new())), StatusCode::NO_CONTENT))
}

async fn me(SignedIn { user, .. }: SignedIn) -> Json<Me> {
    Json(me_of(&user))
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    Enrolling { user, .. }: Enrolling,
) -> ApiResult<Json<MfaEnrolment>> {
    let name = user.username.clone();
    let e = state.blocking(move |s| s.accounts.enrol_start(&name)).await?;
    tracing::info!(target: "fleetd::audit", user = %user.username, "two-step sign-in set-up started");
    Ok(Json(MfaEnrolment { secret: e.secret, uri: e.uri, qr_svg: e.qr_svg }))
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Enrolling { user, token, .. }: Enrolling,
    Valid(req): Valid<ConfirmMfa>,
) -> ApiResult<Json<RecoveryCodes>> {
    let name = user.username.clone();
    let codes = state.blocking(move |s| s.accounts.enrol_confirm(&token, &name, &req.code)).await;
    match codes {
        Ok(recovery_codes) => Ok(Json(RecoveryCodes { totp_secret: None, recovery_codes })),
        Err(e) => {
            tracing::warn!(target: "fleetd::audit", user = %user.username, "two-step sign-in set-up refused: {}", e.message());
            Err(e)
        }
    }
}

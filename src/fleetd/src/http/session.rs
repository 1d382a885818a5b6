//! Signing in and out of the consoles: `POST /api/login` (the password), `POST /api/login/code`
//! (the code from the authenticator app, or a recovery code), `POST /api/logout`, `GET /api/me`,
//! and setting up two-step sign-in: `POST /api/mfa/enrol` (a new secret and its QR code) and
//! `POST /api/mfa/confirm` (a current code; returns the recovery codes, shown once). Password
//! checks are bounded: a throttled source is refused before queueing, and when every argon2
//! slot is busy the answer is 429 with Retry-After rather than a queue. Every outcome is
//! recorded in the audit trail, never with a password, code, secret or token.

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
use super::extract::Place;
use super::extract::{Enrolling, SignedIn, Source, Valid};
use super::{AppState, SESSION_COOKIE};
use crate::accounts::{Reach, SignIn, User};
use crate::audit::{self, Entry, class_of};

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
    let (username, role, clinics) =
        (user.username.clone(), user.role.as_str().into(), user.clinics.clone());
    Me { username, role, clinics }
}

pub(super) fn cookie(value: String) -> Cookie<'static> {
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

/// The audit record of one sign-in step: who tried, from where, and what came of it.
async fn record(
    state: &AppState,
    user: &str,
    place: &str,
    what: &str,
    outcome: Result<(), &ApiError>,
) {
    let entry = Entry::new(&audit::user(user), audit::SIGN_IN, what, place);
    let entry = match outcome {
        Ok(()) => entry,
        Err(e) => entry.refused(&class_of(e)),
    };
    state.audit.record(entry).await;
}

async fn login(
    State(state): State<Arc<AppState>>,
    source: Source,
    Place(place): Place,
    jar: CookieJar,
    Valid(req): Valid<LoginRequest>,
) -> ApiResult<(CookieJar, Json<LoginReply>)> {
    let name = shown(&req.username);
    // A throttled source is refused before it can take an argon2 slot.
    if let Some(secs) = state.accounts.address_decision(source.0).retry_after() {
        let e = ApiError::from(crate::accounts::AccountsError::Throttled { secs });
        record(&state, &name, &place, "console password", Err(&e)).await;
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
    match result {
        Ok(SignIn::Code { pending }) => {
            record(&state, &name, &place, "console password (code to follow)", Ok(())).await;
            Ok((jar, Json(LoginReply::Code { pending })))
        }
        Ok(SignIn::Session { token, user, reach }) => {
            let me = me_of(&user);
            let reply = match reach {
                Reach::Full => {
                    record(&state, &name, &place, "console", Ok(())).await;
                    LoginReply::SignedIn { me }
                }
                Reach::EnrolOnly => {
                    let what = "console (to set up two-step sign-in only)";
                    record(&state, &name, &place, what, Ok(())).await;
                    LoginReply::Enrol { me }
                }
            };
            Ok((jar.add(cookie(token)), Json(reply)))
        }
        Err(e) => {
            record(&state, &name, &place, "console password", Err(&e)).await;
            Err(e)
        }
    }
}

async fn login_code(
    State(state): State<Arc<AppState>>,
    source: Source,
    Place(place): Place,
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
            record(&state, &user.username, &place, "console code", Ok(())).await;
            Ok((jar.add(cookie(token)), Json(LoginReply::SignedIn { me: me_of(&user) })))
        }
        Err(e) => {
            let name = name.unwrap_or_else(|| "(unknown pending sign-in)".into());
            record(&state, &name, &place, "console code", Err(&e)).await;
            Err(e)
        }
    }
}

async fn logout(
    State(state): State<Arc<AppState>>,
    signed_in: Result<Enrolling, ApiError>,
    Place(place): Place,
    jar: CookieJar,
) -> ApiResult<(CookieJar, StatusCode)> {
    if let Ok(Enrolling { user, token, .. }) = signed_in {
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
    Json(me_of(&user))
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    Enrolling { user, .. }: Enrolling,
    Place(place): Place,
) -> ApiResult<Json<MfaEnrolment>> {
    let name = user.username.clone();
    let e = state.blocking(move |s| s.accounts.enrol_start(&name)).await?;
    let entry = Entry::new(&audit::user(&user.username), audit::MFA_ENROL, "started", &place);
    state.audit.record(entry).await;
    Ok(Json(MfaEnrolment { secret: e.secret, uri: e.uri, qr_svg: e.qr_svg }))
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Enrolling { user, token, .. }: Enrolling,
    Place(place): Place,
    Valid(req): Valid<ConfirmMfa>,
) -> ApiResult<Json<RecoveryCodes>> {
    let name = user.username.clone();
    let codes = state.blocking(move |s| s.accounts.enrol_confirm(&token, &name, &req.code)).await;
    let entry = Entry::new(&audit::user(&user.username), audit::MFA_ENROL, "confirmed", &place);
    state.audit.record(entry.outcome(&codes, class_of)).await;
    Ok(Json(RecoveryCodes { totp_secret: None, recovery_codes: codes? }))
}

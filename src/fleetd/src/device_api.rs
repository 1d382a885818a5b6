//! The device part of the HTTPS API: kiosk enrolment (`POST /api/enrol`, no session: the
//! one-time token is the credential) and device administration (`/api/devices…`, admins
//! only). Turns [`crate::registry`] outcomes into HTTP statuses and [`ApiError`] bodies.
//! Never logs a token, a CSR or a certificate.
//!
//! [`ApiError`]: telekiosk_protocol::api::ApiError

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use telekiosk_protocol::api::{EnrolRequest, NewEnrolToken};

use crate::accounts::{Role, User};
use crate::registry::{EnrolError, RegistryError};
use crate::store::{StoreError, unix_now};
use crate::web::{AppState, Refused, api_error, json_body};

/// The device routes, to merge into the app.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/enrol", post(enrol))
        .route("/api/devices", get(list))
        .route("/api/devices/tokens", post(create_token))
        .route("/api/devices/{id}", get(show))
        .route("/api/devices/{id}/approve", post(approve))
        .route("/api/devices/{id}/revoke", post(revoke))
}

/// HTTP status of each enrolment refusal: 401 for a code that does not work, 409 for one
/// that is taken, 400 for a bad request, 403 for a revoked kiosk.
fn enrol_status(e: &EnrolError) -> StatusCode {
    match e {
        EnrolError::UnknownToken | EnrolError::ExpiredToken => StatusCode::UNAUTHORIZED,
        EnrolError::TokenUsed | EnrolError::KeyEnrolled => StatusCode::CONFLICT,
        EnrolError::BadCsr(_) => StatusCode::BAD_REQUEST,
        EnrolError::Revoked => StatusCode::FORBIDDEN,
        EnrolError::Store(_) | EnrolError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let req: EnrolRequest = json_body(&headers, &body, "{\"token\", \"csr_pem\"}")?;
    match state.registry.enrol(&req, unix_now()) {
        Ok(res) => Ok(Json(res).into_response()),
        Err(e) => Err(match enrol_status(&e) {
            StatusCode::INTERNAL_SERVER_ERROR => api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Enrolment is not possible right now; try again in a few minutes.",
            ),
            status => api_error(status, &e.to_string()),
        }
        .into()),
    }
}

/// The signed-in admin, or the refusal.
pub(crate) fn admin(state: &AppState, jar: &CookieJar) -> Result<User, Refused> {
    match state.user(jar) {
        None => Err(api_error(StatusCode::UNAUTHORIZED, "Not signed in.").into()),
        Some((user, _)) if user.role == Role::Admin => Ok(user),
        Some((user, _)) => {
            tracing::warn!(target: "fleetd::audit", user = %user.username, "device administration refused: not an admin");
            Err(api_error(StatusCode::FORBIDDEN, "Only an admin can manage devices.").into())
        }
    }
}

/// A registry refusal as an API error: 400, 404, 409, or 500 (logged, not shown).
fn refused(e: RegistryError) -> Refused {
    let status = match &e {
        RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
        RegistryError::NotPending { .. } | RegistryError::AlreadyRevoked(_) => StatusCode::CONFLICT,
        RegistryError::Store(StoreError::NoSuchDevice(_)) => StatusCode::NOT_FOUND,
        RegistryError::Store(_) | RegistryError::Pki(_) | RegistryError::Random(_) => {
            tracing::error!("device administration failed: {e}");
            let message = "That is not possible right now; see fleetd's log.";
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, message).into();
        }
    };
    let mut message = e.to_string();
    if let Some(first) = message.get(..1) {
        message.replace_range(..1, &first.to_uppercase());
    }
    api_error(status, &format!("{message}.")).into()
}

async fn create_token(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let req: NewEnrolToken = json_body(&headers, &body, "{\"clinic\", \"room\", \"ttl_secs\"}")?;
    let token = state.registry.create_token(&req, &user.username, unix_now()).map_err(refused)?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

async fn list(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    Ok(Json(state.registry.list().map_err(refused)?).into_response())
}

async fn show(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    Ok(Json(state.registry.show(&id).map_err(refused)?).into_response())
}

async fn approve(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let device = state.registry.approve(&id, &user.username, unix_now()).map_err(refused)?;
    Ok(Json(device).into_response())
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let device = state.registry.revoke(&id, &user.username, unix_now()).map_err(refused)?;
    state.revocation.poke();
    Ok(Json(device).into_response())
}

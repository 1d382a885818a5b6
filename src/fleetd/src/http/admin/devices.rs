//! Device administration: enrolment codes, the device list, approval and revocation
//! (`/api/admin/devices…`; one device in full, this registry record included, is `fleet.rs`'s
//! `GET /api/admin/devices/{id}`). Never logs a token or a certificate.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use telekiosk_protocol::api::{DeviceInfo, EnrolToken, NewEnrolToken};

use crate::access::Permission;
use crate::http::AppState;
use crate::http::allowed::{Acting, in_clinic};
use crate::http::error::ApiResult;
use crate::http::extract::Valid;
use crate::store::unix_now;

/// The device list, approval and revocation, relative to `/api/admin`.
pub fn manage() -> Router<Arc<AppState>> {
    Router::new()
        .route("/devices", get(list))
        .route("/devices/{id}/approve", post(approve))
        .route("/devices/{id}/revoke", post(revoke))
}

/// Enrolment codes, relative to `/api/admin`.
pub fn enrol_codes() -> Router<Arc<AppState>> {
    Router::new().route("/devices/tokens", post(create_token))
}

/// A technician issues codes for their own clinics only.
async fn create_token(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Valid(req): Valid<NewEnrolToken>,
) -> ApiResult<(StatusCode, Json<EnrolToken>)> {
    in_clinic(&user, Permission::IssueEnrolCodes, &req.clinic)?;
    let token =
        state.blocking(move |s| s.registry.create_token(&req, &user.username, unix_now())).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<DeviceInfo>>> {
    state.blocking(|s| s.registry.list()).await.map(Json)
}

async fn approve(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceInfo>> {
    state.blocking(move |s| s.registry.approve(&id, &user.username, unix_now())).await.map(Json)
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceInfo>> {
    let device =
        state.blocking(move |s| s.registry.revoke(&id, &user.username, unix_now())).await?;
    state.revocation.poke();
    Ok(Json(device))
}

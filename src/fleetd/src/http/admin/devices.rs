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
use crate::audit::{self, Entry, class_of};
use crate::http::AppState;
use crate::http::allowed::{Acting, in_clinic};
use crate::http::error::ApiResult;
use crate::http::extract::Place;
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
    Place(place): Place,
    Valid(req): Valid<NewEnrolToken>,
) -> ApiResult<(StatusCode, Json<EnrolToken>)> {
    let object = format!("{} / {}", req.clinic, req.room);
    let entry = Entry::new(&audit::user(&user.username), audit::ENROL_TOKEN, &object, &place);
    if let Err(e) = in_clinic(&user, Permission::IssueEnrolCodes, &req.clinic) {
        state.audit.record(entry.refused(&class_of(&e))).await;
        return Err(e);
    }
    let by = user.username.clone();
    let token = state.blocking(move |s| s.registry.create_token(&req, &by, unix_now())).await;
    state.audit.record(entry.outcome(&token, class_of)).await;
    Ok((StatusCode::CREATED, Json(token?)))
}

async fn list(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Place(place): Place,
) -> ApiResult<Json<Vec<DeviceInfo>>> {
    let entry = Entry::new(&audit::user(&user.username), audit::READ, "devices", &place);
    state.audit.record_read(entry).await;
    state.blocking(|s| s.registry.list()).await.map(Json)
}

async fn approve(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Place(place): Place,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceInfo>> {
    let (by, object) = (user.username.clone(), id.clone());
    let result = state.blocking(move |s| s.registry.approve(&id, &by, unix_now())).await;
    let entry = Entry::new(&audit::user(&user.username), audit::APPROVE, &object, &place);
    state.audit.record(entry.outcome(&result, class_of)).await;
    result.map(Json)
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Place(place): Place,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceInfo>> {
    let (by, object) = (user.username.clone(), id.clone());
    let result = state.blocking(move |s| s.registry.revoke(&id, &by, unix_now())).await;
    let entry = Entry::new(&audit::user(&user.username), audit::REVOKE, &object, &place);
    state.audit.record(entry.outcome(&result, class_of)).await;
    state.revocation.poke();
    Ok(Json(result?))
}

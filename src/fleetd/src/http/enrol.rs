//! Kiosk enrolment, `POST /api/enrol`: no session, the one-time code in the body is the
//! credential. Never logs a token, a CSR or a certificate.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use telekiosk_protocol::api::{EnrolRequest, EnrolResponse};

use super::AppState;
use super::error::ApiResult;
use super::extract::Valid;
use crate::store::unix_now;

/// The enrolment route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/enrol", post(enrol))
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    Valid(req): Valid<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    state.blocking(move |s| s.registry.enrol(&req, unix_now())).await.map(Json)
}

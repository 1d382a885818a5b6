//! Kiosk enrolment, `POST /api/enrol`: no session, the one-time code in the body is the
//! credential. Never logs a token, a CSR or a certificate.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use telekiosk_protocol::api::{EnrolRequest, EnrolResponse};

use super::AppState;
use super::audit::Place;
use super::error::ApiResult;
use super::extract::Valid;
use crate::audit::{self, Entry, class_of};
use crate::store::unix_now;

/// The enrolment route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/enrol", post(enrol))
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    Place(place): Place,
    Valid(req): Valid<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    let result = state.blocking(move |s| s.registry.enrol_new(&req, unix_now())).await;
    match &result {
        Ok((r, true)) => {
            let device = audit::device(&r.device_id);
            let entry = Entry::new(&device, audit::ENROL, &device, &place);
            state.audit.record(entry.detail("waiting for approval")).await;
        }
        Ok((_, false)) => {}
        Err(e) => {
            state
                .audit
                .record(Entry::new("kiosk", audit::ENROL, "-", &place).refused(&class_of(e)))
                .await
        }
    }
    result.map(|(r, _)| Json(r))
}

//! Kiosk enrolment, `POST /api/enrol`: no session, the one-time code in the body is the
//! credential. Failed attempts are throttled per source address (review M5): past a few, the
//! sender gets 429 with Retry-After before its code is even looked at. Never logs a token, a CSR
//! or a certificate.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use telekiosk_protocol::api::{EnrolRequest, EnrolResponse};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Place;
use super::extract::{Source, Valid};
use crate::audit::{self, Entry, class_of};
use crate::store::unix_now;

/// The enrolment route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/enrol", post(enrol))
}

async fn enrol(
    State(state): State<Arc<AppState>>,
    Place(place): Place,
    Source(source): Source,
    Valid(req): Valid<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    let now = unix_now();
    let wait = source.and_then(|ip| state.enrol_throttle().decide(ip, now).retry_after());
    if let Some(secs) = wait {
        tracing::warn!(source = ?source, "enrolment refused: too many failures from this address");
        return Err(ApiError::TooMany {
            retry_after: secs,
            message: format!(
                "Too many failed enrolment attempts from this address. Try again in {secs} s."
            ),
        });
    }
    let result = state.blocking(move |s| s.registry.enrol_new(&req, unix_now())).await;
    if let Some(ip) = source {
        match &result {
            Ok(_) => state.enrol_throttle().succeeded(ip),
            Err(_) => {
                state.enrol_throttle().failed(ip, unix_now());
            }
        }
    }
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

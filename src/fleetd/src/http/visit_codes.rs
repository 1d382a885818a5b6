//! Visit codes over HTTPS, for clinicians (the role that joins visits): `POST /api/visit-codes`
//! makes a code for one of the caller's clinics and shows its digits this once;
//! `GET /api/visit-codes` lists the caller's own codes that still work (ids, never digits);
//! `DELETE /api/visit-codes/{id}` revokes one of them. Each change is audited with the code's
//! short id and clinic; the digits are never logged, audited or stored.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use telekiosk_protocol::api::{NewVisitCode, VisitCode, VisitCodeInfo};

use super::AppState;
use super::allowed::{Acting, need, require};
use super::error::{ApiError, ApiResult, Fault};
use super::extract::{Body, Place, Valid};
use crate::audit::{self, Entry, class_of};
use crate::store::unix_now;
use crate::visit_codes::VisitCodeError;

/// The visit-code routes, for those who may join visits.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/visit-codes", get(list).post(create))
        .route("/api/visit-codes/{id}", delete(revoke))
        .route_layer(require::<need::JoinVisits>(state))
}

impl Body for NewVisitCode {
    const SHAPE: &'static str = "{\"clinic\", \"valid_mins\"}";
}

impl From<VisitCodeError> for ApiError {
    fn from(e: VisitCodeError) -> Self {
        match e {
            VisitCodeError::Crowded => Self::Conflict(e.to_string()),
            e => Self::fault(Fault::Other, &e),
        }
    }
}

/// A clinician makes a code for one of their own clinics.
async fn create(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Place(place): Place,
    Valid(req): Valid<NewVisitCode>,
) -> ApiResult<(StatusCode, Json<VisitCode>)> {
    let actor = audit::user(&user.username);
    let detail = format!("clinic {}; valid {} min", req.clinic, req.valid_mins());
    let entry = |object: &str| {
        Entry::new(&actor, audit::VISIT_CODE_CREATED, object, &place).detail(&detail)
    };
    if !user.scope().reaches(&req.clinic) {
        state.audit.record(entry("visit code").refused("outside_clinics")).await;
        return Err(ApiError::Forbidden(format!("{} is not one of your clinics", req.clinic)));
    }
    let by = user.username.clone();
    let made = state
        .blocking(move |s| {
            let codes = s.visit_codes()?;
            Ok::<_, ApiError>(codes.create(&req.clinic, &by, req.valid_mins(), unix_now())?)
        })
        .await;
    match made {
        Ok(code) => {
            state.audit.record(entry(&format!("visit code {}", code.id))).await;
            Ok((StatusCode::CREATED, Json(code)))
        }
        Err(e) => {
            state.audit.record(entry("visit code").refused(&class_of(&e))).await;
            Err(e)
        }
    }
}

/// The caller's own codes that still work, without their digits.
async fn list(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
) -> ApiResult<Json<Vec<VisitCodeInfo>>> {
    let by = user.username.clone();
    let codes =
        state.blocking(move |s| Ok::<_, ApiError>(s.visit_codes()?.list(&by, unix_now())?)).await?;
    Ok(Json(codes))
}

/// The caller revokes one of their own codes.
async fn revoke(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Place(place): Place,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let no_such = || ApiError::NotFound("You have no such visit code".into());
    let well_formed =
        id.len() <= 16 && id.starts_with("vc-") && id[3..].bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(no_such());
    }
    let (by, code) = (user.username.clone(), id.clone());
    let revoked =
        state.blocking(move |s| Ok::<_, ApiError>(s.visit_codes()?.revoke(&code, &by)?)).await;
    let object = format!("visit code {id}");
    let entry =
        Entry::new(&audit::user(&user.username), audit::VISIT_CODE_REVOKED, &object, &place);
    match revoked {
        Ok(Some(clinic)) => {
            state.audit.record(entry.detail(&format!("clinic {clinic}"))).await;
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(None) => {
            state.audit.record(entry.refused("not_found")).await;
            Err(no_such())
        }
        Err(e) => {
            state.audit.record(entry.refused(&class_of(&e))).await;
            Err(e)
        }
    }
}

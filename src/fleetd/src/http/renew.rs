//! Kiosk certificate renewal, `POST /api/device/renew` (review H4): no session; the credential
//! is the client certificate on the TLS connection ([`super::peer`]), which rustls has checked
//! against the fleet CA (chain and validity). The registry checks the rest (device active, same
//! key). Every attempt that names a device is audited as `device.renew`. Never logs a CSR or a
//! certificate.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use telekiosk_protocol::api::{RenewRequest, RenewResponse};

use super::AppState;
use super::error::{ApiError, ApiResult, Fault};
use super::extract::{Body, Place, Valid};
use super::peer::PeerCert;
use crate::audit::{self, Entry, class_of};
use crate::pki::ca;
use crate::registry::renewal::RenewError;
use crate::store::unix_now;

/// The renewal route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/device/renew", post(renew))
}

async fn renew(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<PeerCert>>,
    Place(place): Place,
    Valid(req): Valid<RenewRequest>,
) -> ApiResult<Json<RenewResponse>> {
    let Some(cert) = peer.and_then(|Extension(PeerCert(c))| c) else {
        return Err(ApiError::from(RenewError::NoClientCertificate));
    };
    let claimed = ca::subject_and_key(&cert).map(|(id, _)| id);
    let result = state
        .blocking(move |s| Ok::<_, RenewError>(s.registry.renew(&cert, &req.csr_pem, unix_now())))
        .await?;
    let device = audit::device(claimed.as_deref().unwrap_or("-"));
    let entry = Entry::new(&device, audit::RENEW, &device, &place);
    match &result {
        Ok(r) => state.audit.record(entry.detail(&format!("valid until {}", r.expires_at))).await,
        Err(e) => {
            tracing::warn!(device = ?claimed, "certificate renewal refused: {e}");
            state.audit.record(entry.refused(&class_of(e))).await;
        }
    }
    Ok(Json(result?))
}

impl Body for RenewRequest {
    const SHAPE: &'static str = "{\"csr_pem\"}";
}

impl From<RenewError> for ApiError {
    fn from(e: RenewError) -> Self {
        let m = e.to_string();
        match e {
            RenewError::NoClientCertificate | RenewError::UnknownDevice(_) => Self::Unauthorized(m),
            RenewError::Revoked
            | RenewError::NotApproved
            | RenewError::CertificateKey
            | RenewError::CsrKey => Self::Forbidden(m),
            RenewError::BadCsr(_) => Self::Invalid(m),
            RenewError::Store(_) | RenewError::Pki(_) => Self::fault(Fault::Enrolment, &e),
        }
    }
}

//! OS bundles for kiosks, `GET /api/device/bundles/{sha256}`: no session; the credential is the
//! client certificate on the TLS connection ([`super::peer`]) of an active device. Range
//! requests are answered (tower-http's file service), so a kiosk on a link that drops resumes
//! where it stopped instead of starting over. A refused request is audited as
//! `device.bundle_fetch`; served ones are logged.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::services::ServeFile;

use super::AppState;
use super::error::{ApiError, ApiResult, Fault};
use super::extract::Place;
use super::peer::PeerCert;
use crate::audit::{self, Entry};
use crate::pki::ca;

/// The bundle route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/device/bundles/{sha256}", get(bundle))
}

async fn bundle(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<PeerCert>>,
    Place(place): Place,
    Path(sha256): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let cert = peer.and_then(|Extension(PeerCert(c))| c);
    let claimed = cert.as_deref().and_then(ca::subject_and_key);
    let device = claimed.as_ref().map_or("-".to_string(), |(id, _)| audit::device(id));
    let what = format!("bundle {}", sha256.get(..16).unwrap_or(&sha256));
    let refuse = |why: &str| Entry::new(&device, audit::BUNDLE_FETCH, &what, &place).refused(why);
    let Some((id, key)) = claimed else {
        state.audit.record(refuse("no client certificate")).await;
        return Err(ApiError::Unauthorized(
            "a kiosk's client certificate is needed to fetch a bundle".into(),
        ));
    };
    let lookup = sha256.clone();
    let found = state
        .blocking(move |s| {
            let device = s.registry.device(&id);
            let bundle =
                s.fleet.bundle_by_sha256(&lookup).map_err(crate::fleet::FleetError::from)?;
            Ok::<_, crate::fleet::FleetError>((device, bundle, s.bundles_dir()))
        })
        .await?;
    let (record, bundle, dir) = found;
    let allowed = record
        .as_ref()
        .is_ok_and(|d| d.status == "active" && d.public_key.as_slice() == key.sec1());
    if !allowed {
        state.audit.record(refuse("not an active device")).await;
        return Err(ApiError::Forbidden("only an active kiosk may fetch bundles".into()));
    }
    let (Some(bundle), Some(dir)) = (bundle, dir) else {
        state.audit.record(refuse("no such bundle")).await;
        return Err(ApiError::NotFound("fleetd has no bundle with that SHA-256".into()));
    };
    let path: PathBuf = dir.join(format!("{}.raucb", bundle.sha256));
    let range = req.headers().get(axum::http::header::RANGE).and_then(|v| v.to_str().ok());
    tracing::info!(device = %device, version = %bundle.version, range = range.unwrap_or("all"), "bundle fetch");
    let served =
        ServeFile::new_with_mime(&path, &"application/octet-stream".parse().expect("a MIME type"))
            .try_call(req)
            .await
            .map_err(|e| ApiError::fault(Fault::Other, &e))?;
    Ok(served.into_response())
}

//! Enrolment adapter: joins the fleet once, then keeps what fleetd issued.
//!
//! First start: a CSR signed by the TPM key and the one-time token go to `POST /api/enrol`;
//! while an admin has not approved, the same request is repeated every few seconds; once
//! approved, the certificate (its subject is the device id), the fleet CA and fleetd's signing
//! key are checked against the TPM key and stored atomically in one file. Later starts load that
//! file. Nothing stored here is secret: the private key never leaves the TPM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use telekiosk_protocol::api::{ApiError, EnrolRequest, EnrolResponse, EnrolStatus};
use telekiosk_protocol::{decode, encode};

use crate::identity::DeviceKey;

/// How often a pending enrolment asks again.
pub const POLL: Duration = Duration::from_secs(2);

/// Why enrolment could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error(
        "this kiosk is not enrolled yet and has no enrolment code: start it with --enrol-token \
         (ask the fleet admin for a code)"
    )]
    NoToken,
    #[error("cannot reach fleetd at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("fleetd refused the enrolment: {0}")]
    Refused(String),
    #[error("fleetd's answer is not valid: {0}")]
    BadAnswer(String),
    #[error("the certificate fleetd issued is not for this kiosk's TPM key")]
    WrongKey,
    #[error("cannot make the enrolment request: {0}")]
    Csr(String),
    #[error("cannot store or read the enrolment in {path}: {reason}")]
    Store { path: PathBuf, reason: String },
}

/// What enrolment gave this kiosk; public material only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub device_id: String,
    pub certificate_pem: String,
    pub ca_pem: String,
    /// fleetd's config/command signing key, pinned at enrolment.
    pub signing_key_pem: String,
}

impl Credentials {
    /// The certificate chain to present, leaf first.
    pub fn chain(&self) -> Result<Vec<CertificateDer<'static>>, EnrolError> {
        let certs: Result<Vec<_>, _> =
            CertificateDer::pem_slice_iter(self.certificate_pem.as_bytes()).collect();
        match certs {
            Ok(certs) if !certs.is_empty() => Ok(certs),
            Ok(_) => Err(EnrolError::BadAnswer("no certificate in certificate_pem".into())),
            Err(e) => Err(EnrolError::BadAnswer(format!("certificate_pem: {e}"))),
        }
    }
}

fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("enrolment.json")
}

/// The stored enrolment, if this kiosk has one that matches its key.
pub fn load(state_dir: &Path, key: &DeviceKey) -> Result<Option<Credentials>, EnrolError> {
    let path = file(state_dir);
    let store_err = |reason: String| EnrolError::Store { path: path.clone(), reason };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(store_err(e.to_string())),
    };
    let creds: Credentials =
        serde_json::from_slice(&bytes).map_err(|e| store_err(e.to_string()))?;
    check(&creds, key)?;
    Ok(Some(creds))
}

/// What the setup screen says while an admin has not approved: the device id and the short
/// key fingerprint (review M5), which fleetd shows in its pending list from the same definition
/// ([`telekiosk_protocol::fingerprint`]), so the admin can compare them before approving.
pub fn pending_message(device_id: &str, public_point: &[u8]) -> String {
    let key = telekiosk_protocol::fingerprint::key_fingerprint(public_point);
    format!("Waiting for the fleet admin to approve this kiosk ({device_id}). Key: {key}")
}

/// Enrols with `token`, waiting (and calling `progress`) until an admin approves.
pub async fn enrol(
    server: &url::Url,
    tls: Arc<rustls::ClientConfig>,
    key: &DeviceKey,
    token: &str,
    state_dir: &Path,
    progress: impl Fn(&str),
) -> Result<Credentials, EnrolError> {
    let url = server.join("api/enrol").map_err(|e| EnrolError::BadAnswer(e.to_string()))?;
    let csr_pem = key.csr_pem("telekiosk").map_err(|e| EnrolError::Csr(e.to_string()))?;
    let body = encode(&EnrolRequest { token: token.to_string(), csr_pem });
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| EnrolError::Unreachable { url: url.to_string(), reason: e.to_string() })?;
    progress("Asking the clinic's server to add this kiosk…");
    loop {
        match post(&client, &url, body.clone()).await {
            Ok(EnrolResponse { device_id, status: EnrolStatus::Pending }) => {
                progress(&pending_message(&device_id, key.public_point()));
            }
            Ok(EnrolResponse {
                device_id,
                status: EnrolStatus::Approved { certificate_pem, ca_pem, signing_key_pem },
            }) => {
                let creds = Credentials { device_id, certificate_pem, ca_pem, signing_key_pem };
                check(&creds, key)?;
                store(state_dir, &creds)?;
                return Ok(creds);
            }
            Err(e @ EnrolError::Unreachable { .. }) => {
                tracing::warn!("{e}");
                progress("Cannot reach the clinic's server yet. Trying again…");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn post(
    client: &reqwest::Client,
    url: &url::Url,
    body: Vec<u8>,
) -> Result<EnrolResponse, EnrolError> {
    let unreachable =
        |e: reqwest::Error| EnrolError::Unreachable { url: url.to_string(), reason: e.to_string() };
    let res = client
        .post(url.clone())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = res.status();
    let bytes = res.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ApiError>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(EnrolError::Refused(message));
    }
    decode::<EnrolResponse>(&bytes).map_err(|e| EnrolError::BadAnswer(e.to_string()))
}

fn check(creds: &Credentials, key: &DeviceKey) -> Result<(), EnrolError> {
    let chain = creds.chain()?;
    if !key.matches_certificate(&chain[0]) {
        return Err(EnrolError::WrongKey);
    }
    Ok(())
}

/// Stores the enrolment durably: after a power cut it is either absent or whole.
pub(crate) fn store(state_dir: &Path, creds: &Credentials) -> Result<(), EnrolError> {
    let path = file(state_dir);
    let bytes = serde_json::to_vec_pretty(creds).expect("credentials serialise");
    crate::durable::write_atomically(&path, &bytes)
        .map_err(|e| EnrolError::Store { path: path.clone(), reason: e.to_string() })
}

#[cfg(test)]
mod fingerprint_tests {
    #[test]
    fn the_pending_message_shows_the_key_fingerprint_fleetd_lists() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let message = super::pending_message("dev-abc", &point);
        let key = telekiosk_protocol::fingerprint::key_fingerprint(&point);
        assert!(message.contains("(dev-abc)"), "{message}");
        assert!(message.ends_with(&format!("Key: {key}")), "{message}");
    }
}

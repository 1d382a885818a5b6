//! A simulated kiosk, for fleetd's integration tests (`src/fleetd/tests`) and its fleet bench
//! (`src/fleetd/examples/fleet_sim`): one place that plays a kiosk towards a real `fleetd serve`.
//!
//! It enrols as a kiosk does (a CSR over HTTPS, asked again once approved) and then, in
//! [`kiosk`], speaks MQTT over mutual TLS: it verifies every config and command against the key
//! it pinned at enrolment, and answers with its state and command results. Keys are software
//! keys (rcgen): real kiosks keep theirs in the TPM. Built on `telekiosk-protocol` and crates
//! fleetd already uses; nothing of the kiosk's own (no GStreamer, Slint or TPM).

pub mod kiosk;

pub use kiosk::{Answer, Behaviour, Kiosk, Seen, Tally, start};

use std::path::Path;

use anyhow::{Context, bail};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use telekiosk_protocol::api::{EnrolResponse, EnrolStatus};

/// An enrolled and approved kiosk with a software key.
pub struct Device {
    pub id: String,
    pub key: KeyPair,
    pub cert_pem: String,
    /// The enrolment code it used, and its CSR: sending both again asks how it stands.
    pub token: String,
    pub csr: String,
    /// fleetd's config signing key (SubjectPublicKeyInfo PEM), as the kiosk pins it.
    pub signing_key_pem: String,
    /// The same key as raw Ed25519 bytes, what signatures are checked against.
    pub pinned: Vec<u8>,
}

impl Device {
    /// Its certificate chain and private key, for a TLS client.
    pub fn identity(
        &self,
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let chain = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes())?];
        let key = PrivateKeyDer::try_from(self.key.serialize_der()).map_err(anyhow::Error::msg)?;
        Ok((chain, key))
    }

    /// TLS trusting the CA at `ca` and presenting this device's certificate.
    pub fn tls(&self, ca: &Path) -> anyhow::Result<rustls::ClientConfig> {
        client_tls(ca, Some(self.identity()?))
    }
}

/// A software P-256 key and its CSR (PEM), as a kiosk without a TPM would make them.
pub fn software_key() -> anyhow::Result<(KeyPair, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = CertificateParams::default().serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// A TLS client configuration trusting the CA certificates in `ca` (PEM), presenting `identity`
/// if given. Needs a process-wide rustls crypto provider installed.
pub fn client_tls(
    ca: &Path,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read {}", ca.display()))?
    {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    })
}

/// Enrols a kiosk with a new software key at the fleetd whose console is `base`
/// (`https://host:port`): sends its CSR with `token`, lets `approve` approve the pending device
/// (by its id; the CLI or the admin API, as the caller likes), and asks again for its
/// certificate, as a kiosk does.
pub async fn enrol(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    approve: impl AsyncFnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<Device> {
    let (key, csr) = software_key()?;
    let ask = async || -> anyhow::Result<EnrolResponse> {
        let body = serde_json::json!({ "token": token, "csr_pem": csr });
        let res = http.post(format!("{base}/api/enrol")).json(&body).send().await?;
        let status = res.status();
        if !status.is_success() {
            bail!("enrolment refused: {status} {}", res.text().await.unwrap_or_default());
        }
        Ok(res.json().await?)
    };
    let pending = ask().await?;
    if pending.status != EnrolStatus::Pending {
        bail!("{} is not pending after its first request: {pending:?}", pending.device_id);
    }
    approve(&pending.device_id)
        .await
        .with_context(|| format!("approving {}", pending.device_id))?;
    let approved = ask().await?;
    let EnrolStatus::Approved { certificate_pem, signing_key_pem, .. } = approved.status else {
        bail!("{} is not approved: {approved:?}", pending.device_id);
    };
    let pinned = pinned_key(&signing_key_pem)?;
    Ok(Device {
        id: pending.device_id,
        key,
        cert_pem: certificate_pem,
        token: token.into(),
        csr,
        signing_key_pem,
        pinned,
    })
}

/// The raw 32-byte Ed25519 key inside a SubjectPublicKeyInfo PEM.
fn pinned_key(spki_pem: &str) -> anyhow::Result<Vec<u8>> {
    let der = pem::parse(spki_pem)?.into_contents();
    if der.len() != 44 {
        bail!("the signing key is not an Ed25519 SubjectPublicKeyInfo ({} bytes)", der.len());
    }
    Ok(der[12..].to_vec())
}

/// A CSR for `key` (PEM), as a kiosk sends to renew its certificate: the same key, nothing
/// asked for.
pub fn csr_for(key: &KeyPair) -> anyhow::Result<String> {
    Ok(CertificateParams::default().serialize_request(key)?.pem()?)
}

/// `POST /api/device/renew` at the fleetd whose console is `base`, over a TLS connection that
/// trusts the CA at `ca` and presents `identity` (the certificate to renew, or none). The HTTP
/// status and the body (a `RenewResponse` or an `ApiError`).
pub async fn renew(
    base: &str,
    ca: &Path,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    csr_pem: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let http =
        reqwest::Client::builder().use_preconfigured_tls(client_tls(ca, identity)?).build()?;
    let body = serde_json::json!({ "csr_pem": csr_pem });
    let res = http.post(format!("{base}/api/device/renew")).json(&body).send().await?;
    Ok((res.status().as_u16(), res.json().await?))
}

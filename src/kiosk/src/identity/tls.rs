//! rustls client authentication with the device key: a `SigningKey`/`Signer` whose signatures are
//! made by [`DeviceKey`] (so by the TPM), and a resolver that presents the enrolled certificate.
//!
//! Owns: scheme negotiation (ECDSA_NISTP256_SHA256 only). Must never: fall back to another key or
//! scheme when signing fails; the handshake fails instead.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use super::key::DeviceKey;

const SCHEME: SignatureScheme = SignatureScheme::ECDSA_NISTP256_SHA256;

impl DeviceKey {
    /// A rustls client-certificate resolver presenting `cert_chain` (leaf first: the certificate
    /// fleetd issued for this key) with signatures made by this key. Use it for every TLS
    /// connection: `ClientConfig::builder()….with_client_cert_resolver(key.client_auth(chain))`.
    pub fn client_auth(
        &self,
        cert_chain: Vec<CertificateDer<'static>>,
    ) -> Arc<dyn ResolvesClientCert> {
        Arc::new(ClientCert(Arc::new(CertifiedKey::new(cert_chain, self.rustls_signing_key()))))
    }

    /// The device key as a rustls `SigningKey` (for callers building their own `CertifiedKey`).
    pub fn rustls_signing_key(&self) -> Arc<dyn SigningKey> {
        Arc::new(TlsKey(self.clone()))
    }

    /// True when `cert` (DER) carries this key's public key: check an issued certificate before
    /// storing it.
    pub fn matches_certificate(&self, cert: &CertificateDer<'_>) -> bool {
        CertifiedKey::new(vec![cert.clone().into_owned()], self.rustls_signing_key())
            .keys_match()
            .is_ok()
    }
}

#[derive(Debug)]
struct TlsKey(DeviceKey);

impl SigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&SCHEME).then(|| Box::new(TlsSigner(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.0.public_key_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct TlsSigner(DeviceKey);

impl Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0.sign(message).map_err(|e| {
            tracing::error!("TLS client authentication failed: {e}");
            rustls::Error::General(format!("device key could not sign: {e}"))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        SCHEME
    }
}

#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if sigschemes.contains(&SCHEME) {
            Some(self.0.clone())
        } else {
            tracing::warn!(?sigschemes, "the server accepts no ECDSA P-256 client signature");
            None
        }
    }

    fn has_certs(&self) -> bool {
        true
    }
}

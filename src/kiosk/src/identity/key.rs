//! [`DeviceKey`]: the kiosk's identity key as the rest of the kiosk sees it, whatever holds it
//! (the TPM, or a development-only software key), plus the encodings around it: the
//! SubjectPublicKeyInfo, DER ECDSA signatures, and the enrolment CSR (rcgen with a remote signer).
//!
//! Owns: hashing the message and encoding signatures and public keys. Must never: hold or accept a
//! private key for the hardware path; all signing goes through [`KeySigner`].

use std::cell::RefCell;
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, PKCS_ECDSA_P256_SHA256};

use super::error::IdentityError;
use super::tpm_key::{self, KeyOrigin};
use super::worker::Tpm;

/// Something that holds a P-256 private key and signs with it. Implemented by the TPM key and by
/// [`super::SoftwareKey`] (development only).
pub trait KeySigner: Send + Sync + 'static {
    /// The public key as an uncompressed SEC1 point (`04 || X || Y`, 65 bytes).
    fn public_point(&self) -> &[u8];
    /// ECDSA P-256 over SHA-256 of `message`; the signature in ASN.1 DER (`Ecdsa-Sig-Value`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError>;
    /// Where the private key lives, for logs and the service screen.
    fn describe(&self) -> String;
}

/// The kiosk's identity key. Cheap to clone, `Send + Sync`; signing blocks the calling thread for
/// one TPM round trip (milliseconds on swtpm, tens of ms on a chip), so keep it off a
/// single-threaded async runtime.
#[derive(Clone)]
pub struct DeviceKey {
    signer: Arc<dyn KeySigner>,
    origin: KeyOrigin,
    spki: Arc<[u8]>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("held_by", &self.signer.describe())
            .field("origin", &self.origin)
            .finish()
    }
}

impl DeviceKey {
    pub(crate) fn new(signer: Arc<dyn KeySigner>, origin: KeyOrigin) -> DeviceKey {
        let spki =
            rcgen::PublicKeyData::subject_public_key_info(&PublicPoint(signer.public_point()));
        DeviceKey { signer, origin, spki: spki.into() }
    }

    /// The public key as DER SubjectPublicKeyInfo (id-ecPublicKey, prime256v1).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.spki.to_vec()
    }

    /// The public key as an uncompressed SEC1 point (`04 || X || Y`).
    pub fn public_point(&self) -> &[u8] {
        self.signer.public_point()
    }

    /// Signs `message` (ECDSA P-256, SHA-256), returning an ASN.1 DER signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.signer.sign(message)
    }

    /// How this key was obtained; [`KeyOrigin::Created`] means the kiosk must enrol.
    pub fn origin(&self) -> KeyOrigin {
        self.origin
    }

    /// Where the private key lives, e.g. "TPM persistent handle 0x81007e1d (swtpm:…)".
    pub fn describe(&self) -> String {
        self.signer.describe()
    }

    /// A PKCS#10 certificate signing request for enrolment, with subject CN `common_name`,
    /// signed by this key, in DER.
    pub fn csr_der(&self, common_name: &str) -> Result<Vec<u8>, IdentityError> {
        Ok(self.csr(common_name)?.der().to_vec())
    }

    /// [`DeviceKey::csr_der`] as PEM ("CERTIFICATE REQUEST").
    pub fn csr_pem(&self, common_name: &str) -> Result<String, IdentityError> {
        self.csr(common_name)?.pem().map_err(|e| IdentityError::Csr(e.to_string()))
    }

    fn csr(&self, common_name: &str) -> Result<rcgen::CertificateSigningRequest, IdentityError> {
        if common_name.is_empty() || common_name.len() > 64 {
            return Err(IdentityError::invalid("common name", "must be 1 to 64 characters"));
        }
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, common_name);
        params.distinguished_name = subject;
        let remote = RemoteSigner { key: self, failure: RefCell::new(None) };
        params.serialize_request(&remote).map_err(|e| {
            // Keep the TPM's own reason rather than rcgen's "Remote key error".
            remote.failure.take().unwrap_or(IdentityError::Csr(e.to_string()))
        })
    }
}

/// A public point seen through rcgen's `PublicKeyData` (for the SPKI encoding).
struct PublicPoint<'a>(&'a [u8]);

impl rcgen::PublicKeyData for PublicPoint<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// rcgen's view of the device key: the private half stays wherever `key` keeps it.
struct RemoteSigner<'a> {
    key: &'a DeviceKey,
    failure: RefCell<Option<IdentityError>>,
}

impl rcgen::PublicKeyData for RemoteSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key.public_point()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RemoteSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.sign(msg).map_err(|e| {
            *self.failure.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The device key held in the TPM at a persistent handle.
pub(crate) struct TpmKey {
    pub(crate) tpm: Tpm,
    pub(crate) handle: u32,
    pub(crate) point: Vec<u8>,
}

impl KeySigner for TpmKey {
    fn public_point(&self) -> &[u8] {
        &self.point
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        // Hash here (ring), sign the digest in the TPM: one round trip whatever the message size.
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, message)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let handle = self.handle;
        let (r, s) = self
            .tpm
            .call("sign with the device key", move |w| tpm_key::sign_digest(w, handle, digest))?;
        Ok(ecdsa_der(&r, &s))
    }

    fn describe(&self) -> String {
        format!("TPM persistent handle {:#010x} ({})", self.handle, self.tpm.tcti())
    }
}

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from big-endian r and s.
pub(crate) fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(r, true);
            w.next().write_bigint_bytes(s, true);
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_pads_high_bit_and_strips_leading_zeros() {
        let der = ecdsa_der(&[0x00, 0x80, 0x01], &[0x7f]);
        assert_eq!(der, vec![0x30, 0x08, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x01, 0x7f]);
    }
}

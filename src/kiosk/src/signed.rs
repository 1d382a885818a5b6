//! fleetd's signing key as this kiosk pinned it at enrolment, and the check of its Ed25519
//! signatures over the payload text of signed config and signed commands.
//!
//! Owns: reading the pinned key (SubjectPublicKeyInfo PEM) and verifying one signature. Pure: no
//! I/O, no clock. Must never: accept a key of another algorithm, or "verify" without the key
//! (there is no unsigned path).

use base64::Engine;
use ring::signature::{ED25519, UnparsedPublicKey};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Why the pinned key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinnedKeyError {
    /// The enrolment record's `signing_key_pem` is not a PEM public key.
    #[error(
        "the fleet signing key pinned at enrolment is not a PEM public key ({0}): re-enrol this \
         kiosk"
    )]
    NotPem(String),
    /// It is a public key, but not Ed25519.
    #[error("the fleet signing key pinned at enrolment is not an Ed25519 key: re-enrol this kiosk")]
    NotEd25519,
}

/// fleetd's Ed25519 public key, pinned at enrolment.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedKey {
    public: [u8; 32],
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PinnedKey(ed25519:{:02x}{:02x}{:02x}{:02x}…)",
            self.public[0], self.public[1], self.public[2], self.public[3]
        )
    }
}

impl PinnedKey {
    /// Reads the key from a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem: &str) -> Result<PinnedKey, PinnedKeyError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| PinnedKeyError::NotPem(e.to_string()))?;
        let key = der
            .as_ref()
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(PinnedKeyError::NotEd25519)?;
        Ok(PinnedKey { public: key })
    }

    /// A key from its 32 raw bytes.
    pub fn from_raw(public: [u8; 32]) -> PinnedKey {
        PinnedKey { public }
    }

    /// True when `signature_b64` (standard base64) is this key's Ed25519 signature of `payload`.
    /// A signature that is not base64 or not 64 bytes is simply not valid.
    pub fn verifies(&self, payload: &[u8], signature_b64: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature_b64) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.public).verify(payload, &signature).is_ok()
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Ed25519 keys made in the test, and signing with them as fleetd does.
    use base64::Engine;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::PinnedKey;

    /// A fresh key pair and its public half as a pinned key.
    pub fn fleet_key() -> (Ed25519KeyPair, PinnedKey) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (pair, PinnedKey::from_raw(public))
    }

    /// Standard base64 of the signature of `payload`.
    pub fn sign(pair: &Ed25519KeyPair, payload: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(pair.sign(payload).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ring::signature::KeyPair;

    use super::test_keys::{fleet_key, sign};
    use super::*;

    fn spki_pem(raw: &[u8]) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(raw);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn a_pinned_spki_pem_key_verifies_its_signatures_and_nothing_else() {
        let (pair, _) = fleet_key();
        let pinned = PinnedKey::from_spki_pem(&spki_pem(pair.public_key().as_ref())).unwrap();
        let sig = sign(&pair, b"payload");
        assert!(pinned.verifies(b"payload", &sig));
        assert!(!pinned.verifies(b"payloaD", &sig));
        assert!(!pinned.verifies(b"payload", "not base64!"));
        assert!(!pinned.verifies(b"payload", ""));
        let (other, _) = fleet_key();
        assert!(!pinned.verifies(b"payload", &sign(&other, b"payload")));
    }

    #[test]
    fn a_pinned_key_that_is_not_ed25519_is_refused() {
        assert_eq!(PinnedKey::from_spki_pem(&spki_pem(&[7; 31])), Err(PinnedKeyError::NotEd25519));
        assert!(matches!(PinnedKey::from_spki_pem("hello"), Err(PinnedKeyError::NotPem(_))));
    }
}

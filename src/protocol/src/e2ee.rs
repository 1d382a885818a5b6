//! The wire fields of a visit's end-to-end key agreement (the cryptography is `telekiosk-e2ee`
//! and its browser twin; this module only carries and bounds the bytes).
//!
//! Each offer carries the kiosk's fresh ephemeral key, signed by its TPM device key together with
//! the visit id and the offer's DTLS fingerprint ([`KioskKey`]); fleetd adds the device's
//! enrolled key so the console can check that signature. Each answer carries the console's
//! ephemeral key and its key confirmation ([`ConsoleKey`]); the kiosk answers with its own
//! confirmation. A side whose check fails ends the visit and says which check
//! ([`SecurityCheck`]). Bytes travel as unpadded base64url.

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, invalid};

/// A P-256 public key, SEC1 uncompressed: 65 bytes.
pub const PUBLIC_KEY_BYTES: usize = 65;
/// An ECDSA P-256 signature, `r || s`: 64 bytes.
pub const SIGNATURE_BYTES: usize = 64;
/// A key confirmation value: 16 bytes.
pub const CONFIRM_BYTES: usize = 16;

/// The kiosk's half of the key agreement, sent with each offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskKey {
    /// Its ephemeral ECDH public key for this offer.
    pub public_key: String,
    /// ECDSA P-256 / SHA-256 by the TPM device key over `kiosk_key_transcript(visit id, public
    /// key, the offer's DTLS fingerprint)`.
    pub signature: String,
}

/// The console's half, sent with each answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleKey {
    /// Its ephemeral ECDH public key for this answer.
    pub public_key: String,
    /// The console's key confirmation value.
    pub confirm: String,
}

/// Which check of the key agreement failed. Said to people in plain words; audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityCheck {
    /// The kiosk's key was not signed by the device key fleetd enrolled.
    KioskSignature,
    /// The DTLS fingerprint in the offer is not the one the kiosk signed.
    Fingerprint,
    /// The peer's key confirmation does not match: the two sides hold different keys.
    KeyConfirmation,
    /// fleetd does not know the kiosk's enrolled key.
    UnknownDevice,
}

/// Checks an unpadded base64url field of exactly `bytes` bytes.
pub(crate) fn check_b64(field: &'static str, value: &str, bytes: usize) -> Result<(), DecodeError> {
    let chars = (bytes * 4).div_ceil(3);
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if value.len() != chars || !value.chars().all(ok) {
        return Err(invalid(field, format!("must be {bytes} bytes as unpadded base64url")));
    }
    Ok(())
}

impl KioskKey {
    pub(crate) fn check(&self) -> Result<(), DecodeError> {
        check_b64("e2ee.public_key", &self.public_key, PUBLIC_KEY_BYTES)?;
        check_b64("e2ee.signature", &self.signature, SIGNATURE_BYTES)
    }
}

impl ConsoleKey {
    pub(crate) fn check(&self) -> Result<(), DecodeError> {
        check_b64("e2ee.public_key", &self.public_key, PUBLIC_KEY_BYTES)?;
        check_b64("e2ee.confirm", &self.confirm, CONFIRM_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_must_be_base64url_of_their_length() {
        let key = |p: &str, s: &str| KioskKey { public_key: p.into(), signature: s.into() };
        assert!(key(&"A".repeat(87), &"_".repeat(86)).check().is_ok());
        let short = key(&"A".repeat(86), &"_".repeat(86)).check().unwrap_err();
        assert!(short.to_string().contains("e2ee.public_key"), "{short}");
        let padded = key(&"A".repeat(87), &format!("{}==", "A".repeat(84))).check().unwrap_err();
        assert!(padded.to_string().contains("e2ee.signature"), "{padded}");
        let c = ConsoleKey { public_key: "A".repeat(87), confirm: "A+".repeat(11) };
        assert!(c.check().unwrap_err().to_string().contains("e2ee.confirm"));
    }
}

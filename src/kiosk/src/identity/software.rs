//! DEVELOPMENT ONLY: a P-256 key held in process memory, for working on the kiosk without a TPM.
//! The shell may use it only behind its explicit, loudly named development flag; the demo, the
//! tests of the real path and any deployed kiosk never do.
//!
//! Owns: an in-memory ring key. Must never: be chosen automatically when the TPM fails (that is
//! "This kiosk needs service"), or be described as hardware-protected.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use super::error::IdentityError;
use super::key::{DeviceKey, KeySigner};
use super::tpm_key::KeyOrigin;

/// A development-only software key. Anyone who can read the process (or the PKCS#8 you chose to
/// store) can impersonate the kiosk with it.
pub struct SoftwareKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SoftwareKey {
    /// Generates a fresh key; returns it with its PKCS#8 DER so a developer may keep it.
    pub fn generate_for_development() -> Result<(SoftwareKey, Zeroizing<Vec<u8>>), IdentityError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| IdentityError::invalid("software key", "generation failed"))?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        Ok((SoftwareKey::from_pkcs8_for_development(&pkcs8)?, pkcs8))
    }

    /// Loads a key from PKCS#8 DER.
    pub fn from_pkcs8_for_development(pkcs8: &[u8]) -> Result<SoftwareKey, IdentityError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
            .map_err(|e| IdentityError::invalid("software key", e.to_string()))?;
        tracing::warn!("DEVELOPMENT software identity key in use: this kiosk is not TPM-protected");
        Ok(SoftwareKey { pair, rng })
    }

    /// Wraps it as the kiosk's [`DeviceKey`] (origin [`KeyOrigin::DevelopmentSoftware`]).
    pub fn into_device_key(self) -> DeviceKey {
        DeviceKey::new(Arc::new(self), KeyOrigin::DevelopmentSoftware)
    }
}

impl KeySigner for SoftwareKey {
    fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| IdentityError::invalid("software key", "signing failed"))
    }

    fn describe(&self) -> String {
        "DEVELOPMENT software key in memory (not hardware-protected)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    #[test]
    fn development_key_signs_like_the_tpm_key_and_says_what_it_is() {
        let (key, _pkcs8) = SoftwareKey::generate_for_development().unwrap();
        let key = key.into_device_key();
        let sig = key.sign(b"hello").unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_point())
            .verify(b"hello", &sig)
            .unwrap();
        assert_eq!(key.origin(), KeyOrigin::DevelopmentSoftware);
        assert!(key.describe().contains("DEVELOPMENT"));
        assert!(key.csr_pem("kiosk-dev").unwrap().contains("CERTIFICATE REQUEST"));
    }
}

//! fleetd's Ed25519 key for signing config and commands (`config-signing-key.pem`, PKCS#8,
//! mode 0600). Kiosks pin its public key at enrolment, so it is made once and never replaced.
//! [`Signer`] signs payload text (the exact UTF-8 bytes kiosks verify). It never logs or
//! returns the private key.

use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{KeyPair, PKCS_ED25519};
use ring::signature::Ed25519KeyPair;

use crate::pki::{self, PkiError};

/// Why the signing key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The key file could not be read or written.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The file holds something other than an Ed25519 key.
    #[error(
        "{path} is not an Ed25519 private key: restore it from a backup (kiosks have pinned its \
         public key, so a new one would make them refuse every config)"
    )]
    NotEd25519 { path: PathBuf },
}

/// Signs config and command payloads with the data directory's key.
pub struct Signer {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(Ed25519)")
    }
}

impl Signer {
    /// Loads the key file `path` (the data directory's `config-signing-key.pem`), creating it
    /// if missing.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        ensure(path)?;
        let path = path.to_path_buf();
        let key = KeyPair::from_pem(&pki::read(&path)?)
            .map_err(|_| SigningError::NotEd25519 { path: path.clone() })?;
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.serialize_der())
            .map_err(|_| SigningError::NotEd25519 { path })?;
        Ok(Self { key })
    }

    /// The Ed25519 signature over `payload`'s UTF-8 bytes, standard base64.
    pub fn sign(&self, payload: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.sign(payload.as_bytes()))
    }
}

/// Makes sure the key file `path` holds the signing key (creating it if missing) and returns
/// the public key as a SubjectPublicKeyInfo PEM, the form kiosks pin.
pub fn ensure(path: &Path) -> Result<String, SigningError> {
    let path = path.to_path_buf();
    let key = if path.exists() {
        let key = KeyPair::from_pem(&pki::read(&path)?)
            .map_err(|_| SigningError::NotEd25519 { path: path.clone() })?;
        if !key.is_compatible(&PKCS_ED25519) {
            return Err(SigningError::NotEd25519 { path });
        }
        key
    } else {
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(PkiError::from)?;
        pki::write(&path, &key.serialize_pem(), 0o600)?;
        tracing::info!(path = %path.display(), "created the config signing key");
        key
    };
    Ok(key.public_key_pem())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::DataDir;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_signing_key_is_made_once_owner_only_and_its_public_half_is_spki_pem() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(&DataDir::of(&dir).signing_key()).unwrap();
        assert!(first.starts_with("-----BEGIN PUBLIC KEY-----"), "{first}");
        // Ed25519 SubjectPublicKeyInfo: a 12-byte header and the 32-byte key.
        assert_eq!(pem::parse(&first).unwrap().contents().len(), 44);
        assert_eq!(ensure(&DataDir::of(&dir).signing_key()).unwrap(), first);
        let mode = std::fs::metadata(DataDir::of(&dir).signing_key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn signatures_verify_with_the_pinned_public_key_and_only_over_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let public = ensure(&DataDir::of(&dir).signing_key()).unwrap();
        let raw = pem::parse(&public).unwrap().contents()[12..].to_vec();
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw);
        let signature =
            Signer::load(&DataDir::of(&dir).signing_key()).unwrap().sign("{\"version\":1}");
        let signature = base64::engine::general_purpose::STANDARD.decode(signature).unwrap();
        assert!(key.verify(b"{\"version\":1}", &signature).is_ok());
        assert!(key.verify(b"{\"version\":2}", &signature).is_err());
    }

    #[test]
    fn a_signing_key_file_of_another_kind_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p256 = KeyPair::generate().unwrap().serialize_pem();
        std::fs::write(DataDir::of(&dir).signing_key(), &p256).unwrap();
        assert!(matches!(
            ensure(&DataDir::of(&dir).signing_key()),
            Err(SigningError::NotEd25519 { .. })
        ));
        assert_eq!(std::fs::read_to_string(DataDir::of(&dir).signing_key()).unwrap(), p256);
    }
}

//! Per-KID key derivation and the AEAD for `AES_256_GCM_SHA512_128` (RFC 9605 §4.4.2, §4.5).
//!
//! `sframe_secret = HKDF-Extract("", base_key)`; key and salt are HKDF-Expand with the labels
//! "SFrame 1.0 Secret key " / "SFrame 1.0 Secret salt " followed by the KID (8 bytes) and the
//! cipher suite (2 bytes), big-endian. The nonce is the salt XOR the counter (right-aligned).
//!
//! Owns key material for one KID. It must never keep a counter (the `Sender` does) and never
//! return plaintext whose tag did not verify.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha512;

use crate::Error;
use crate::header::Header;

/// RFC 9605's registry value for `AES_256_GCM_SHA512_128`.
pub const CIPHER_SUITE: u16 = 0x0005;
/// Key length (Nk), nonce length (Nn) and tag length (Nt) of the suite, in bytes.
pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";

/// The AEAD key and salt derived for one KID.
#[derive(Clone)]
pub struct FrameKey {
    kid: u64,
    key: [u8; KEY_LEN],
    salt: [u8; NONCE_LEN],
    aead: Aes256Gcm,
}

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameKey {{ kid: {}, <redacted> }}", self.kid)
    }
}

fn label(prefix: &[u8], kid: u64) -> Vec<u8> {
    [prefix, &kid.to_be_bytes(), &CIPHER_SUITE.to_be_bytes()].concat()
}

impl FrameKey {
    /// Derives the key and salt for `kid` from a base key (RFC 9605 `derive_key_salt`).
    pub fn derive(base_key: &[u8], kid: u64) -> Result<FrameKey, Error> {
        if base_key.is_empty() {
            return Err(Error::BadKey("empty base key"));
        }
        let hk = Hkdf::<Sha512>::new(Some(&[]), base_key);
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; NONCE_LEN];
        hk.expand(&label(KEY_LABEL, kid), &mut key).map_err(|_| Error::BadKey("HKDF expand"))?;
        hk.expand(&label(SALT_LABEL, kid), &mut salt).map_err(|_| Error::BadKey("HKDF expand"))?;
        let aead = Aes256Gcm::new_from_slice(&key).map_err(|_| Error::BadKey("AES key"))?;
        Ok(FrameKey { kid, key, salt, aead })
    }

    pub fn kid(&self) -> u64 {
        self.kid
    }
    /// The derived AES key (for test vectors and the cross-check only).
    pub fn key_bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
    /// The derived salt (for test vectors and the cross-check only).
    pub fn salt_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.salt
    }

    /// The nonce for `ctr`: the salt XOR the counter, right-aligned.
    pub fn nonce(&self, ctr: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.salt;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    /// RFC 9605 `encrypt`: `header || ciphertext || tag`, the AAD being `header || metadata`.
    /// The caller guarantees `ctr` was never used under this key.
    pub fn seal(&self, ctr: u64, metadata: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Header { kid: self.kid, ctr }.encode();
        let aad = [out.as_slice(), metadata].concat();
        let sealed = self
            .aead
            .encrypt(Nonce::from_slice(&self.nonce(ctr)), Payload { msg: plaintext, aad: &aad })
            .expect("AES-GCM encrypts any frame shorter than 64 GiB");
        out.extend_from_slice(&sealed);
        out
    }

    /// RFC 9605 `decrypt` for a parsed header: authenticates and returns the plaintext.
    pub fn open(
        &self,
        header: &[u8],
        ctr: u64,
        metadata: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        if body.len() < TAG_LEN {
            return Err(Error::TooShort);
        }
        let aad = [header, metadata].concat();
        self.aead
            .decrypt(Nonce::from_slice(&self.nonce(ctr)), Payload { msg: body, aad: &aad })
            .map_err(|_| Error::Authentication)
    }
}

//! The per-visit key schedule: an ECDH (P-256) between the kiosk's and the console's ephemeral
//! keys, then HKDF-SHA512 with the salt "telekiosk e2ee v1" and, as info, the visit id, the
//! kiosk's DTLS fingerprint, the console's DTLS fingerprint and a purpose, each prefixed by its
//! length (2 bytes, big-endian). The purposes are the two directions ("kiosk->console",
//! "console->kiosk"; each gives that sender's 32-byte SFrame base key) and "verification code"
//! (25 bytes read as five 40-bit numbers mod 100000: five groups of five digits both screens show),
//! and "kiosk confirms" / "console confirms" (16 bytes each, the key confirmation).
//!
//! Owns only the derivation. It must never sign or verify identities (the TPM device key and the
//! clinician's enrolled key sign the ephemeral public keys elsewhere) nor keep keys past a visit.

use hkdf::Hkdf;
use p256::{PublicKey, SecretKey};
use sha2::Sha512;

use crate::Error;

/// HKDF salt of the schedule; a new version gets a new label.
pub const SCHEDULE_LABEL: &[u8] = b"telekiosk e2ee v1";
/// The KID each side's sender uses.
pub const KIOSK_KID: u64 = 1;
pub const CONSOLE_KID: u64 = 2;

/// Which sender a base key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    KioskToConsole,
    ConsoleToKiosk,
}

impl Direction {
    pub fn label(self) -> &'static [u8] {
        match self {
            Direction::KioskToConsole => b"kiosk->console",
            Direction::ConsoleToKiosk => b"console->kiosk",
        }
    }
    pub fn kid(self) -> u64 {
        match self {
            Direction::KioskToConsole => KIOSK_KID,
            Direction::ConsoleToKiosk => CONSOLE_KID,
        }
    }
}

/// One side's ephemeral P-256 key for one visit.
pub struct EphemeralKey {
    secret: SecretKey,
}

impl EphemeralKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<EphemeralKey, Error> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|_| Error::BadKey("no randomness"))?;
            if let Ok(key) = EphemeralKey::from_bytes(&bytes) {
                return Ok(key);
            }
        }
    }

    /// A key from its 32-byte scalar (fixtures and tests).
    pub fn from_bytes(scalar: &[u8]) -> Result<EphemeralKey, Error> {
        let secret = SecretKey::from_slice(scalar).map_err(|_| Error::BadKey("P-256 scalar"))?;
        Ok(EphemeralKey { secret })
    }

    /// The public key, SEC1 uncompressed (65 bytes, as WebCrypto's "raw" export).
    pub fn public_key(&self) -> Vec<u8> {
        self.secret.public_key().to_sec1_bytes().into_vec()
    }

    /// The ECDH shared secret (the x coordinate, 32 bytes) with the peer's SEC1 public key.
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<[u8; 32], Error> {
        let peer = PublicKey::from_sec1_bytes(peer_public)
            .map_err(|_| Error::BadKey("peer public key"))?;
        let shared = self.secret.diffie_hellman(&peer);
        let mut out = [0u8; 32];
        out.copy_from_slice(shared.raw_secret_bytes());
        Ok(out)
    }
}

/// What both sides derive for one visit.
#[derive(Clone, PartialEq, Eq)]
pub struct VisitKeys {
    pub kiosk_to_console: [u8; 32],
    pub console_to_kiosk: [u8; 32],
    /// Key confirmation: each side sends its own value and compares the peer's with what it
    /// derived, so a swapped key or fingerprint is caught before any media is opened. They are
    /// HKDF outputs under their own purposes, so sending them reveals nothing of the keys.
    pub kiosk_confirm: [u8; 16],
    pub console_confirm: [u8; 16],
    /// Five groups of five digits, separated by spaces.
    pub code: String,
}

impl std::fmt::Debug for VisitKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VisitKeys {{ code: {}, <keys redacted> }}", self.code)
    }
}

/// What the kiosk signs with its TPM device key for one offer: the label
/// "telekiosk e2ee v1 kiosk key", then the visit id, its ephemeral public key (SEC1) and the
/// offer's DTLS fingerprint, each length-prefixed. The console verifies it against the device's
/// enrolled key, so neither the ephemeral key nor the fingerprint can be swapped on the way.
pub fn kiosk_key_transcript(visit_id: &str, kiosk_public: &[u8], kiosk_fp: &str) -> Vec<u8> {
    length_prefixed(&[
        b"telekiosk e2ee v1 kiosk key",
        visit_id.as_bytes(),
        kiosk_public,
        kiosk_fp.as_bytes(),
    ])
}

fn length_prefixed(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        let len = u16::try_from(field.len()).expect("schedule fields are short");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// `len(field) || field` for each field, lengths as 2 bytes big-endian.
pub fn schedule_info(visit_id: &str, kiosk_fp: &str, console_fp: &str, purpose: &[u8]) -> Vec<u8> {
    length_prefixed(&[visit_id.as_bytes(), kiosk_fp.as_bytes(), console_fp.as_bytes(), purpose])
}

impl VisitKeys {
    /// Derives both base keys and the code from the ECDH secret, bound to the visit and both
    /// DTLS fingerprints (passed exactly as the SDP's `a=fingerprint` values).
    pub fn derive(shared: &[u8], visit_id: &str, kiosk_fp: &str, console_fp: &str) -> VisitKeys {
        let hk = Hkdf::<Sha512>::new(Some(SCHEDULE_LABEL), shared);
        let expand = |purpose: &[u8], out: &mut [u8]| {
            hk.expand(&schedule_info(visit_id, kiosk_fp, console_fp, purpose), out)
                .expect("HKDF-SHA512 expands up to 16320 bytes");
        };
        let mut kiosk_to_console = [0u8; 32];
        let mut console_to_kiosk = [0u8; 32];
        expand(Direction::KioskToConsole.label(), &mut kiosk_to_console);
        expand(Direction::ConsoleToKiosk.label(), &mut console_to_kiosk);
        let mut kiosk_confirm = [0u8; 16];
        let mut console_confirm = [0u8; 16];
        expand(b"kiosk confirms", &mut kiosk_confirm);
        expand(b"console confirms", &mut console_confirm);
        let mut code_bytes = [0u8; 25];
        expand(b"verification code", &mut code_bytes);
        let code = code_bytes
            .chunks(5)
            .map(|c| {
                let v = c.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
                format!("{:05}", v % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ");
        VisitKeys { kiosk_to_console, console_to_kiosk, kiosk_confirm, console_confirm, code }
    }

    pub fn base_key(&self, direction: Direction) -> &[u8; 32] {
        match direction {
            Direction::KioskToConsole => &self.kiosk_to_console,
            Direction::ConsoleToKiosk => &self.console_to_kiosk,
        }
    }
}

//! End-to-end protection of visit media frames, in the spirit of SFrame (RFC 9605).
//!
//! This crate owns the pure core: the SFrame header, the per-KID key derivation, sealing and
//! opening one encoded frame with AES-256-GCM (cipher suite `AES_256_GCM_SHA512_128`), the
//! per-codec clear prefix, and the per-visit key schedule (ECDH P-256 → two senders' base keys
//! and a verification code). It does no I/O, holds no clock and knows nothing of GStreamer,
//! WebRTC or signalling; the kiosk pipeline and the consoles' Worker call it (the browser twin is
//! `src/fleetd/src/http/assets/e2ee.js` and `e2ee-schedule.js`, kept byte-for-byte equal by
//! `tests/fixtures.json`, which `examples/fixtures.rs` prints).
//!
//! It must never: reuse a counter under a key, hand out plaintext from a frame that failed
//! authentication, or implement a primitive itself (AES-GCM, HKDF, SHA-512 and P-256 come from
//! the RustCrypto crates).

pub mod codec;
pub mod frame;
pub mod h264;
pub mod header;
pub mod keys;
pub mod schedule;

pub use codec::{Codec, clear_prefix_len};
pub use frame::{Receiver, ReceiverStats, Sender};
pub use header::Header;
pub use keys::{CIPHER_SUITE, FrameKey};
pub use schedule::{Direction, EphemeralKey, VisitKeys};

/// Why a frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the SFrame header is truncated or malformed")]
    MalformedHeader,
    #[error("the frame is shorter than its header and tag")]
    TooShort,
    #[error("no key for KID {0}")]
    UnknownKid(u64),
    #[error("the frame failed authentication")]
    Authentication,
    #[error("counter {0} was already seen or is too old")]
    Replay(u64),
    #[error("the sender's counter is exhausted; rekey")]
    CounterExhausted,
    #[error("the key material is not valid: {0}")]
    BadKey(&'static str),
}

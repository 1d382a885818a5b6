//! Device identity in the TPM: the kiosk's non-exportable ECC P-256 key, TLS client authentication
//! and enrolment CSRs signed with it, secrets sealed to the TPM, and monotonic NV counters.
//!
//! Must never: export or accept a private key on the hardware path, write a secret to disk
//! unsealed, fall back to a software key when the TPM fails (the shell shows "This kiosk needs
//! service" with the error's text), or panic on a TPM failure.
//!
//! # Key hierarchy
//! 1. Owner hierarchy → storage primary: TCG ECC P-256 SRK template, recreated on demand from the
//!    owner seed (same template, same key) and flushed right after use; never persisted.
//! 2. Device key: ECC P-256, ECDSA-SHA256, `fixedTPM | fixedParent | sensitiveDataOrigin | sign`,
//!    no `decrypt`, created once under that primary, then made persistent at [`DEVICE_KEY_HANDLE`].
//! 3. On disk (`state_dir/tpm-device-key.json`): only its public point and handle; at each start
//!    the TPM's key at the handle must match it ([`IdentityError::ForeignKey`] otherwise).
//! 4. Sealed secrets: keyed-hash objects under the same primary (optionally with a PolicyPCR over
//!    SHA-256 PCRs); their TPM-encrypted blob ([`SealedBlob`]) is what goes to disk.
//! 5. Rollback guard: owner NV counters at caller-chosen 0x01xxxxxx indices (the stored fleet
//!    config uses `config::store::ROLLBACK_COUNTER_INDEX`).
//!
//! # Why a persistent handle rather than a wrapped blob
//! swtpm and a kernel without `/dev/tpmrm0` have no resource manager: every transient object a
//! process loads stays in one of ~3 object slots until flushed, and a killed process never
//! flushes (0x902). A persistent key needs no loading, so steady-state signing uses no transient
//! slot at all, and a crash leaks nothing. Transient objects (primary, sealed objects) and
//! sessions exist only inside one operation and are flushed on every path out of it. We never
//! flush "whatever is loaded" at start: on a shared TPM that would break other programs.
//!
//! # Threads
//! The tss-esapi `Context` is `Send`, not `Sync`: [`Tpm`] is a handle to a thread that owns it
//! ([`worker`]); every call has a deadline ([`Tpm::open_with_timeout`]) and reconnects after the
//! TPM came back. [`DeviceKey`] is `Clone + Send + Sync`; its `sign` blocks for one round trip.
//!
//! # Files
//! - `error.rs`: [`IdentityError`] and the TSS-code-to-reason translation.
//! - `worker.rs`: [`Tpm`] (actor handle, open, timeouts, reconnect).
//! - `tpm.rs`: the operations on [`Tpm`] (device key, seal, NV).
//! - `templates.rs`: TPM object templates and the "is this our key" check.
//! - `tpm_key.rs`: provisioning the persistent key, its on-disk record, TPM signing.
//! - `key.rs`: [`DeviceKey`], [`KeySigner`], SPKI/DER encodings, the CSR.
//! - `tls.rs`: rustls `SigningKey`/`Signer` and the client-certificate resolver.
//! - `seal.rs`: [`SealedBlob`], seal/unseal with salted (bus-encrypted) sessions.
//! - `nv.rs`: monotonic counters.
//! - `software.rs`: [`SoftwareKey`], DEVELOPMENT ONLY.

mod error;
mod key;
mod nv;
mod nv_word;
mod seal;
mod software;
mod templates;
mod tls;
mod tpm;
mod tpm_key;
mod worker;

pub use error::IdentityError;
pub use key::{DeviceKey, KeySigner};
pub use seal::{MAX_SECRET_LEN, SealedBlob};
pub use software::SoftwareKey;
pub use tpm_key::{DEVICE_KEY_HANDLE, KeyAttributes, KeyOrigin, RECORD_FILE};
pub use worker::{DEFAULT_TIMEOUT, Tpm};

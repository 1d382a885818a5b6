//! Helpers shared by the integration tests: the clinician's side of a call (`media`) for the
//! `media_*` tests, a TPM simulator, TLS and a proxy for the `identity_*` ones.

pub mod media;
pub mod proxy;
pub mod swtpm;
pub mod tls;

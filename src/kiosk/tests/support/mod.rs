//! Helpers shared by the `identity_*` integration tests.

pub mod proxy;
pub mod swtpm;
pub mod tls;

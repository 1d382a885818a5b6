//! Wire types shared by `telekiosk`, `fleetd` and the browser consoles.
//!
//! This crate owns every message that crosses a wire, and nothing else defines one. It is
//! serde-only: no I/O, no async, no crypto but one hash (the key [`fingerprint`] both sides
//! show). Decoding always goes through [`decode`], which enforces a size limit and then each
//! message's own field limits, so a malformed or oversized message is refused with an error
//! naming what is wrong before any other code sees it.

pub mod api;
pub mod command;
pub mod config;
pub mod console;
pub mod decode;
pub mod device;
pub mod e2ee;
pub mod fingerprint;
pub mod probe;
pub mod topics;
pub mod update;
pub mod visit;

pub use decode::{DecodeError, Validate, decode, encode};

/// Version of the wire protocol, also the `v1` in every MQTT topic.
pub const PROTOCOL_VERSION: u32 = 1;

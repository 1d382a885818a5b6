//! Fixtures shared by the config tests and the controller's: config payloads, and documents
//! signed as fleetd signs them.

use ring::signature::Ed25519KeyPair;
use telekiosk_protocol::config::{CONFIG_SCHEMA, ConfigBody, ConfigPayload, SignedConfig};
use telekiosk_protocol::encode;

use crate::signed::test_keys::sign;

/// A payload of `version` for device `kiosk-7f3a`, its room named after the version.
pub(crate) fn payload(version: u64) -> ConfigPayload {
    ConfigPayload {
        schema: CONFIG_SCHEMA,
        device_id: "kiosk-7f3a".into(),
        group: "maple-valley".into(),
        version,
        issued_at: 1_760_000_000,
        body: ConfigBody { room_name: format!("Room v{version}"), ..ConfigBody::default() },
    }
}

/// The wire bytes of `text` signed by `pair`.
pub(crate) fn document(pair: &Ed25519KeyPair, text: &str) -> Vec<u8> {
    encode(&SignedConfig { payload: text.into(), signature: sign(pair, text.as_bytes()) })
}

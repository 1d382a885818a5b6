//! Verification of one signed config document: the pure gate every config passes before the
//! kiosk stores or applies any of it.
//!
//! Owns: the order of checks (size and shape, fleetd's signature over the exact payload bytes,
//! schema, device, version, ranges) and one plain-words error per way a document can be bad.
//! Must never: do I/O, read a clock, or look at a payload's content before its signature is
//! checked.

use telekiosk_protocol::config::{CONFIG_SCHEMA, ConfigPayload, SignedConfig};
use telekiosk_protocol::{DecodeError, Validate, decode};

use crate::signed::PinnedKey;

/// Largest payload text the protocol allows inside a signed config.
const MAX_PAYLOAD_BYTES: usize = 48 * 1024;

/// Why a config document was refused. The kiosk keeps the config in force and reports this
/// message as the refusal's reason, so each says what was wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Larger than the wire limit.
    #[error("the config document is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// Not a signed config document, or its payload is not a schema-v1 config.
    #[error("the config document is malformed: {0}")]
    Malformed(String),
    /// The signature is not fleetd's (pinned at enrolment) over exactly this payload.
    #[error(
        "the config's signature does not verify with the fleet signing key pinned at enrolment"
    )]
    BadSignature,
    /// A config for another device.
    #[error("the config is for device {got:?}, not for this kiosk ({expected:?})")]
    WrongDevice { expected: String, got: String },
    /// Replayed (same version) or rolled back (lower version).
    #[error(
        "config version {version} is not newer than version {in_force} in force (replayed or \
         rolled back)"
    )]
    NotNewer { version: u64, in_force: u64 },
    /// A schema this kiosk software does not know.
    #[error(
        "config schema {0} is unknown to this kiosk software (it knows schema {CONFIG_SCHEMA}): \
         update the kiosk software"
    )]
    UnknownSchema(u32),
    /// A field outside its documented range.
    #[error("config field `{field}` is out of range: {reason}")]
    OutOfRange { field: &'static str, reason: String },
}

/// Verifies a config document as received on the wire (`bytes`: JSON of [`SignedConfig`]) and
/// returns its payload. `in_force_version` is the version of the config in force (0: none).
pub fn verify(
    bytes: &[u8],
    pinned: &PinnedKey,
    device_id: &str,
    in_force_version: u64,
) -> Result<ConfigPayload, ConfigError> {
    verify_signed(&decode_signed(bytes)?, pinned, device_id, in_force_version)
}

/// Decodes the envelope only (size limit, JSON shape); nothing in it is trusted yet.
pub fn decode_signed(bytes: &[u8]) -> Result<SignedConfig, ConfigError> {
    decode::<SignedConfig>(bytes).map_err(|e| match e {
        DecodeError::TooLarge { len, max } => ConfigError::TooLarge { len, max },
        DecodeError::Invalid { field: "payload", reason } if reason.contains("more than") => {
            ConfigError::TooLarge { len: bytes.len(), max: MAX_PAYLOAD_BYTES }
        }
        other => ConfigError::Malformed(other.to_string()),
    })
}

/// [`verify`] for an envelope already decoded.
pub fn verify_signed(
    signed: &SignedConfig,
    pinned: &PinnedKey,
    device_id: &str,
    in_force_version: u64,
) -> Result<ConfigPayload, ConfigError> {
    if !pinned.verifies(signed.payload.as_bytes(), &signed.signature) {
        return Err(ConfigError::BadSignature);
    }
    // The schema first, leniently: a newer schema may have fields this build cannot parse, and
    // "update the kiosk" is the useful answer then, not "malformed".
    #[derive(serde::Deserialize)]
    struct SchemaOnly {
        schema: u32,
    }
    let schema: SchemaOnly = serde_json::from_str(&signed.payload)
        .map_err(|e| ConfigError::Malformed(format!("payload: {e}")))?;
    if schema.schema != CONFIG_SCHEMA {
        return Err(ConfigError::UnknownSchema(schema.schema));
    }
    let payload: ConfigPayload = serde_json::from_str(&signed.payload)
        .map_err(|e| ConfigError::Malformed(format!("payload: {e}")))?;
    if payload.device_id != device_id {
        return Err(ConfigError::WrongDevice {
            expected: device_id.to_string(),
            got: payload.device_id,
        });
    }
    if payload.version <= in_force_version {
        return Err(ConfigError::NotNewer { version: payload.version, in_force: in_force_version });
    }
    payload.validate().map_err(|e| match e {
        DecodeError::Invalid { field, reason } => ConfigError::OutOfRange { field, reason },
        other => ConfigError::Malformed(other.to_string()),
    })?;
    Ok(payload)
}

#[cfg(test)]
mod tests;

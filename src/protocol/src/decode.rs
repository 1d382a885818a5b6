//! Bounded decoding: size limit first, JSON second, field limits last.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest message accepted on any link, in bytes. An SDP offer with bundle is 4–8 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a message was refused. Each variant names what was wrong so it can be logged as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// The bytes are not valid JSON for any known message of this link.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The JSON is well formed but a field breaks its limits.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Field-level checks a message runs after it has been parsed.
pub trait Validate {
    /// Returns the first field that breaks its limits.
    fn validate(&self) -> Result<(), DecodeError>;
}

/// Decodes one message: refuses oversized input, malformed JSON and out-of-range fields.
pub fn decode<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    let msg: T =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    msg.validate()?;
    Ok(msg)
}

/// Encodes one message as JSON. Messages are plain data, so this cannot fail.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).expect("wire types always serialise")
}

/// Checks a string's length in bytes and that it has no control characters.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    if value.len() > max {
        return Err(invalid(field, format!("{} bytes, more than {max}", value.len())));
    }
    if value.chars().any(|c| c.is_control() && c != '\r' && c != '\n') {
        return Err(invalid(field, "contains control characters".into()));
    }
    Ok(())
}

/// Checks an identifier: 1–64 characters of `[A-Za-z0-9._-]`.
pub(crate) fn ident(field: &'static str, value: &str) -> Result<(), DecodeError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() || value.len() > 64 || !value.chars().all(ok_char) {
        return Err(invalid(
            field,
            "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'".into(),
        ));
    }
    Ok(())
}

pub(crate) fn invalid(field: &'static str, reason: String) -> DecodeError {
    DecodeError::Invalid { field, reason }
}

//! The one error type of `identity`, and the translation of TSS/TPM response codes into reasons a
//! person can act on ("This kiosk needs service: …").
//!
//! Owns: wording. Must never: hide a failure behind a fallback, or put secret material in a message.

use std::path::PathBuf;
use std::time::Duration;

/// Why an identity operation failed. `Display` is a plain sentence for the service screen and the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    /// The TPM could not be opened or stopped answering (no device, swtpm not running, I/O error).
    #[error("cannot reach the TPM ({tcti}): {reason}")]
    Unreachable {
        /// The TCTI string that was used, e.g. `device:/dev/tpmrm0`.
        tcti: String,
        /// What went wrong, in plain words.
        reason: String,
    },
    /// The TPM answered, but refused or failed the command.
    #[error("the TPM could not {action}: {reason}")]
    Tpm {
        /// What the kiosk was doing, e.g. "sign with the device key".
        action: &'static str,
        /// The TPM's reason, with its response code.
        reason: String,
        /// Raw TSS2 response code, when known.
        code: Option<u32>,
    },
    /// The TPM did not answer in time (hung device or simulator).
    #[error("the TPM did not answer within {} s while trying to {action}", .after.as_secs_f32())]
    Timeout {
        /// What the kiosk was doing.
        action: &'static str,
        /// The bound that was exceeded.
        after: Duration,
    },
    /// A sealed secret's PCR policy no longer holds: the measured boot state changed.
    #[error(
        "the sealed secret is bound to boot measurements (PCRs {pcrs:?}) that changed since it was sealed"
    )]
    PolicyMismatch {
        /// The PCR indices the secret was sealed to.
        pcrs: Vec<u8>,
    },
    /// The persistent handle holds a key that is not this kiosk's recorded key.
    #[error(
        "the TPM key at handle {handle:#010x} is not this kiosk's key ({detail}); the disk or the TPM was swapped: re-provision this kiosk"
    )]
    ForeignKey {
        /// The persistent handle inspected.
        handle: u32,
        /// What did not match.
        detail: String,
    },
    /// The identity record on disk could not be read or written.
    #[error("identity state {}: {reason}", .path.display())]
    State {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A caller passed something out of range (PCR index, NV index, secret size, blob format).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Building the enrolment request (CSR) failed.
    #[error("cannot build the enrolment request: {0}")]
    Csr(String),
    /// The thread that owns the TPM connection is gone (it panicked or was shut down).
    #[error("the TPM worker stopped unexpectedly")]
    WorkerStopped,
}

impl IdentityError {
    /// True when the TPM itself could not be reached (as opposed to refusing a command).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, IdentityError::Unreachable { .. } | IdentityError::Timeout { .. })
    }

    /// Fills in the TCTI of an `Unreachable` error raised deep in the worker.
    pub(crate) fn with_tcti(self, tcti: &str) -> Self {
        match self {
            IdentityError::Unreachable { tcti: t, reason } if t.is_empty() => {
                IdentityError::Unreachable { tcti: tcti.to_owned(), reason }
            }
            other => other,
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        IdentityError::Invalid { what, reason: reason.into() }
    }
}

/// TSS2 layer of the TCTI (transport) in the upper bits of a response code.
const TCTI_LAYER: u32 = 10;
/// TSS2 layer of the resource manager (tpm2-abrmd / kernel RM).
const RESMGR_LAYER: u32 = 11;
/// TSS2 layer of the system API (marshalling, also reports bad transport replies).
const SYS_LAYER: u32 = 8;
/// TPM_RC_OBJECT_MEMORY, TPM_RC_SESSION_MEMORY, TPM_RC_MEMORY.
const RC_OUT_OF_OBJECTS: u32 = 0x902;
const RC_OUT_OF_SESSIONS: u32 = 0x903;
/// TPM_RC_BAD_AUTH and TPM_RC_AUTH_FAIL (format one, any handle/session number).
const RC_BAD_AUTH: u32 = 0xa2;
const RC_AUTH_FAIL: u32 = 0x8e;
/// TPM_RC_LOCKOUT (dictionary-attack lockout).
const RC_LOCKOUT: u32 = 0x921;

/// Raw response code of a tss-esapi error. tss-esapi 7 keeps the code private but prints it
/// ("Response code value: 0x…") through the inner type's `Display`.
pub(crate) fn raw_code(err: &tss_esapi::Error) -> Option<u32> {
    use tss_esapi::constants::response_code::Tss2ResponseCode;
    let text = match err {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatZero(rc)) => rc.to_string(),
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatOne(rc)) => rc.to_string(),
        _ => return None,
    };
    let hex = text.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

/// Translates a tss-esapi error met while doing `action` into an [`IdentityError`].
pub(crate) fn from_tss(action: &'static str, err: tss_esapi::Error) -> IdentityError {
    let code = raw_code(&err);
    let layer = code.map(|c| (c >> 16) & 0xff);
    match (code, layer) {
        (Some(c), Some(TCTI_LAYER | RESMGR_LAYER)) => IdentityError::Unreachable {
            tcti: String::new(),
            reason: format!("the connection to the TPM failed while trying to {action} ({c:#x})"),
        },
        (Some(c), Some(SYS_LAYER)) if c & 0xffff == 10 => IdentityError::Unreachable {
            tcti: String::new(),
            reason: format!("the TPM connection broke while trying to {action} ({c:#x})"),
        },
        (Some(c), _) if c & 0xfff == RC_OUT_OF_OBJECTS || c & 0xfff == RC_OUT_OF_SESSIONS => {
            IdentityError::Tpm {
                action,
                reason: format!(
                    "the TPM has no free slots ({c:#x}); another program is leaking TPM objects: restart the kiosk"
                ),
                code,
            }
        }
        (Some(c), _) if c & 0xbf == RC_BAD_AUTH || c & 0xbf == RC_AUTH_FAIL => IdentityError::Tpm {
            action,
            reason: format!(
                "authorisation refused ({c:#x}); telekiosk expects the TPM's owner authorisation to be empty"
            ),
            code,
        },
        (Some(c), _) if c & 0xfff == RC_LOCKOUT => IdentityError::Tpm {
            action,
            reason: format!("the TPM is in dictionary-attack lockout ({c:#x})"),
            code,
        },
        (Some(c), _) => IdentityError::Tpm { action, reason: format!("{err} ({c:#x})"), code },
        (None, _) => IdentityError::Tpm { action, reason: err.to_string(), code: None },
    }
}

/// `map_err` adapter: `ctx.sign(..).map_err(tss("sign"))`.
pub(crate) fn tss(action: &'static str) -> impl FnOnce(tss_esapi::Error) -> IdentityError {
    move |e| from_tss(action, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    fn err(rc: u32) -> tss_esapi::Error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(rc))
    }

    #[test]
    fn transport_failures_read_as_unreachable() {
        let e = from_tss("sign", err(0x000a_000a)).with_tcti("swtpm:port=1");
        assert!(e.is_unreachable(), "{e}");
        assert!(e.to_string().contains("swtpm:port=1"), "{e}");
    }

    #[test]
    fn object_memory_exhaustion_names_the_leak() {
        let e = from_tss("load the device key", err(0x902));
        assert!(matches!(e, IdentityError::Tpm { code: Some(0x902), .. }));
        assert!(e.to_string().contains("no free slots"), "{e}");
    }

    #[test]
    fn a_refused_owner_authorisation_says_what_is_expected() {
        let e = from_tss("store the device key in the TPM", err(0x9a2));
        assert!(e.to_string().contains("owner authorisation to be empty"), "{e}");
    }

    #[test]
    fn raw_code_survives_both_formats() {
        assert_eq!(raw_code(&err(0x99d)), Some(0x99d));
        assert_eq!(raw_code(&err(0x18b)), Some(0x18b));
    }
}

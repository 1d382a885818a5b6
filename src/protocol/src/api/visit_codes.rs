//! Bodies of the visit-code API (`/api/visit-codes`): a clinician makes a six-digit code for a
//! patient with an appointment, lists their own active codes, and revokes one. The digits are
//! in [`VisitCode`] only, the one reply that shows them (fleetd keeps a keyed hash); the list
//! names each code by a short id that is no secret.

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, invalid, text};

/// Shortest validity a visit code may have, in minutes.
pub const MIN_VISIT_CODE_MINS: u32 = 15;
/// Longest validity a visit code may have, in minutes (7 days).
pub const MAX_VISIT_CODE_MINS: u32 = 7 * 24 * 60;
/// Validity when none is asked for, in minutes (24 hours).
pub const DEFAULT_VISIT_CODE_MINS: u32 = 24 * 60;

/// `POST /api/visit-codes`: make a code for a visit at `clinic` (one of the clinician's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVisitCode {
    /// Clinic display name, as in the device registry.
    pub clinic: String,
    /// How long the code works, in minutes; [`DEFAULT_VISIT_CODE_MINS`] when absent.
    #[serde(default)]
    pub valid_mins: Option<u32>,
}

impl NewVisitCode {
    /// The validity asked for, or the default.
    pub fn valid_mins(&self) -> u32 {
        self.valid_mins.unwrap_or(DEFAULT_VISIT_CODE_MINS)
    }
}

impl Validate for NewVisitCode {
    fn validate(&self) -> Result<(), DecodeError> {
        text("clinic", &self.clinic, crate::visit::MAX_NAME_BYTES)?;
        if self.clinic.trim().is_empty() {
            return Err(invalid("clinic", "must not be empty".into()));
        }
        let mins = self.valid_mins();
        if !(MIN_VISIT_CODE_MINS..=MAX_VISIT_CODE_MINS).contains(&mins) {
            return Err(invalid(
                "valid_mins",
                format!("must be {MIN_VISIT_CODE_MINS} to {MAX_VISIT_CODE_MINS} (7 days)"),
            ));
        }
        Ok(())
    }
}

/// Reply to [`NewVisitCode`]: the code, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitCode {
    /// The six digits the patient types at the kiosk.
    pub code: String,
    /// The code's short id, as [`VisitCodeInfo`] lists it (not a secret).
    pub id: String,
    /// Clinic display name.
    pub clinic: String,
    /// When the code stops working (Unix seconds).
    pub expires_at: i64,
}

/// One of the caller's active codes (`GET /api/visit-codes`), without its digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitCodeInfo {
    /// Short id, for `DELETE /api/visit-codes/{id}`.
    pub id: String,
    /// Clinic display name.
    pub clinic: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// A patient is waiting with it now (it works again if they leave before a clinician joins).
    #[serde(default)]
    pub in_use: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_15_minutes_to_7_days_and_24_hours_when_not_said() {
        let new = |body: &str| crate::decode::<NewVisitCode>(body.as_bytes());
        let default = new(r#"{"clinic":"North"}"#).unwrap();
        assert_eq!(default.valid_mins(), DEFAULT_VISIT_CODE_MINS);
        for mins in [15, 60, 10080] {
            let body = format!(r#"{{"clinic":"North","valid_mins":{mins}}}"#);
            assert_eq!(new(&body).unwrap().valid_mins(), mins);
        }
        for mins in [0, 14, 10081] {
            let body = format!(r#"{{"clinic":"North","valid_mins":{mins}}}"#);
            let e = new(&body).unwrap_err().to_string();
            assert!(e.contains("valid_mins"), "{mins}: {e}");
        }
        assert!(new(r#"{"clinic":"  "}"#).unwrap_err().to_string().contains("clinic"));
        assert!(new(r#"{"clinic":"North","code":"123456"}"#).is_err(), "unknown field taken");
    }
}

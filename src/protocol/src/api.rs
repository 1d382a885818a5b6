//! Bodies of fleetd's HTTPS API: sign-in for people, enrolment for kiosks. Every body is JSON
//! and decoded with [`crate::decode`], so the same size and field limits apply as on MQTT.

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeError, Validate, ident, invalid, text};

mod accounts;
mod admin;
mod updates;
mod visit_codes;
pub use accounts::*;
pub use admin::*;
pub use updates::*;
pub use visit_codes::*;

/// Largest PEM document (CSR or certificate) accepted, in bytes.
pub const MAX_PEM_BYTES: usize = 8 * 1024;

/// `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        text("username", &self.username, 64)?;
        text("password", &self.password, 1024)
    }
}

/// `GET /api/me` and a successful login: who is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub username: String,
    /// `clinician`, `admin`, `auditor` or `technician`.
    pub role: String,
    /// The clinics assigned to them: whose visits a clinician joins, whose kiosks a technician
    /// tends. Empty for the fleet-wide roles (admin, auditor).
    #[serde(default)]
    pub clinics: Vec<String>,
}

/// Any refused request: `error` says what was wrong in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// `POST /api/enrol`: a kiosk asks to join the fleet with a one-time token and a CSR whose
/// key lives in its TPM. Sending the same token and CSR again asks how the request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The one-time enrolment token an admin created (typed by a technician).
    pub token: String,
    /// PKCS#10 certificate signing request, PEM.
    pub csr_pem: String,
}

impl Validate for EnrolRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        let t = &self.token;
        if t.is_empty() || t.len() > 32 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid("token", "must be 1-32 letters, digits or '-'".into()));
        }
        text("csr_pem", &self.csr_pem, MAX_PEM_BYTES)?;
        if !self.csr_pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            return Err(invalid("csr_pem", "is not a PEM certificate request".into()));
        }
        Ok(())
    }
}

/// Where an enrolment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnrolStatus {
    /// Waiting for an admin to approve; ask again later.
    Pending,
    /// Approved: the kiosk's certificate (its device id is the subject CN), the fleet CA, and
    /// the public key fleetd signs config and commands with (PEM), to pin.
    Approved { certificate_pem: String, ca_pem: String, signing_key_pem: String },
}

/// Reply to [`EnrolRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolResponse {
    /// The pseudonymous id fleetd gave this kiosk.
    pub device_id: String,
    #[serde(flatten)]
    pub status: EnrolStatus,
}

impl Validate for EnrolResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        ident("device_id", &self.device_id)?;
        if let EnrolStatus::Approved { certificate_pem, ca_pem, signing_key_pem } = &self.status {
            text("certificate_pem", certificate_pem, MAX_PEM_BYTES)?;
            text("ca_pem", ca_pem, MAX_PEM_BYTES)?;
            text("signing_key_pem", signing_key_pem, MAX_PEM_BYTES)?;
        }
        Ok(())
    }
}

/// Longest an enrolment token may stay valid, in seconds (30 days).
pub const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// `POST /api/admin/devices/tokens`: make a one-time enrolment token for a kiosk that will
/// stand in `room` of `clinic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolToken {
    /// Clinic display name.
    pub clinic: String,
    /// Room display name.
    pub room: String,
    /// How long the token stays valid; fleetd's default (24 h) when absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

impl Validate for NewEnrolToken {
    fn validate(&self) -> Result<(), DecodeError> {
        place_name("clinic", &self.clinic)?;
        place_name("room", &self.room)?;
        match self.ttl_secs {
            Some(0) => Err(invalid("ttl_secs", "must be at least 1 second".into())),
            Some(t) if t > MAX_TOKEN_TTL_SECS => {
                Err(invalid("ttl_secs", format!("must be at most {MAX_TOKEN_TTL_SECS} (30 days)")))
            }
            _ => Ok(()),
        }
    }
}

/// A clinic or room name: 1-128 bytes, not blank, no control characters (not even newlines).
fn place_name(field: &'static str, value: &str) -> Result<(), DecodeError> {
    text(field, value, crate::visit::MAX_NAME_BYTES)?;
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty".into()));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters".into()));
    }
    Ok(())
}

/// Reply to [`NewEnrolToken`]: the token, shown this once (fleetd keeps only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolToken {
    /// What the technician types at the kiosk, e.g. `K7QM-3XTF`.
    pub token: String,
    /// Clinic display name.
    pub clinic: String,
    /// Room display name.
    pub room: String,
    /// When the token stops working (Unix seconds).
    pub expires_at: i64,
}

/// Where a device stands in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Enrolled, waiting for an admin to approve.
    Pending,
    /// Approved: holds a certificate and may connect.
    Active,
    /// Cut off: its certificate is on the revocation list.
    Revoked,
}

impl DeviceStatus {
    /// The name on the wire: `pending`, `active` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }
}

/// A device as admins see it (`GET /api/admin/devices`, and flattened into the fleet views): no
/// PHI, only ids, places, times and the certificate's serial and SHA-256 fingerprint. Times are
/// Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Pseudonymous device id (`dev-` + 10 base32 characters).
    pub id: String,
    /// Clinic display name.
    pub clinic: String,
    /// Room display name.
    pub room: String,
    /// Where it stands.
    pub status: DeviceStatus,
    /// When it enrolled.
    pub created_at: i64,
    /// When an admin approved it.
    pub approved_at: Option<i64>,
    /// When an admin revoked it.
    pub revoked_at: Option<i64>,
    /// Serial number of its certificate, hex.
    pub cert_serial: Option<String>,
    /// SHA-256 fingerprint of its certificate, as `openssl x509 -fingerprint -sha256` prints it.
    pub cert_fingerprint: Option<String>,
    /// Short fingerprint of its public key ([`crate::fingerprint::key_fingerprint`]), the one
    /// the kiosk shows while it waits: compare the two before approving it.
    #[serde(default)]
    pub key_fingerprint: String,
    /// When its certificate stops working (notAfter, Unix seconds); the kiosk renews it at
    /// about two thirds of its life, and fleetd warns when less than 30 days are left.
    #[serde(default)]
    pub cert_expires_at: Option<i64>,
}

/// `POST /api/device/renew`: an enrolled kiosk asks for a new certificate for the same key,
/// authenticated by the client certificate it presents on the TLS connection (the one about
/// to expire). The CSR must be signed by that certificate's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PKCS#10 certificate signing request, PEM, for the kiosk's current key.
    pub csr_pem: String,
}

impl Validate for RenewRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        text("csr_pem", &self.csr_pem, MAX_PEM_BYTES)?;
        if !self.csr_pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            return Err(invalid("csr_pem", "is not a PEM certificate request".into()));
        }
        Ok(())
    }
}

/// Reply to [`RenewRequest`]: the new certificate (same subject, same key, a later notAfter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The kiosk's device id (the certificate's subject CN).
    pub device_id: String,
    /// The new certificate, PEM.
    pub certificate_pem: String,
    /// Its notAfter, Unix seconds.
    pub expires_at: i64,
}

impl Validate for RenewResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        ident("device_id", &self.device_id)?;
        text("certificate_pem", &self.certificate_pem, MAX_PEM_BYTES)
    }
}

//! Bodies of two-step sign-in, enrolment of an authenticator app, and account administration
//! (`/api/login`, `/api/login/code`, `/api/mfa/…`, `/api/admin/users…`, `fleetd user … --json`).
//! Carry no password hash and no TOTP secret except the one shown once at enrolment.

use serde::{Deserialize, Serialize};

use super::Me;
use crate::decode::{DecodeError, Validate, text};

/// Reply to `POST /api/login` (the password step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum LoginReply {
    /// Signed in: the session cookie is set.
    SignedIn { me: Me },
    /// The password was right: send a code with `pending` to `POST /api/login/code`.
    Code { pending: String },
    /// Signed in only to set up two-step sign-in (`POST /api/mfa/enrol`, then `…/confirm`).
    Enrol { me: Me },
}

/// `POST /api/login/code`: the code from the authenticator app, or a recovery code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub pending: String,
    pub code: String,
}

impl Validate for CodeRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        text("pending", &self.pending, 128)?;
        text("code", &self.code, 32)
    }
}

/// Reply to `POST /api/mfa/enrol`: the new secret, as text and as a QR code (SVG) of its
/// `otpauth://` URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrolment {
    pub secret: String,
    pub uri: String,
    pub qr_svg: String,
}

/// `POST /api/mfa/confirm`: a current code from the app just set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMfa {
    pub code: String,
}

impl Validate for ConfirmMfa {
    fn validate(&self) -> Result<(), DecodeError> {
        text("code", &self.code, 32)
    }
}

/// Reply to `POST /api/mfa/confirm`, and to `fleetd user add --with-totp --json`: one-time
/// recovery codes, shown this once (the secret only from the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    pub recovery_codes: Vec<String>,
}

/// One account, as an admin sees it (`GET /api/admin/users`, `fleetd user list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub role: String,
    pub created_at: i64,
    pub disabled: bool,
    /// Whether two-step sign-in is set up.
    pub mfa: bool,
    /// Failed sign-ins since the last success or unlock.
    pub failures: u32,
    /// Until when (Unix seconds) sign-in is refused after failures, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
    /// The identity provider (its issuer URL) the account signs in through; absent for a local
    /// account (user name and password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
}

/// `PUT /api/admin/users/{name}/password`: a new password for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
}

impl Validate for NewPassword {
    fn validate(&self) -> Result<(), DecodeError> {
        text("password", &self.password, 1024)
    }
}

/// `GET /api/oidc` (public): whether the consoles offer sign-in through an identity provider
/// (OpenID Connect), and the words on its button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcInfo {
    pub enabled: bool,
    /// e.g. "Sign in with Maple Health"; empty when not enabled.
    pub label: String,
}

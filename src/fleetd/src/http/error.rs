//! Every refusal the HTTPS API sends: one [`ApiError`], one status table ([`ApiError::status`])
//! and one wording rule (a sentence: capital first letter, final full stop). A domain error the
//! sender can act on keeps its own words; a server fault is logged here and answered with a
//! plain "not possible right now" that shows nothing of it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use telekiosk_protocol::api;

use crate::access::Permission;
use crate::accounts::AccountsError;
use crate::fleet::FleetError;
use crate::fleet::updates::UpdateError;
use crate::registry::{EnrolError, RegistryError};
use crate::store::StoreError;

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

/// A refused request, sent as `{"error": "..."}` ([`api::ApiError`]).
#[derive(Debug)]
pub enum ApiError {
    /// No live session behind the request's cookie.
    NotSignedIn,
    /// Signed in, but the user's role does not grant this.
    NotAllowed(Permission),
    /// Allowed in general, but the thing belongs to a clinic not assigned to the user.
    OutsideClinics,
    /// Sign-in with a wrong user name or password.
    WrongCredentials,
    /// A console connection from a page of another origin.
    CrossOrigin,
    /// A body not declared as JSON; the shape to send instead.
    NotJson(&'static str),
    /// A JSON body that breaks the message's limits: the shape to send, and why.
    BadBody { shape: &'static str, reason: String },
    /// The request is wrong: the domain's words.
    Invalid(String),
    /// The credential in the body does not work: the domain's words.
    Unauthorized(String),
    /// The thing may not be done at all: the domain's words.
    Forbidden(String),
    /// There is no such thing: the domain's words.
    NotFound(String),
    /// Not in the present state: the domain's words.
    Conflict(String),
    /// Too many requests: try again after `retry_after` seconds (sent as `Retry-After`).
    TooMany { retry_after: u64, message: String },
    /// The session may only set up two-step sign-in.
    MfaSetupNeeded,
    /// A state-changing request from a page of another origin.
    CrossSiteRequest,
    /// A server fault, already logged: what was not possible (shown without the fault).
    Fault(Fault),
}

/// What a server fault stopped, which decides what the sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Signing in.
    SignIn,
    /// A kiosk's enrolment.
    Enrolment,
    /// Anything else (administration, console connections).
    Other,
}

impl ApiError {
    /// The one status table.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotSignedIn | Self::WrongCredentials | Self::Unauthorized(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::NotAllowed(_)
            | Self::OutsideClinics
            | Self::CrossOrigin
            | Self::Forbidden(_)
            | Self::MfaSetupNeeded
            | Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadBody { .. } | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Fault(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the sender is told, as one sentence.
    pub fn message(&self) -> String {
        let text = match self {
            Self::NotSignedIn => "Not signed in.".to_string(),
            Self::NotAllowed(p) => format!("Your role may not {}.", p.describe()),
            Self::OutsideClinics => "That kiosk is not in one of your clinics.".to_string(),
            Self::WrongCredentials => "Wrong user name or password.".to_string(),
            Self::CrossOrigin => "Cross-origin connections are not allowed.".to_string(),
            Self::NotJson(shape) => {
                format!("Send {shape} as JSON (Content-Type: application/json).")
            }
            Self::BadBody { shape, reason } => format!("Send {shape} as JSON: {reason}."),
            Self::Invalid(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m) => m.clone(),
            Self::TooMany { message, .. } => message.clone(),
            Self::MfaSetupNeeded => {
                "Set up two-step sign-in first: sign in again to see how.".to_string()
            }
            Self::CrossSiteRequest => {
                "Refused: this request came from another site. Use fleetd's own pages.".to_string()
            }
            Self::Fault(Fault::SignIn) => "Signing in is not possible right now.".to_string(),
            Self::Fault(Fault::Enrolment) => {
                "Enrolment is not possible right now; try again in a few minutes.".to_string()
            }
            Self::Fault(Fault::Other) => {
                "That is not possible right now; see fleetd's log.".to_string()
            }
        };
        sentence(text)
    }

    /// A server fault: logs `error` (never sent) and answers with what `fault` stopped.
    pub fn fault(fault: Fault, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{} failed: {error}", fault.doing());
        Self::Fault(fault)
    }
}

impl Fault {
    fn doing(self) -> &'static str {
        match self {
            Self::SignIn => "sign-in",
            Self::Enrolment => "enrolment",
            Self::Other => "administration",
        }
    }
}

/// The wording rule: a capital first letter (unless the text starts with a name such as
/// `fleetd`) and a final full stop.
fn sentence(mut text: String) -> String {
    if !text.starts_with("fleetd")
        && let Some(first) = text.get(..1)
    {
        text.replace_range(..1, &first.to_uppercase());
    }
    if !text.ends_with(['.', '?', '!']) {
        text.push('.');
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(api::ApiError { error: self.message() });
        let mut res = (self.status(), body).into_response();
        if let Self::TooMany { retry_after, .. } = self {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        res
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::fault(Fault::Other, &format_args!("a blocking task failed: {e}"))
    }
}

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        let m = e.to_string();
        match e {
            AccountsError::WrongCredentials => Self::WrongCredentials,
            AccountsError::Throttled { secs } | AccountsError::Locked { secs } => {
                Self::TooMany { retry_after: secs, message: m }
            }
            AccountsError::WrongCode | AccountsError::UsedCode | AccountsError::PendingExpired => {
                Self::Unauthorized(m)
            }
            AccountsError::Disabled => Self::Forbidden(m),
            AccountsError::Policy(_) | AccountsError::BadUsername | AccountsError::BadClinic(_) => {
                Self::Invalid(m)
            }
            AccountsError::NoSuchUser(_) => Self::NotFound(m),
            AccountsError::MfaAlreadySet | AccountsError::NoEnrolment => Self::Conflict(m),
            AccountsError::Store(StoreError::NoSuchUser(_)) => Self::NotFound(m),
            AccountsError::Store(StoreError::UserExists(_)) => Self::Conflict(m),
            e @ (AccountsError::Store(_) | AccountsError::Hash(_)) => {
                Self::fault(Fault::SignIn, &e)
            }
        }
    }
}

impl From<EnrolError> for ApiError {
    fn from(e: EnrolError) -> Self {
        let m = e.to_string();
        match e {
            EnrolError::UnknownToken | EnrolError::ExpiredToken => Self::Unauthorized(m),
            EnrolError::TokenUsed | EnrolError::KeyEnrolled => Self::Conflict(m),
            EnrolError::BadCsr(_) => Self::Invalid(m),
            EnrolError::Revoked => Self::Forbidden(m),
            EnrolError::Store(_) | EnrolError::Random(_) => Self::fault(Fault::Enrolment, &e),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let m = e.to_string();
        match e {
            RegistryError::Invalid(_) => Self::Invalid(m),
            RegistryError::NotPending { .. } | RegistryError::AlreadyRevoked(_) => {
                Self::Conflict(m)
            }
            RegistryError::Store(StoreError::NoSuchDevice(_)) => Self::NotFound(m),
            RegistryError::Store(_) | RegistryError::Pki(_) | RegistryError::Random(_) => {
                Self::fault(Fault::Other, &e)
            }
        }
    }
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        let m = e.to_string();
        match e {
            FleetError::Config(_) | FleetError::Rollout(_) | FleetError::Invalid(_) => {
                Self::Invalid(m)
            }
            FleetError::NoSuchRollout(_)
            | FleetError::NoSuchCommand(_)
            | FleetError::Store(StoreError::NoSuchDevice(_)) => Self::NotFound(m),
            FleetError::NoBody(_)
            | FleetError::Busy { .. }
            | FleetError::NoPrevious(_)
            | FleetError::Change { .. }
            | FleetError::NotActive { .. } => Self::Conflict(m),
            FleetError::Update(u) => match u {
                UpdateError::NoSuchBundle(_) | UpdateError::NoSuchUpdate(_) => Self::NotFound(m),
                UpdateError::VersionExists { .. }
                | UpdateError::SameBundle { .. }
                | UpdateError::Busy { .. } => Self::Conflict(m),
                UpdateError::Size(_) | UpdateError::NotABundle(_) => Self::Invalid(m),
                UpdateError::Read { .. } | UpdateError::Write { .. } => {
                    Self::fault(Fault::Other, &u)
                }
            },
            FleetError::Store(_) | FleetError::Corrupt { .. } | FleetError::Random(_) => {
                Self::fault(Fault::Other, &e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_one_sentence() {
        assert_eq!(sentence("device x is already revoked".into()), "Device x is already revoked.");
        assert_eq!(sentence("Not signed in.".into()), "Not signed in.");
        assert_eq!(sentence("fleetd is shutting down".into()), "fleetd is shutting down.");
        let e = ApiError::from(FleetError::NoSuchCommand("c-1".into()));
        assert_eq!(
            (e.status(), e.message().as_str()),
            (StatusCode::NOT_FOUND, "There is no command c-1.")
        );
    }
}

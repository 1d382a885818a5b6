//! The permission checks of the HTTP routes: [`Allowed`], an extractor parameterised by a
//! permission marker from [`need`], applied once per route group as a `route_layer` (see
//! [`require`]); [`Acting`], how a handler behind it learns who is acting without checking
//! again; and [`on_device`], the clinic check of a technician's kiosk routes.
//!
//! Asks [`crate::access`] and nothing else; never decides a permission itself. Refusals are
//! logged under `fleetd::audit` with who and what, never a cookie or token.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::middleware::{self, FromExtractorLayer};

use super::AppState;
use super::error::ApiError;
use super::extract::Place;
use super::extract::SignedIn;
use crate::access::Permission;
use crate::accounts::User;
use crate::audit::{self, Entry};

/// A permission, as a type, for [`Allowed`].
pub trait Need: Send + Sync + 'static {
    /// The permission a request must have.
    const PERMISSION: Permission;
}

/// The permission markers, one per [`Permission`].
pub mod need {
    use super::{Need, Permission};

    macro_rules! needs {
        ($($name:ident),*) => {$(
            #[doc = concat!("Needs [`Permission::", stringify!($name), "`].")]
            #[derive(Debug, Clone, Copy)]
            #[allow(dead_code, reason = "a marker for every permission, used as routes need it")]
            pub struct $name;
            impl Need for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }
    needs!(
        ManageDevices,
        ManageConfig,
        ManageRollouts,
        ManageUsers,
        IssueEnrolCodes,
        DiagnoseKiosks,
        JoinVisits,
        ReadAudit
    );
}

/// A signed-in user whose role grants `N`'s permission: 401 without a session, 403 otherwise.
/// Let through, the user is in the request's extensions as [`Acting`].
#[derive(Debug, Clone)]
pub struct Allowed<N: Need>(PhantomData<N>);

impl<N: Need> FromRequestParts<Arc<AppState>> for Allowed<N> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let SignedIn { user, .. } = SignedIn::from_request_parts(parts, state).await?;
        let permission = N::PERMISSION;
        if !user.scope().may(permission) {
            let Ok(Place(place)) = Place::from_request_parts(parts, state).await;
            let (actor, path) = (audit::user(&user.username), parts.uri.path());
            let entry = Entry::new(&actor, audit::ACCESS_REFUSED, path, &place)
                .refused(&format!("not_allowed_{}", user.role.as_str()));
            state.audit.record(entry).await;
            return Err(ApiError::NotAllowed(permission));
        }
        parts.extensions.insert(Acting(user));
        Ok(Self(PhantomData))
    }
}

/// The layer that checks `N` once for every route of a group.
pub fn require<N: Need>(state: Arc<AppState>) -> FromExtractorLayer<Allowed<N>, Arc<AppState>> {
    middleware::from_extractor_with_state::<Allowed<N>, _>(state)
}

/// The user a group's [`require`] layer let through; for handlers that name who acted.
#[derive(Debug, Clone)]
pub struct Acting(pub User);

impl<S: Send + Sync> FromRequestParts<S> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Only behind a `require` layer; a route without one has no acting user.
        parts.extensions.get::<Acting>().cloned().ok_or(ApiError::NotSignedIn)
    }
}

/// Whether `user` may do `permission` on a kiosk of `clinic`: their role must allow it (an
/// admin anywhere), and for a clinic-scoped role the clinic must be one of theirs.
pub fn in_clinic(user: &User, permission: Permission, clinic: &str) -> Result<(), ApiError> {
    let scope = user.scope();
    if !scope.may(permission) {
        tracing::warn!(target: "fleetd::audit", user = %user.username, role = user.role.as_str(), "refused: the role may not {}", permission.describe());
        return Err(ApiError::NotAllowed(permission));
    }
    if !scope.reaches(clinic) {
        tracing::warn!(target: "fleetd::audit", user = %user.username, role = user.role.as_str(), "refused: {} outside the user's clinics", permission.describe());
        return Err(ApiError::OutsideClinics);
    }
    Ok(())
}

/// [`in_clinic`] for the kiosk `device_id`, by the clinic of its enrolment record. Blocking
/// (SQLite): call it inside [`AppState::blocking`].
pub fn on_device(
    state: &AppState,
    user: &User,
    permission: Permission,
    device_id: &str,
) -> Result<(), ApiError> {
    let device = state.registry.show(device_id)?;
    in_clinic(user, permission, &device.clinic)
}

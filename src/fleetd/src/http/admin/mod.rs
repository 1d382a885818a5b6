//! The administration API, every route under `/api/admin`: devices and enrolment codes
//! ([`devices`]), fleet state, commands, config and rollouts ([`fleet`]), OS updates ([`updates`]), and
//! console accounts
//! ([`users`]). Each group of routes is behind one permission check ([`require`], from
//! [`crate::access`]'s table), applied to the group as a layer, so no handler repeats it and a
//! new route cannot skip it. Routes that act on one kiosk (enrolment codes, commands) also
//! check its clinic for a technician.

mod devices;
mod fleet;
mod updates;
mod users;

use std::sync::Arc;

use axum::Router;

use super::AppState;
use super::allowed::{need, require};

/// Where every admin route lives.
pub const PREFIX: &str = "/api/admin";

/// The admin routes under [`PREFIX`], each group checked for its permission before it runs.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let s = || state.clone();
    let admin = Router::new()
        .merge(devices::manage().route_layer(require::<need::ManageDevices>(s())))
        .merge(fleet::devices().route_layer(require::<need::ManageDevices>(s())))
        .merge(devices::enrol_codes().route_layer(require::<need::IssueEnrolCodes>(s())))
        .merge(fleet::commands().route_layer(require::<need::DiagnoseKiosks>(s())))
        .merge(fleet::config().route_layer(require::<need::ManageConfig>(s())))
        .merge(fleet::rollouts().route_layer(require::<need::ManageRollouts>(s())))
        .merge(updates::routes().route_layer(require::<need::ManageRollouts>(s())))
        .merge(users::routes().route_layer(require::<need::ManageUsers>(s())));
    Router::new().nest(PREFIX, admin)
}

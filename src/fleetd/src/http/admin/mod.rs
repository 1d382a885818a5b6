//! The administration API (admins only), every route under `/api/admin`: devices and
//! enrolment codes ([`devices`]), fleet state, commands, config and rollouts ([`fleet`]), and
//! console accounts ([`users`]).
//! Every route here is behind one [`AdminUser`] check, applied to the group as a layer, so no
//! handler repeats it and a new route cannot skip it.

mod devices;
mod fleet;
mod users;

use std::sync::Arc;

use axum::{Router, middleware};

use super::AppState;
use super::extract::AdminUser;

/// Where every admin route lives.
pub const PREFIX: &str = "/api/admin";

/// The admin routes under [`PREFIX`], each checked for an admin before it runs.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let admin = Router::new()
        .merge(devices::routes())
        .merge(fleet::routes())
        .merge(users::routes())
        .route_layer(middleware::from_extractor_with_state::<AdminUser, _>(state));
    Router::new().nest(PREFIX, admin)
}

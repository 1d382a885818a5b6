//! OS updates for admins (`/api/admin/…`): the bundles fleetd has, and update rollouts, which
//! go in waves like config rollouts and halt past their failure threshold. Bundles are added
//! with `fleetd update add` on the server (a file of hundreds of MB does not go through the
//! console).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use telekiosk_protocol::api::{BundleInfo, NewUpdate, UpdateInfo};

use crate::audit::{self, Entry, class_of};
use crate::fleet::rollout::Control;
use crate::http::AppState;
use crate::http::allowed::Acting;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, Place, Valid};
use crate::store::unix_now;

type S = State<Arc<AppState>>;

/// Bundles and update rollouts, relative to `/api/admin` (run rollouts).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/bundles", get(bundles))
        .route("/updates", get(updates).post(start))
        .route("/updates/{id}", get(update))
        .route("/updates/{id}/{action}", post(change))
}

async fn bundles(State(s): S) -> ApiResult<Json<Vec<BundleInfo>>> {
    s.blocking(|s| s.fleet.bundles()).await.map(Json)
}

async fn updates(State(s): S) -> ApiResult<Json<Vec<UpdateInfo>>> {
    s.blocking(|s| s.fleet.updates(100)).await.map(Json)
}

async fn update(State(s): S, Path(id): Path<i64>) -> ApiResult<Json<UpdateInfo>> {
    s.blocking(move |s| s.fleet.update(id)).await.map(Json)
}

async fn start(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Valid(req): Valid<NewUpdate>,
) -> ApiResult<(StatusCode, Json<UpdateInfo>)> {
    let (by, group) = (u.username.clone(), req.group.clone());
    let res = s.blocking(move |s| s.fleet.start_update(&req, &by, unix_now())).await;
    let detail = res.as_ref().map_or_else(
        |_| String::new(),
        |r| format!("update {} version {} devices {}", r.id, r.version, r.progress.devices.len()),
    );
    let entry = Entry::new(&audit::user(&u.username), audit::UPDATE_START, &group, &place);
    s.audit.record(entry.detail(&detail).outcome(&res, class_of)).await;
    s.driver.poke();
    Ok((StatusCode::CREATED, Json(res?)))
}

async fn change(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Path((id, action)): Path<(i64, String)>,
) -> ApiResult<Json<UpdateInfo>> {
    let action = match action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "abort" => Control::Abort,
        "override-halt" => Control::OverrideHalt,
        _ => return Err(ApiError::NotFound("Use pause, resume, abort or override-halt.".into())),
    };
    let by = u.username.clone();
    let res = s.blocking(move |s| s.fleet.change_update(id, action, &by, unix_now())).await;
    let object = format!("update {id} {action:?}");
    let entry = Entry::new(&audit::user(&u.username), audit::UPDATE_CHANGE, &object, &place);
    s.audit.record(entry.outcome(&res, class_of)).await;
    s.driver.poke();
    res.map(Json)
}

impl Body for NewUpdate {
    const SHAPE: &'static str = "{\"group\", \"version\", \"canary\"?, \"first_wave_percent\"?, \
        \"failure_threshold_percent\"?, \"wave_timeout_secs\"?, \"reboot_in_opening_hours\"?, \
        \"health_timeout_secs\"?}";
}

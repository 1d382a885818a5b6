//! Fleet administration: device state (one device in full, its registry record included) and
//! commands, group config and overrides, rollouts (`/api/admin/…`). Bodies are the protocol's
//! `api` types; a config refusal names the field and its allowed range. Never logs config
//! contents.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use telekiosk_protocol::api::{
    CommandInfo, ConfigDraft, DeviceConfig, DeviceDetail, FleetDevice, GroupConfig, GroupInfo,
    NewCommand, NewRollout, RolloutInfo,
};

use crate::access::command_permission;
use crate::audit::{self, Entry, class_of};
use crate::fleet::rollout::Control;
use crate::fleet::{FleetError, command_name};
use crate::http::AppState;
use crate::http::allowed::{Acting, on_device};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Place;
use crate::http::extract::Valid;
use crate::store::unix_now;

/// Fleet state and one device in full, relative to `/api/admin` (device management).
pub fn devices() -> Router<Arc<AppState>> {
    Router::new()
        .route("/fleet", get(fleet))
        .route("/groups", get(groups))
        .route("/devices/{id}", get(device))
}

/// Commands and their results (identify and diagnostics; reboot and restart for an admin).
pub fn commands() -> Router<Arc<AppState>> {
    Router::new()
        .route("/devices/{id}/commands", post(new_command))
        .route("/commands/{id}", get(command))
}

/// Group config and device overrides.
pub fn config() -> Router<Arc<AppState>> {
    Router::new()
        .route("/config/groups/{group}", get(group_config).put(set_group_config))
        .route("/config/devices/{id}", get(device_config).put(set_device_config))
}

/// Rollouts and rollbacks.
pub fn rollouts() -> Router<Arc<AppState>> {
    Router::new()
        .route("/rollouts", get(rollouts_list).post(start_rollout))
        .route("/rollouts/{id}", get(rollout))
        .route("/rollouts/{id}/{action}", post(change_rollout))
        .route("/rollback", post(rollback))
}

type S = State<Arc<AppState>>;

async fn fleet(
    State(s): S,
    Acting(u): Acting,
    Place(p): Place,
) -> ApiResult<Json<Vec<FleetDevice>>> {
    s.audit.record_read(Entry::new(&audit::user(&u.username), audit::READ, "fleet", &p)).await;
    s.blocking(|s| s.fleet.fleet()).await.map(Json)
}

async fn groups(State(s): S) -> ApiResult<Json<Vec<GroupInfo>>> {
    s.blocking(|s| s.fleet.groups()).await.map(Json)
}

async fn device(
    State(s): S,
    Acting(u): Acting,
    Place(p): Place,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceDetail>> {
    s.audit.record_read(Entry::new(&audit::user(&u.username), audit::READ, &id, &p)).await;
    s.blocking(move |s| s.fleet.device_detail(&id)).await.map(Json)
}

/// A technician may send identify and diagnostics to the kiosks of their clinics; reboot and
/// restart are an admin's.
async fn new_command(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Path(id): Path<String>,
    Valid(req): Valid<NewCommand>,
) -> ApiResult<(StatusCode, Json<CommandInfo>)> {
    let (acting, object) = (u.clone(), id.clone());
    let res = s.blocking(move |s| {
        on_device(s, &acting, command_permission(&req.command), &id)?;
        Ok::<_, ApiError>(s.fleet.new_command(&id, req.command, &acting.username, unix_now())?)
    });
    let res = res.await;
    let detail = res.as_ref().map(|c| format!("{} {}", command_name(&c.command), c.command_id));
    let entry = Entry::new(&audit::user(&u.username), audit::COMMAND, &object, &place);
    s.audit.record(entry.detail(detail.as_deref().unwrap_or("")).outcome(&res, class_of)).await;
    s.driver.poke();
    Ok((StatusCode::CREATED, Json(res?)))
}

async fn command(
    State(s): S,
    Acting(u): Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<CommandInfo>> {
    s.blocking(move |s| {
        let info = s.fleet.command(&id)?.ok_or(FleetError::NoSuchCommand(id))?;
        on_device(s, &u, command_permission(&info.command), &info.device_id)?;
        Ok::<_, ApiError>(info)
    })
    .await
    .map(Json)
}

async fn group_config(
    State(s): S,
    Acting(u): Acting,
    Place(p): Place,
    Path(group): Path<String>,
) -> ApiResult<Json<GroupConfig>> {
    let object = format!("config of {group}");
    s.audit.record_read(Entry::new(&audit::user(&u.username), audit::READ, &object, &p)).await;
    s.blocking(move |s| s.fleet.group_config(&group)).await.map(Json)
}

async fn set_group_config(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Path(group): Path<String>,
    Valid(draft): Valid<ConfigDraft>,
) -> ApiResult<Json<GroupConfig>> {
    let (by, object) = (u.username.clone(), group.clone());
    let res = s.blocking(move |s| s.fleet.set_group_config(&group, draft.body, &by, unix_now()));
    let res = res.await;
    let entry = Entry::new(&audit::user(&u.username), audit::CONFIG_GROUP, &object, &place);
    s.audit.record(entry.outcome(&res, class_of)).await;
    res.map(Json)
}

async fn device_config(
    State(s): S,
    Acting(u): Acting,
    Place(p): Place,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceConfig>> {
    let object = format!("config of {id}");
    s.audit.record_read(Entry::new(&audit::user(&u.username), audit::READ, &object, &p)).await;
    s.blocking(move |s| s.fleet.device_config(&id)).await.map(Json)
}

async fn set_device_config(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Path(id): Path<String>,
    Valid(draft): Valid<ConfigDraft>,
) -> ApiResult<Json<DeviceConfig>> {
    let (by, object) = (u.username.clone(), id.clone());
    let res = s.blocking(move |s| s.fleet.set_device_override(&id, draft.body, &by, unix_now()));
    let res = res.await;
    let entry = Entry::new(&audit::user(&u.username), audit::CONFIG_DEVICE, &object, &place);
    s.audit.record(entry.outcome(&res, class_of)).await;
    res.map(Json)
}

async fn rollouts_list(State(s): S) -> ApiResult<Json<Vec<RolloutInfo>>> {
    s.blocking(|s| s.fleet.rollouts(None, 100)).await.map(Json)
}

async fn rollout(State(s): S, Path(id): Path<i64>) -> ApiResult<Json<RolloutInfo>> {
    s.blocking(move |s| s.fleet.rollout(id)).await.map(Json)
}

async fn start_rollout(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Valid(req): Valid<NewRollout>,
) -> ApiResult<(StatusCode, Json<RolloutInfo>)> {
    let (by, group) = (u.username.clone(), req.group.clone());
    let res = s.blocking(move |s| s.fleet.start_rollout(&req, &by, unix_now())).await;
    let entry = Entry::new(&audit::user(&u.username), audit::ROLLOUT_START, &group, &place);
    s.audit.record(entry.detail(&rollout_detail(&res)).outcome(&res, class_of)).await;
    s.driver.poke();
    Ok((StatusCode::CREATED, Json(res?)))
}

async fn rollback(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Valid(req): Valid<NewRollout>,
) -> ApiResult<(StatusCode, Json<RolloutInfo>)> {
    let (by, group) = (u.username.clone(), req.group.clone());
    let res = s.blocking(move |s| s.fleet.rollback(&req, &by, unix_now())).await;
    let entry = Entry::new(&audit::user(&u.username), audit::ROLLBACK, &group, &place);
    s.audit.record(entry.detail(&rollout_detail(&res)).outcome(&res, class_of)).await;
    s.driver.poke();
    Ok((StatusCode::CREATED, Json(res?)))
}

async fn change_rollout(
    State(s): S,
    Acting(u): Acting,
    Place(place): Place,
    Path((id, action)): Path<(i64, String)>,
) -> ApiResult<Json<RolloutInfo>> {
    let (action, name) = match action.as_str() {
        "pause" => (Control::Pause, audit::ROLLOUT_PAUSE),
        "resume" => (Control::Resume, audit::ROLLOUT_RESUME),
        "abort" => (Control::Abort, audit::ROLLOUT_ABORT),
        "override-halt" => (Control::OverrideHalt, audit::ROLLOUT_OVERRIDE_HALT),
        _ => return Err(ApiError::NotFound("Use pause, resume, abort or override-halt.".into())),
    };
    let by = u.username.clone();
    let res = s.blocking(move |s| s.fleet.change_rollout(id, action, &by, unix_now()));
    let res = res.await;
    let entry = Entry::new(&audit::user(&u.username), name, &format!("rollout {id}"), &place);
    s.audit.record(entry.outcome(&res, class_of)).await;
    s.driver.poke();
    res.map(Json)
}

/// What the trail keeps of a started rollout: its id, version and size.
fn rollout_detail(res: &ApiResult<RolloutInfo>) -> String {
    res.as_ref().map_or_else(
        |_| String::new(),
        |r| format!("rollout {} version {} devices {}", r.id, r.version, r.progress.devices.len()),
    )
}

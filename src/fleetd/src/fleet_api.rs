//! The fleet administration part of the HTTPS API (admins only): device state and commands,
//! group config and overrides, rollouts. Bodies are the protocol's `api` types; a refusal is an
//! [`ApiError`] whose message is [`FleetError`]'s, unchanged (config errors name the field and
//! its allowed range). Database work runs on blocking threads. Never logs config contents.
//!
//! [`ApiError`]: telekiosk_protocol::api::ApiError

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;
use telekiosk_protocol::api::{ConfigDraft, NewCommand, NewRollout};

use crate::device_api::admin;
use crate::fleet::{Fleet, FleetError};
use crate::rollout::Admin;
use crate::store::{StoreError, unix_now};
use crate::web::{AppState, Refused, api_error, json_body};

/// The fleet routes, to merge into the app.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/fleet", get(fleet))
        .route("/api/admin/groups", get(groups))
        .route("/api/admin/devices/{id}", get(device))
        .route("/api/devices/{id}/commands", post(new_command))
        .route("/api/admin/commands/{id}", get(command))
        .route("/api/admin/config/groups/{group}", get(group_config).put(set_group_config))
        .route("/api/admin/config/devices/{id}", get(device_config).put(set_device_config))
        .route("/api/admin/rollouts", get(rollouts).post(start_rollout))
        .route("/api/admin/rollouts/{id}", get(rollout))
        .route("/api/admin/rollouts/{id}/{action}", post(change_rollout))
        .route("/api/admin/rollback", post(rollback))
}

/// HTTP status of each refusal; a server fault is logged and not shown.
fn refused(e: FleetError) -> Refused {
    let status = match &e {
        FleetError::Config(_) | FleetError::Rollout(_) | FleetError::Invalid(_) => {
            StatusCode::BAD_REQUEST
        }
        FleetError::NoSuchRollout(_)
        | FleetError::NoSuchCommand(_)
        | FleetError::Store(StoreError::NoSuchDevice(_)) => StatusCode::NOT_FOUND,
        FleetError::NoBody(_)
        | FleetError::Busy { .. }
        | FleetError::NoPrevious(_)
        | FleetError::Change { .. }
        | FleetError::NotActive { .. } => StatusCode::CONFLICT,
        FleetError::Store(_) | FleetError::Corrupt { .. } | FleetError::Random(_) => {
            tracing::error!("fleet administration failed: {e}");
            let message = "That is not possible right now; see fleetd's log.";
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, message).into();
        }
    };
    api_error(status, &e.to_string()).into()
}

/// Runs `f` on a blocking thread and answers with its JSON (or the refusal).
async fn blocking<T: Serialize + Send + 'static>(
    state: &Arc<AppState>,
    status: StatusCode,
    f: impl FnOnce(&Fleet) -> Result<T, FleetError> + Send + 'static,
) -> Result<Response, Refused> {
    let fleet = state.fleet.clone();
    match tokio::task::spawn_blocking(move || f(&fleet)).await {
        Ok(Ok(value)) => Ok((status, Json(value)).into_response()),
        Ok(Err(e)) => Err(refused(e)),
        Err(e) => {
            tracing::error!("fleet administration task failed: {e}");
            Err(api_error(StatusCode::INTERNAL_SERVER_ERROR, "That failed; see fleetd's log.")
                .into())
        }
    }
}

async fn fleet(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, |f| f.fleet()).await
}

async fn groups(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, |f| f.groups()).await
}

async fn device(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, move |f| f.device_detail(&id)).await
}

async fn new_command(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let req: NewCommand = json_body(&headers, &body, "{\"command\": {\"type\": …}}")?;
    let by = user.username;
    let res = blocking(&state, StatusCode::CREATED, move |f| {
        f.new_command(&id, req.command, &by, unix_now())
    })
    .await;
    state.driver.poke();
    res
}

async fn command(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, move |f| f.command(&id)?.ok_or(FleetError::NoSuchCommand(id)))
        .await
}

async fn group_config(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(group): Path<String>,
) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, move |f| f.group_config(&group)).await
}

async fn set_group_config(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let draft: ConfigDraft = json_body(&headers, &body, "{\"body\": {…}}")?;
    let by = user.username;
    blocking(&state, StatusCode::OK, move |f| {
        f.set_group_config(&group, draft.body, &by, unix_now())
    })
    .await
}

async fn device_config(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, move |f| f.device_config(&id)).await
}

async fn set_device_config(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let draft: ConfigDraft = json_body(&headers, &body, "{\"body\": {…}}")?;
    let by = user.username;
    blocking(&state, StatusCode::OK, move |f| {
        f.set_device_override(&id, draft.body, &by, unix_now())
    })
    .await
}

async fn rollouts(State(state): State<Arc<AppState>>, jar: CookieJar) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, |f| f.rollouts(None, 100)).await
}

async fn rollout(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path(id): Path<i64>,
) -> Result<Response, Refused> {
    admin(&state, &jar)?;
    blocking(&state, StatusCode::OK, move |f| f.rollout(id)).await
}

async fn start_rollout(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let req: NewRollout = json_body(&headers, &body, "{\"group\", \"canary\", …}")?;
    let by = user.username;
    let res =
        blocking(&state, StatusCode::CREATED, move |f| f.start_rollout(&req, &by, unix_now()))
            .await;
    state.driver.poke();
    res
}

async fn rollback(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let req: NewRollout = json_body(&headers, &body, "{\"group\", …}")?;
    let by = user.username;
    let res =
        blocking(&state, StatusCode::CREATED, move |f| f.rollback(&req, &by, unix_now())).await;
    state.driver.poke();
    res
}

async fn change_rollout(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Response, Refused> {
    let user = admin(&state, &jar)?;
    let action = match action.as_str() {
        "pause" => Admin::Pause,
        "resume" => Admin::Resume,
        "abort" => Admin::Abort,
        _ => return Err(api_error(StatusCode::NOT_FOUND, "Use pause, resume or abort.").into()),
    };
    let by = user.username;
    let res =
        blocking(&state, StatusCode::OK, move |f| f.change_rollout(id, action, &by, unix_now()))
            .await;
    state.driver.poke();
    res
}

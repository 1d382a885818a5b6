//! Account administration (`/api/admin/users…`): list, disable, enable, remove, force sign-out,
//! unlock after failed sign-ins, reset two-step sign-in, and set a new password. Each change is
//! audited with the admin's name; sessions it ends close at once, open consoles included.
//! Never logs a password. An admin cannot disable or remove their own account here (that would
//! lock the last admin out by a slip); the CLI can.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use telekiosk_protocol::api::{NewPassword, UserInfo};

use crate::cli::user::user_infos;
use crate::http::AppState;
use crate::http::allowed::Acting;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Valid;

/// The account administration routes, relative to `/api/admin`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/users", get(list))
        .route("/users/{name}", axum::routing::delete(remove))
        .route("/users/{name}/{action}", post(act))
        .route("/users/{name}/password", put(password))
}

async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<UserInfo>>> {
    Ok(Json(state.blocking(|s| user_infos(&s.accounts)).await?))
}

fn not_self(admin: &str, name: &str, what: &str) -> ApiResult<()> {
    match admin == name {
        true => Err(ApiError::Conflict(format!(
            "You cannot {what} your own account here; another admin, or `fleetd user` on the server, can"
        ))),
        false => Ok(()),
    }
}

/// `POST /users/{name}/disable|enable|signout|unlock|reset-mfa`.
async fn act(
    State(state): State<Arc<AppState>>,
    Acting(admin): Acting,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if action == "disable" {
        not_self(&admin.username, &name, "disable")?;
    }
    let (target, verb) = (name.clone(), action.clone());
    let done = state
        .blocking(move |s| {
            let a = &s.accounts;
            match verb.as_str() {
                "disable" => a.set_disabled(&target, true).map(|_| "disabled"),
                "enable" => a.set_disabled(&target, false).map(|_| "enabled"),
                "signout" => a.sign_out_everywhere(&target).map(|_| "signed out everywhere"),
                "unlock" => a.unlock(&target).map(|_| "unlocked"),
                "reset-mfa" => a.reset_mfa(&target).map(|_| "two-step sign-in reset"),
                _ => Ok(""),
            }
        })
        .await?;
    if done.is_empty() {
        return Err(ApiError::NotFound(format!(
            "There is no action {action:?}: use disable, enable, signout, unlock or reset-mfa"
        )));
    }
    tracing::info!(target: "fleetd::audit", user = %name, by = %admin.username, "user {done}");
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Acting(admin): Acting,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    not_self(&admin.username, &name, "remove")?;
    let target = name.clone();
    state.blocking(move |s| s.accounts.remove(&target)).await?;
    tracing::info!(target: "fleetd::audit", user = %name, by = %admin.username, "user removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn password(
    State(state): State<Arc<AppState>>,
    Acting(admin): Acting,
    Path(name): Path<String>,
    Valid(req): Valid<NewPassword>,
) -> ApiResult<StatusCode> {
    let target = name.clone();
    state.blocking(move |s| s.accounts.set_password(&target, &req.password)).await?;
    tracing::info!(target: "fleetd::audit", user = %name, by = %admin.username, "user given a new password");
    Ok(StatusCode::NO_CONTENT)
}

//! `GET /api/health`: `{"ok":true}` while every supervised part runs, else 503 naming the part
//! that is down. No sign-in. It must never say more than that: no counts of devices or users,
//! no addresses, no versions, no secrets.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::supervise::Health;

/// The health route, with its own state so the shared `AppState` stays as it is.
pub fn routes(health: Health) -> Router {
    // The same response headers as every other route (HSTS, nosniff, no caching, …).
    Router::new()
        .route("/api/health", get(move || answer(health.clone())))
        .layer(axum::middleware::map_response(super::security_headers))
}

async fn answer(health: Health) -> (StatusCode, Json<serde_json::Value>) {
    match health.first_down() {
        None => (StatusCode::OK, Json(json!({ "ok": true }))),
        Some(part) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ok": false, "down": part }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_is_503_naming_the_part_that_is_down_and_200_before() {
        let health = Health::default();
        let (status, Json(body)) = answer(health.clone()).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "ok": true })));
        health.down("signalling hub");
        let (status, Json(body)) = answer(health).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({ "ok": false, "down": "signalling hub" }));
    }
}

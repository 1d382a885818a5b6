//! The audit trail over HTTPS: `GET /api/audit/export?from=YYYY-MM-DD&to=YYYY-MM-DD&format=csv|json`
//! (the export is itself recorded). Never serves anything but records. The "where" of each
//! record a request makes is [`super::extract::Place`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::allowed::{Acting, need, require};
use super::error::{ApiError, ApiResult, Fault};
use super::extract::Place;
use crate::audit::export::{DAY_MS, Format, parse_date, render, rfc3339_ms};
use crate::audit::{self, Entry};

/// The audit routes, for those who may read the trail (auditors).
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/audit/export", get(export))
        .route_layer(require::<need::ReadAudit>(state))
}

#[derive(Debug, serde::Deserialize)]
struct ExportQuery {
    from: String,
    to: String,
    format: Option<Format>,
}

async fn export(
    State(state): State<Arc<AppState>>,
    Acting(user): Acting,
    Place(place): Place,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|_| {
        ApiError::Invalid("Ask for ?from=YYYY-MM-DD&to=YYYY-MM-DD&format=csv or json.".into())
    })?;
    let from = parse_date(&q.from).map_err(ApiError::Invalid)?;
    let to = parse_date(&q.to).map_err(ApiError::Invalid)? + DAY_MS;
    if to <= from {
        return Err(ApiError::Invalid("The day in `to` is before the day in `from`.".into()));
    }
    let format = q.format.unwrap_or(Format::Csv);
    let records = state.blocking(move |s| {
        s.audit.between(from, to).map_err(|e| ApiError::fault(Fault::Other, &e))
    });
    let records = records.await?;
    let range = format!("{}..{}", rfc3339_ms(from), rfc3339_ms(to));
    let detail = format!("{} records as {}", records.len(), format.as_str());
    let entry = Entry::new(&audit::user(&user.username), audit::EXPORT, &range, &place);
    state.audit.record(entry.detail(&detail)).await;
    Ok(([(header::CONTENT_TYPE, format.content_type())], render(&records, format)).into_response())
}

//! The HTTPS front: the clinician console and the fleet admin console (`/admin`; static files
//! embedded in the binary), the sign-in API, the device API ([`crate::device_api`]), the fleet
//! admin API ([`crate::fleet_api`]), and `/ws`, which [`crate::ws`] turns into a
//! console connection. Owns the security headers, the session cookie, and how JSON bodies are
//! read (`telekiosk_protocol::decode`: size, then JSON, then field limits). Never logs
//! passwords, cookies or tokens.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use serde::de::DeserializeOwned;
use telekiosk_protocol::Validate;
use telekiosk_protocol::api::{ApiError, LoginRequest, Me};
use tokio::sync::Semaphore;

use crate::accounts::{Accounts, AccountsError, User};
use crate::driver::Driver;
use crate::fleet::Fleet;
use crate::hub::HubHandle;
use crate::registry::Registry;
use crate::revocation::Watcher;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tk_session";
/// Argon2 verifications allowed at once: each takes ~19 MiB and tens of milliseconds, so an
/// unbounded number would let a flood of sign-ins exhaust memory.
const SIGN_IN_SLOTS: usize = 4;
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const APP_CSS: &str = include_str!("web/app.css");
const ADMIN_HTML: &str = include_str!("web/admin.html");
const ADMIN_JS: &str = include_str!("web/admin.js");
const ADMIN_CSS: &str = include_str!("web/admin.css");

/// Why the web server stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The listening socket failed.
    #[error("the HTTPS server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Users and sessions.
    pub accounts: Arc<Accounts>,
    /// Where console connections and their messages go.
    pub hub: HubHandle,
    /// Devices and enrolment.
    pub registry: Arc<Registry>,
    /// Told after a revocation, so the CRL and broker follow at once.
    pub revocation: Watcher,
    /// Config, rollouts, state and commands.
    pub fleet: Arc<Fleet>,
    /// Told after an admin change, so it is sent at once.
    pub driver: Driver,
    sign_in_slots: Semaphore,
}

impl AppState {
    /// State for the web routes.
    pub fn new(
        accounts: Arc<Accounts>,
        hub: HubHandle,
        registry: Arc<Registry>,
        revocation: Watcher,
        fleet: Arc<Fleet>,
        driver: Driver,
    ) -> Arc<Self> {
        let sign_in_slots = Semaphore::new(SIGN_IN_SLOTS);
        Arc::new(Self { accounts, hub, registry, revocation, fleet, driver, sign_in_slots })
    }

    /// The signed-in user and session token behind a request's cookie, if the session is live.
    pub fn user(&self, jar: &CookieJar) -> Option<(User, String)> {
        let token = jar.get(SESSION_COOKIE)?.value().to_string();
        let user = self.accounts.session(&token, Instant::now())?;
        Some((user, token))
    }
}

/// All routes, with security headers on every response.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/admin", get(|| async { asset("text/html; charset=utf-8", ADMIN_HTML) }))
        .route("/admin.js", get(|| async { asset("text/javascript; charset=utf-8", ADMIN_JS) }))
        .route("/admin.css", get(|| async { asset("text/css; charset=utf-8", ADMIN_CSS) }))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .merge(crate::device_api::routes())
        .merge(crate::fleet_api::routes())
        .route("/ws", get(crate::ws::upgrade))
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "Not found.") })
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Serves `app` over TLS on an already bound `listener` until `handle` shuts it down.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    handle: axum_server::Handle,
) -> Result<(), WebError> {
    listener.set_nonblocking(true)?;
    let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls))
        .handshake_timeout(Duration::from_secs(10))
        .acceptor(NoDelayAcceptor::new());
    axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A JSON error body: `{"error": "..."}` ([`ApiError`]).
pub fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(ApiError { error: message.into() })).into_response()
}

/// A refused request: the response to send instead (boxed, as a `Response` is large).
#[derive(Debug)]
pub struct Refused(Box<Response>);

impl From<Response> for Refused {
    fn from(res: Response) -> Self {
        Self(Box::new(res))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// Reads a JSON request body with `telekiosk_protocol::decode`. Refuses a body that is not
/// declared as JSON (so a cross-site form cannot post one) or that breaks the message's
/// limits; `usage` says what to send instead.
pub fn json_body<T: DeserializeOwned + Validate>(
    headers: &HeaderMap,
    body: &Bytes,
    usage: &str,
) -> Result<T, Refused> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(|t| t.starts_with("application/json")) {
        let message = format!("Send {usage} as JSON (Content-Type: application/json).");
        return Err(api_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message).into());
    }
    telekiosk_protocol::decode(body).map_err(|e| {
        api_error(StatusCode::BAD_REQUEST, &format!("Send {usage} as JSON: {e}.")).into()
    })
}

fn me_body(user: &User) -> Json<Me> {
    Json(Me { username: user.username.clone(), role: user.role.as_str().into() })
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    let permissions = "camera=(self), microphone=(self), geolocation=()";
    h.insert("permissions-policy", HeaderValue::from_static(permissions));
    res
}

async fn login(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: LoginRequest = match json_body(&headers, &body, "{\"username\", \"password\"}") {
        Ok(req) => req,
        Err(refused) => return refused.into_response(),
    };
    let shown: String = req.username.chars().filter(|c| !c.is_control()).take(64).collect();
    let Ok(_slot) = state.sign_in_slots.acquire().await else {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "fleetd is shutting down.");
    };
    let accounts = state.accounts.clone();
    let result = tokio::task::spawn_blocking(move || {
        accounts.sign_in(&req.username, &req.password, Instant::now())
    })
    .await;
    match result {
        Ok(Ok((token, user))) => {
            tracing::info!(target: "fleetd::audit", user = %user.username, "signed in");
            let cookie = Cookie::build((SESSION_COOKIE, token))
                .http_only(true)
                .secure(true)
                .same_site(SameSite::Strict)
                .path("/");
            (jar.add(cookie), me_body(&user)).into_response()
        }
        Ok(Err(AccountsError::WrongCredentials)) => {
            tracing::warn!(target: "fleetd::audit", user = %shown, "sign-in refused: wrong user name or password");
            api_error(StatusCode::UNAUTHORIZED, "Wrong user name or password.")
        }
        Ok(Err(e)) => {
            tracing::error!(user = %shown, "sign-in failed: {e}");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "Signing in is not possible right now.")
        }
        Err(e) => {
            tracing::error!(user = %shown, "sign-in task failed: {e}");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "Signing in is not possible right now.")
        }
    }
}

async fn logout(State(state): State<Arc<AppState>>, jar: CookieJar) -> Response {
    if let Some((user, token)) = state.user(&jar) {
        state.accounts.sign_out(&token);
        tracing::info!(target: "fleetd::audit", user = %user.username, "signed out");
    }
    let expired = Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/");
    (jar.remove(expired), StatusCode::NO_CONTENT).into_response()
}

async fn me(State(state): State<Arc<AppState>>, jar: CookieJar) -> Response {
    match state.user(&jar) {
        Some((user, _)) => me_body(&user).into_response(),
        None => api_error(StatusCode::UNAUTHORIZED, "Not signed in."),
    }
}

//! The HTTPS front: the clinician console and the fleet admin console (`/admin`; static files
//! from `assets/`, embedded in the binary), and the API, one file per resource: sign-in
//! ([`session`]), kiosk enrolment ([`enrol`]), administration ([`admin`], every route behind one
//! role check) and `/ws` ([`console_ws`]). Requests are read by the extractors in [`extract`]
//! and refused with [`error::ApiError`]. Owns the state handlers share, the security headers and
//! [`AppState::blocking`], through which every SQLite or CA call goes. Never logs passwords,
//! cookies or tokens.

mod admin;
mod console_ws;
mod enrol;
mod error;
mod extract;
mod session;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::sync::Semaphore;

use crate::accounts::Accounts;
use crate::fleet::Fleet;
use crate::fleet::driver::Driver;
use crate::registry::Registry;
use crate::registry::revocation::Watcher;
use crate::signalling::hub::HubHandle;
use error::ApiError;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tk_session";
/// Argon2 verifications allowed at once: each takes ~19 MiB and tens of milliseconds, so an
/// unbounded number would let a flood of sign-ins exhaust memory.
const SIGN_IN_SLOTS: usize = 4;
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ADMIN_HTML: &str = include_str!("assets/admin.html");
const ADMIN_JS: &str = include_str!("assets/admin.js");
const ADMIN_CSS: &str = include_str!("assets/admin.css");

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

    /// Runs `f` (SQLite, signing, password hashing: anything that blocks) on the blocking pool.
    /// Every such call from a handler goes through here.
    pub async fn blocking<T, E>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Send + 'static,
        ApiError: From<E>,
    {
        let state = self.clone();
        Ok(tokio::task::spawn_blocking(move || f(&state)).await??)
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
        .merge(session::routes())
        .merge(enrol::routes())
        .merge(admin::routes(state.clone()))
        .route("/ws", get(console_ws::upgrade))
        .fallback(|| async { ApiError::NotFound("Not found.".into()) })
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

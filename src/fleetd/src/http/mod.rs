//! The HTTPS front: the clinician console (`/`) and the fleet admin console (`/admin`), and the
//! API, one file per resource: sign-in ([`session`], and through an identity provider:
//! [`oidc`]), kiosk enrolment ([`enrol`]) and certificate renewal ([`renew`], over mutual TLS: [`peer`]),
//! administration ([`admin`], every route group under `/api/admin` behind one permission check
//! from [`allowed`]), the audit export and the "where" of each audit record ([`audit`]) and
//! `/ws` ([`console_ws`]). The consoles are static files from `assets/`, embedded in the binary and
//! served from one table ([`ASSETS`]): HTML, CSS and plain JavaScript ES modules, no build step
//! (`common.js` is what both consoles share; `wire.js` the JSDoc types of what they exchange with
//! fleetd; `app.js`/`call.js`/`help.js`/`visit-codes.js` the clinician's (`call-e2ee.js`,
//! `e2ee*.js` its end-to-end encryption, `e2ee-worker.js` the Worker frames go through), `admin*.js` the
//! admin's). Visit codes are [`visit_codes`]. Requests are read by
//! the extractors in [`extract`] and refused with [`error::ApiError`]. Owns the state handlers
//! share, the security headers (a strict CSP: scripts only from here) and
//! [`AppState::blocking`], through which every SQLite or CA call goes. Never logs passwords,
//! cookies or tokens.

mod admin;
mod allowed;
mod audit;
mod bundles;
mod console_rate;
mod console_ws;
mod enrol;
mod error;
mod extract;
pub mod health;
mod limits;
mod oidc;
mod peer;
mod renew;
mod session;
mod visit_codes;
mod ws_slots;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::sync::Semaphore;

use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::fleet::Fleet;
use crate::fleet::driver::Driver;
use crate::registry::Registry;
use crate::registry::revocation::Watcher;
use crate::signalling::hub::HubHandle;
use error::ApiError;

/// Name of the session cookie. `__Host-`: the browser keeps it only if it is Secure, has no
/// Domain and has Path=/, so no other host (a sibling subdomain) can set or shadow it.
pub const SESSION_COOKIE: &str = "__Host-tk_session";
/// Browsers must only ever reach fleetd over HTTPS (two years; no subdomains: fleetd does not
/// own its parent domain).
const HSTS: &str = "max-age=63072000";
/// Argon2 verifications allowed at once: each takes ~19 MiB and tens of milliseconds, so an
/// unbounded number would let a flood of sign-ins exhaust memory.
const SIGN_IN_SLOTS: usize = 4;
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The consoles' files, embedded in the binary: the path each is served at, its type, its
/// content. The scripts are ES modules that import one another by these paths; `wire.js` holds
/// only JSDoc types, served so that editors and `@ts-check` can follow the imports.
const ASSETS: [(&str, &str, &str); 21] = [
    ("/", HTML, include_str!("assets/index.html")),
    ("/app.css", CSS, include_str!("assets/app.css")),
    ("/app.js", JS, include_str!("assets/app.js")),
    ("/call.js", JS, include_str!("assets/call.js")),
    ("/call-e2ee.js", JS, include_str!("assets/call-e2ee.js")),
    ("/e2ee.js", JS, include_str!("assets/e2ee.js")),
    ("/e2ee-schedule.js", JS, include_str!("assets/e2ee-schedule.js")),
    ("/e2ee-worker.js", JS, include_str!("assets/e2ee-worker.js")),
    ("/help.js", JS, include_str!("assets/help.js")),
    ("/visit-codes.js", JS, include_str!("assets/visit-codes.js")),
    ("/common.js", JS, include_str!("assets/common.js")),
    ("/wire.js", JS, include_str!("assets/wire.js")),
    ("/admin", HTML, include_str!("assets/admin.html")),
    ("/admin.css", CSS, include_str!("assets/admin.css")),
    ("/admin.js", JS, include_str!("assets/admin.js")),
    ("/admin-format.js", JS, include_str!("assets/admin-format.js")),
    ("/admin-fleet.js", JS, include_str!("assets/admin-fleet.js")),
    ("/admin-probe.js", JS, include_str!("assets/admin-probe.js")),
    ("/admin-config.js", JS, include_str!("assets/admin-config.js")),
    ("/admin-rollouts.js", JS, include_str!("assets/admin-rollouts.js")),
    ("/admin-users.js", JS, include_str!("assets/admin-users.js")),
];

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
    /// The audit trail.
    pub audit: Audit,
    sign_in_slots: Semaphore,
    ws_slots: Arc<ws_slots::WsSlots>,
    enrol_throttle: std::sync::Mutex<crate::accounts::throttle::ByAddress>,
    /// Sign-in through an identity provider, when configured ([`AppState::set_oidc`]).
    oidc: std::sync::OnceLock<Arc<crate::oidc::provider::Provider>>,
    /// Visit codes ([`AppState::set_visit_codes`], at start-up).
    visit_codes: std::sync::OnceLock<Arc<crate::visit_codes::VisitCodes>>,
    /// Where OS bundles are kept ([`AppState::set_bundles_dir`], at start-up).
    bundles_dir: std::sync::OnceLock<std::path::PathBuf>,
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
        audit: Audit,
    ) -> Arc<Self> {
        let sign_in_slots = Semaphore::new(SIGN_IN_SLOTS);
        let ws_slots = ws_slots::WsSlots::new(ws_slots::PER_SESSION);
        Arc::new(Self {
            accounts,
            hub,
            registry,
            revocation,
            fleet,
            driver,
            audit,
            sign_in_slots,
            ws_slots,
            enrol_throttle: std::sync::Mutex::new(crate::accounts::throttle::ByAddress::new(
                crate::accounts::throttle::Policy::ENROL,
            )),
            oidc: std::sync::OnceLock::new(),
            visit_codes: std::sync::OnceLock::new(),
            bundles_dir: std::sync::OnceLock::new(),
        })
    }

    /// Serves visit codes from `codes` (set once, at start-up; the hub shares them).
    pub fn set_visit_codes(&self, codes: Arc<crate::visit_codes::VisitCodes>) {
        let _ = self.visit_codes.set(codes);
    }

    /// Serves OS bundles from `dir` (the data directory's `bundles/`).
    pub fn set_bundles_dir(&self, dir: std::path::PathBuf) {
        let _ = self.bundles_dir.set(dir);
    }

    /// Where OS bundles are kept; `None` before start-up set it.
    fn bundles_dir(&self) -> Option<std::path::PathBuf> {
        self.bundles_dir.get().cloned()
    }

    /// The visit codes; a server started without them refuses their routes.
    fn visit_codes(&self) -> Result<&Arc<crate::visit_codes::VisitCodes>, ApiError> {
        self.visit_codes
            .get()
            .ok_or_else(|| ApiError::fault(error::Fault::Other, &"visit codes are not set up"))
    }

    /// Offers sign-in through `provider` (set once, at start-up).
    pub fn set_oidc(&self, provider: Arc<crate::oidc::provider::Provider>) {
        let _ = self.oidc.set(provider);
    }

    /// The identity provider, if sign-in through one is offered.
    fn oidc(&self) -> Option<&Arc<crate::oidc::provider::Provider>> {
        self.oidc.get()
    }

    /// Failed enrolment attempts per source address (see `enrol`).
    fn enrol_throttle(&self) -> std::sync::MutexGuard<'_, crate::accounts::throttle::ByAddress> {
        self.enrol_throttle.lock().unwrap_or_else(|e| e.into_inner())
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
    let assets = ASSETS.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || async move { asset(content_type, body) }))
    });
    assets
        .merge(session::routes())
        .merge(oidc::routes())
        .merge(enrol::routes())
        .merge(renew::routes())
        .merge(bundles::routes())
        .merge(admin::routes(state.clone()))
        .merge(audit::routes(state.clone()))
        .merge(visit_codes::routes(state.clone()))
        .route("/ws", get(console_ws::upgrade))
        .fallback(|| async { ApiError::NotFound("Not found.".into()) })
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn(same_site_only))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Serves `app` over TLS on an already bound `listener` until `handle` shuts it down. `tls` may
/// be reloaded meanwhile (certificate renewal): new connections get the new certificate.
pub async fn serve(
    listener: TcpListener,
    tls: RustlsConfig,
    app: Router,
    handle: axum_server::Handle,
) -> Result<(), WebError> {
    listener.set_nonblocking(true)?;
    let acceptor = peer::PeerAcceptor::new(
        RustlsAcceptor::new(tls)
            .handshake_timeout(Duration::from_secs(10))
            .acceptor(limits::CappedAcceptor::new(limits::MAX_CONNECTIONS)),
    );
    let mut server = axum_server::from_tcp(listener);
    limits::configure(server.http_builder());
    server
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await?;
    Ok(())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(crate) async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::STRICT_TRANSPORT_SECURITY, HSTS),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    let permissions = "camera=(self), microphone=(self), geolocation=()";
    h.insert("permissions-policy", HeaderValue::from_static(permissions));
    res
}

/// Refuses a state-changing request (POST, PUT, PATCH, DELETE) from another site: one that
/// carries the session cookie must say it comes from fleetd's own pages (`Origin` equal to
/// fleetd's origin, or `Sec-Fetch-Site: same-origin`); any other must not say it comes from
/// elsewhere. Browsers send at least one of the two on every such request, so a page of
/// another site (a sibling subdomain too, which `SameSite` lets through) is refused, while
/// kiosks and scripts that are not browsers, and carry no cookie, are not.
async fn same_site_only(req: axum::extract::Request, next: middleware::Next) -> Response {
    use axum::http::Method;
    let changes =
        matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    // HTTP/2 carries the host as the `:authority` pseudo-header, which is the URI's authority.
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    if changes && !same_site(req.headers(), authority.as_deref()) {
        tracing::warn!(target: "fleetd::audit", path = %req.uri().path(), "state-changing request from another site refused");
        return ApiError::CrossSiteRequest.into_response();
    }
    next.run(req).await
}

/// See [`same_site_only`].
fn same_site(headers: &axum::http::HeaderMap, authority: Option<&str>) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST.as_str()).or(authority);
    let origin_ok =
        text(header::ORIGIN.as_str()).map(|o| host.is_some_and(|h| o == format!("https://{h}")));
    let fetch_ok = text("sec-fetch-site").map(|s| s == "same-origin");
    let has_cookie = text(header::COOKIE.as_str()).is_some_and(|c| c.contains(SESSION_COOKIE));
    match (origin_ok, fetch_ok) {
        (Some(false), _) | (_, Some(false)) => false,
        (Some(true), _) | (_, Some(true)) => true,
        (None, None) => !has_cookie,
    }
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// Every file of `assets/` is served, and every module a script imports is one of them.
    #[test]
    fn every_asset_is_served_and_every_import_resolves() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/assets");
        let served = |file: &str| {
            let path = match file {
                "index.html" => "/".to_string(),
                "admin.html" => "/admin".to_string(),
                f => format!("/{f}"),
            };
            ASSETS.iter().any(|(p, ..)| *p == path)
        };
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(served(&name), "assets/{name} is not in ASSETS");
        }
        for (path, _, body) in ASSETS.iter().filter(|(p, ..)| p.ends_with(".js")) {
            assert!(body.starts_with("// @ts-check\n"), "{path} does not start with // @ts-check");
            // `from './x.js'` and `import('./x.js')` (a JSDoc type) alike.
            for import in body.split("'./").skip(1) {
                let module = &import[..import.find('\'').unwrap()];
                assert!(served(module), "{path} imports ./{module}, which is not served");
            }
        }
    }
}

#[cfg(test)]
mod same_site_tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::same_site as same_site_of;

    fn same_site(h: &HeaderMap) -> bool {
        same_site_of(h, None)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("fleet.example:8443"));
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_request_from_another_site_is_refused_and_one_from_fleetds_pages_is_not() {
        let cookie = ("cookie", "__Host-tk_session=abc");
        assert!(same_site(&headers(&[("origin", "https://fleet.example:8443"), cookie])));
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin"), cookie])));
        assert!(!same_site(&headers(&[("origin", "https://evil.example"), cookie])));
        assert!(!same_site(&headers(&[("origin", "https://sub.fleet.example:8443")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "same-site"), cookie])));
        assert!(!same_site(&headers(&[
            ("origin", "https://fleet.example:8443"),
            ("sec-fetch-site", "cross-site")
        ])));
        // With a session cookie, saying nothing is not enough; without one (a kiosk) it is.
        assert!(!same_site(&headers(&[cookie])));
        assert!(same_site(&headers(&[])));
    }

    #[test]
    fn over_http2_the_host_is_the_authority() {
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_static("https://fleet.example:8443"));
        assert!(same_site_of(&h, Some("fleet.example:8443")));
        assert!(!same_site_of(&h, Some("other.example:8443")));
        assert!(!same_site_of(&h, None));
    }
}

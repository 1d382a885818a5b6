//! Sign-in through the identity provider (OpenID Connect), for both consoles: `GET /api/oidc`
//! (public: is it offered, and the button's words), `GET /api/oidc/start?console=…` (303 to the
//! provider, with a short-lived `__Host-tk_oidc` cookie binding the sign-in to this browser) and
//! `GET /api/oidc/callback` (the provider sends the browser back with `code` and `state`, or
//! `error`): the code is exchanged, the ID token verified, its claims mapped, the account
//! created or updated and a session opened with the usual cookie. Every refusal sends the
//! browser back to its console's sign-in page with `?signin_error=CODE`, which the page puts in
//! words. Every outcome is audited, with the `amr` methods but never a code or a token.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use telekiosk_protocol::api::OidcInfo;

use super::AppState;
use super::error::ApiError;
use super::extract::Place;
use super::session::cookie as session_cookie;
use crate::accounts::AccountsError;
use crate::accounts::oidc_claims::map_claims;
use crate::audit::{self, Entry};
use crate::oidc::issuer_host;
use crate::oidc::pending::{Console, PENDING_FOR};
use crate::store::StoreError;

/// The cookie that ties a sign-in sent to the provider to the browser that started it.
/// `__Host-`: HTTPS only, this host only, path `/`. SameSite=Lax: the provider sends the browser
/// back with a top-level GET from its own site, which Strict would strip.
pub const OIDC_COOKIE: &str = "__Host-tk_oidc";
/// What the audit records of these sign-ins say was signed in to.
const WHAT: &str = "console via identity provider";

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/oidc", get(info))
        .route("/api/oidc/start", get(start))
        .route("/api/oidc/callback", get(callback))
}

async fn info(State(state): State<Arc<AppState>>) -> Json<OidcInfo> {
    Json(match state.oidc() {
        Some(p) => OidcInfo { enabled: true, label: p.settings().label.clone() },
        None => OidcInfo { enabled: false, label: String::new() },
    })
}

fn oidc_cookie(value: String) -> Cookie<'static> {
    Cookie::build((OIDC_COOKIE, value))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(time::Duration::seconds(PENDING_FOR.as_secs() as i64))
        .build()
}

/// Back to `console`'s sign-in page, which says what `code` means.
fn back(console: Console, code: &str) -> Response {
    Redirect::to(&format!("{}?signin_error={code}", console.path())).into_response()
}

/// The host (and port) the browser reached fleetd at, if it is a plain host name or address.
fn host_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.or_else(|| uri.authority().map(|a| a.as_str()))?;
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!host.is_empty() && host.len() <= 255 && host.chars().all(ok)).then(|| host.to_string())
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    console: Option<String>,
}

async fn start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<StartQuery>,
    jar: CookieJar,
) -> Response {
    let console = q.console.as_deref().and_then(Console::parse).unwrap_or(Console::Clinician);
    let Some(provider) = state.oidc() else { return back(console, "off") };
    let Some(host) = host_of(&headers, &uri) else { return back(console, "bad_host") };
    let redirect = format!("https://{host}/api/oidc/callback");
    match provider.start(console, &redirect, Instant::now()).await {
        Ok(started) => {
            let jar = jar.add(oidc_cookie(started.browser));
            (jar, Redirect::to(&started.authorize_url)).into_response()
        }
        Err(e) => {
            tracing::warn!("sign-in through the identity provider not started: {e}");
            back(console, e.code())
        }
    }
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `amr` values fit for the audit trail: short method names only.
fn amr_text(amr: &[String]) -> String {
    let fit = |m: &&String| {
        !m.is_empty() && m.len() <= 16 && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let shown: Vec<&str> = amr.iter().filter(fit).take(8).map(String::as_str).collect();
    if shown.is_empty() { "-".into() } else { shown.join(",") }
}

async fn callback(
    State(state): State<Arc<AppState>>,
    Place(place): Place,
    Query(q): Query<CallbackQuery>,
    jar: CookieJar,
) -> Response {
    let Some(provider) = state.oidc() else { return back(Console::Clinician, "off") };
    let host = issuer_host(&provider.settings().issuer).to_string();
    let browser = jar.get(OIDC_COOKIE).map(|c| c.value().to_string());
    let jar = jar.remove(oidc_cookie(String::new()));
    let refuse = async |jar: CookieJar, console: Console, who: &str, code: &str| {
        let entry = Entry::new(&audit::user(who), audit::SIGN_IN, WHAT, &place)
            .refused(code)
            .detail(&format!("idp={host}"));
        state.audit.record(entry).await;
        (jar, back(console, code)).into_response()
    };
    let unknown = "(identity provider sign-in)";
    let taken = provider.take(q.state.as_deref().unwrap_or(""), browser.as_deref(), Instant::now());
    let login = match taken {
        Ok(login) => login,
        Err(e) => return refuse(jar, Console::Clinician, unknown, e.code()).await,
    };
    let console = login.console;
    if let Some(error) = q.error {
        let error: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
        tracing::info!(error = %error, "the identity provider sent the browser back with an error");
        return refuse(jar, console, unknown, "provider_refused").await;
    }
    let Some(code) = q.code else { return refuse(jar, console, unknown, "invalid_token").await };
    let claims = match provider.finish(&login, code).await {
        Ok(claims) => claims,
        Err(e) => {
            tracing::warn!("sign-in through the identity provider refused: {e}");
            return refuse(jar, console, unknown, e.code()).await;
        }
    };
    let settings = provider.settings();
    let mapped = match map_claims(&claims, &settings.claims, settings.require_mfa) {
        Ok(mapped) => mapped,
        Err(refusal) => return refuse(jar, console, unknown, refusal.code()).await,
    };
    let (issuer, m) = (settings.issuer.clone(), mapped.clone());
    let signed = state
        .blocking(move |s| Ok::<_, ApiError>(s.accounts.sign_in_idp(&issuer, &m, Instant::now())))
        .await;
    let name = mapped.username.clone();
    let signed = match signed {
        Ok(Ok(signed)) => signed,
        Ok(Err(AccountsError::Disabled)) => return refuse(jar, console, &name, "disabled").await,
        Ok(Err(AccountsError::Store(StoreError::UserExists(_)))) => {
            return refuse(jar, console, &name, "name_taken").await;
        }
        Ok(Err(e)) => {
            tracing::error!("sign-in through the identity provider failed: {e}");
            return refuse(jar, console, &name, "failed").await;
        }
        Err(e) => {
            tracing::error!("sign-in through the identity provider failed: {e:?}");
            return refuse(jar, console, &name, "failed").await;
        }
    };
    let user = signed.user.username.clone();
    let actor = audit::user(&user);
    if signed.created {
        let object =
            format!("{user} added from identity provider {host} as {}", mapped.role.as_str());
        let entry = Entry::new(&actor, audit::ACCOUNT, &object, &place)
            .detail(&format!("clinics [{}]", signed.user.clinics.join(", ")));
        state.audit.record(entry).await;
    }
    for change in &signed.changed {
        let object = format!("{user} changed by identity provider {host}");
        state
            .audit
            .record(Entry::new(&actor, audit::ACCOUNT, &object, &place).detail(change))
            .await;
    }
    let mfa = if mapped.mfa { "yes" } else { "no" };
    let detail = format!("idp={host} mfa={mfa} amr={}", amr_text(&mapped.amr));
    state.audit.record(Entry::new(&actor, audit::SIGN_IN, WHAT, &place).detail(&detail)).await;
    let jar = jar.add(session_cookie(signed.token));
    (jar, Redirect::to(console.path())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_method_names_of_amr_reach_the_audit_trail() {
        let amr = |v: &[&str]| amr_text(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(amr(&["pwd", "otp"]), "pwd,otp");
        assert_eq!(amr(&[]), "-");
        assert_eq!(amr(&["pwd", "a b", "x=1", &"y".repeat(17)]), "pwd");
    }

    #[test]
    fn the_callback_url_is_built_only_from_a_plain_host() {
        let with = |h: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, h.parse().unwrap());
            host_of(&headers, &Uri::from_static("/api/oidc/start"))
        };
        assert_eq!(with("fleet.example:8443").as_deref(), Some("fleet.example:8443"));
        assert_eq!(with("[::1]:8443").as_deref(), Some("[::1]:8443"));
        assert_eq!(with("evil.example/x?"), None);
        assert_eq!(with("a@b"), None);
    }
}

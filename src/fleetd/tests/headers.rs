//! What every HTTPS response carries and what the request checks refuse, over real HTTPS (review
//! "not tested" 4 and 5): the security headers on successes, static files and every kind of
//! refusal (401, 403, 404, 405, 413, 415, 429); 415 for a body not declared as JSON, 413 above
//! 16 KiB, a cross-site POST refused even without a body; and a console WebSocket upgrade from a
//! page of another origin refused while one from fleetd's own page is accepted.

mod common;

use std::sync::Arc;

use common::{add_user, http, sign_in, start, stop, tls};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The headers every response must carry, with the start of their expected value.
const SECURITY_HEADERS: [(&str, &str); 8] = [
    ("strict-transport-security", "max-age="),
    ("content-security-policy", "default-src 'self'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(self)"),
];

/// Panics naming `what` and the missing header if `res` lacks one of [`SECURITY_HEADERS`].
fn assert_secured(what: &str, res: &reqwest::Response) {
    for (name, start) in SECURITY_HEADERS {
        let value = res.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        assert!(
            value.as_deref().is_some_and(|v| v.starts_with(start)),
            "{what} ({}): header {name} is {value:?}",
            res.status()
        );
    }
}

/// A client that sends no `Origin` (as a script or a kiosk).
fn bare(f: &common::Fleetd) -> reqwest::Client {
    reqwest::Client::builder().use_preconfigured_tls(tls(&f.ca, None)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_and_every_refusal_carries_the_security_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "carol", "carol-password", "clinician").await;
    let f = start(&dir).await;
    let cookie = sign_in(&f, "carol", "carol-password").await;
    let client = http(&f);
    let with_cookie = |req: reqwest::RequestBuilder| req.header("cookie", cookie.as_str());

    let cases: Vec<(&str, u16, reqwest::RequestBuilder)> = vec![
        ("the clinician console", 200, client.get(f.url("/"))),
        ("a script", 200, client.get(f.url("/app.js"))),
        ("a style sheet", 200, client.get(f.url("/admin.css"))),
        ("health", 200, client.get(f.url("/api/health"))),
        ("me", 200, with_cookie(client.get(f.url("/api/me")))),
        ("me without a session", 401, client.get(f.url("/api/me"))),
        ("an admin route for a clinician", 403, with_cookie(client.get(f.url("/api/admin/users")))),
        ("no such page", 404, client.get(f.url("/no/such/page"))),
        ("a wrong method", 405, client.get(f.url("/api/login"))),
        (
            "a body over 16 KiB",
            413,
            client
                .post(f.url("/api/login"))
                .header("content-type", "application/json")
                .body(format!(r#"{{"username":"{}","password":"x"}}"#, "a".repeat(17 * 1024))),
        ),
        (
            "a body not declared as JSON",
            415,
            client
                .post(f.url("/api/login"))
                .header("content-type", "text/plain")
                .body(r#"{"username":"carol","password":"carol-password"}"#),
        ),
    ];
    for (what, status, req) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{what}");
        assert_secured(what, &res);
    }

    // 429: bad enrolment codes from one address until fleetd throttles them.
    let csr = common::device_key().1;
    let body = serde_json::json!({ "token": "2345-6789", "csr_pem": csr });
    let mut throttled = None;
    for _ in 0..50 {
        let res = bare(&f).post(f.url("/api/enrol")).json(&body).send().await.unwrap();
        assert_secured("a bad enrolment code", &res);
        if res.status() == 429 {
            throttled = Some(res);
            break;
        }
    }
    let throttled = throttled.expect("50 bad enrolment codes were never throttled");
    assert_secured("a throttled enrolment", &throttled);
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_is_refused_even_without_a_body_and_leaves_the_session_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "dave", "dave-password", "clinician").await;
    let f = start(&dir).await;
    let cookie = sign_in(&f, "dave", "dave-password").await;
    let logout = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut req = bare(&f).post(f.url("/api/logout")).header("cookie", cookie.as_str());
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (None, Some("cross-site")),
        (None, Some("same-site")),
        // With the session cookie, saying nothing of where it comes from is not enough.
        (None, None),
    ] {
        let res = logout(origin, site).await.unwrap();
        assert_eq!(res.status(), 403, "a bodiless logout from {origin:?} / {site:?}");
        assert_secured("a cross-site POST", &res);
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("another site"), "{body}");
    }
    // None of them ended the session.
    let me = bare(&f).get(f.url("/api/me")).header("cookie", cookie.as_str()).send().await;
    assert_eq!(me.unwrap().status(), 200, "a refused cross-site logout ended the session");
    // From fleetd's own page it goes through.
    let res = logout(Some(&f.url("")), None).await.unwrap();
    assert_eq!(res.status(), 204);
    assert_secured("a logout", &res);
    let me = bare(&f).get(f.url("/api/me")).header("cookie", cookie.as_str()).send().await;
    assert_eq!(me.unwrap().status(), 401, "logout from fleetd's own page did not end the session");
    stop(f).await;
}

/// Opens `/ws` over HTTPS with `cookie`, sending `origin` if given.
async fn console(f: &common::Fleetd, cookie: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let connected =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector)).await;
    connected.map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_socket_from_a_foreign_origin_is_refused_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "erin", "erin-password", "clinician").await;
    let f = start(&dir).await;
    let cookie = sign_in(&f, "erin", "erin-password").await;
    let port = f.web_port;
    let foreign = [
        "https://evil.example".to_string(),
        format!("http://127.0.0.1:{port}"),
        format!("https://127.0.0.1:{}", port + 1),
        format!("https://sub.127.0.0.1:{port}"),
        "null".to_string(),
    ];
    for origin in &foreign {
        match console(&f, &cookie, Some(origin)).await {
            Err(WsError::Http(res)) => assert_eq!(res.status(), 403, "origin {origin}"),
            Err(e) => panic!("the upgrade from {origin} failed otherwise: {e}"),
            Ok(_) => panic!("a console socket from {origin} was accepted"),
        }
    }
    let own = console(&f, &cookie, Some(&f.url(""))).await;
    let own = own.expect("a console socket from fleetd's own page is accepted");
    drop(own);
    let log = f.logged();
    assert!(log.contains("cross_origin"), "the refusals were not audited:\n{log}");
    stop(f).await;
}

//! A virtual touchscreen for demos on machines without a display: the headless screen served
//! on a loopback HTTP port, where a click in the browser is a tap on the kiosk.
//!
//! Loopback only, and kept in memory: each picture is rendered on request and never written to
//! disk. It is a development aid; a kiosk in service has a real panel and never starts it.
//! It never shows a visit: while visit video is on screen it serves a plain "In a visit — not
//! shown here" picture instead (taps still go through, e.g. on End).
//!
//! Other pages in the same browser must not read the screen or tap: every route sits under a
//! random path token (`http://127.0.0.1:PORT/TOKEN/`), and a request whose `Host` is not the
//! loopback address it was sent to is refused (DNS rebinding cannot name the port as its own).
//! The token comes from `TELEKIOSK_VIRTUAL_SCREEN_TOKEN` (so a demo script can print the URL) or
//! is drawn at start and printed once on stdout (`{"event":"virtual_screen","url":…}`),
//! never into the log.

use std::net::SocketAddr;

use axum::extract::{Query, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::headless;

/// Why the virtual screen could not start.
#[derive(Debug, thiserror::Error)]
pub enum VirtualScreenError {
    #[error("the virtual screen only listens on loopback, not {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TELEKIOSK_VIRTUAL_SCREEN_TOKEN must be 16 to 128 letters, digits, '-' or '_'")]
    BadToken,
}

/// The environment variable that may name the path token.
pub const TOKEN_ENV: &str = "TELEKIOSK_VIRTUAL_SCREEN_TOKEN";

/// The path token: from [`TOKEN_ENV`], else 128 random bits in hex.
fn token() -> Result<String, VirtualScreenError> {
    match std::env::var(TOKEN_ENV) {
        Ok(t) if valid_token(&t) => Ok(t),
        Ok(_) => Err(VirtualScreenError::BadToken),
        Err(_) => {
            let mut rng = fastrand::Rng::with_seed(seed());
            Ok(format!("{:016x}{:016x}", rng.u64(..), rng.u64(..)))
        }
    }
}

/// A seed from the kernel's random pool (the token must not be guessable from the clock).
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        bytes = fastrand::u64(..).to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}

fn valid_token(t: &str) -> bool {
    (16..=128).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// True when `host` (the request's `Host` header) names the loopback address we listen on.
fn host_allowed(host: Option<&str>, addr: SocketAddr) -> bool {
    let port = addr.port();
    host.is_some_and(|h| {
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]
            .iter()
            .any(|ok| ok == h)
    })
}

/// Serves the screen on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> Result<(), VirtualScreenError> {
    if !addr.ip().is_loopback() {
        return Err(VirtualScreenError::NotLoopback(addr));
    }
    let token = token()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| VirtualScreenError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = axum::Router::new()
        .route(&format!("/{token}/"), get(|| async { Html(PAGE) }))
        .route(&format!("/{token}/screen.png"), get(screen))
        .route(&format!("/{token}/tap"), post(tap))
        .layer(middleware::from_fn(move |req: Request, next: Next| async move {
            let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
            if host_allowed(host, bound) {
                next.run(req).await
            } else {
                (StatusCode::MISDIRECTED_REQUEST, "this screen answers on loopback only")
                    .into_response()
            }
        }));
    if std::env::var_os(TOKEN_ENV).is_none() {
        let url = format!("http://{bound}/{token}/");
        println!("{}", serde_json::json!({ "event": "virtual_screen", "url": url }));
    }
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("virtual screen stopped: {e}");
    }
    Ok(())
}

async fn screen() -> Response {
    let (tx, rx) = oneshot::channel();
    let posted = slint::invoke_from_event_loop(move || {
        let _ = tx.send(headless::screen_png());
    });
    match (posted, rx.await) {
        (Ok(()), Ok(Ok(png))) => {
            ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png)
                .into_response()
        }
        (_, Ok(Err(headless::CaptureError::Visit { width, height }))) => (
            [(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")],
            placeholder(width, height),
        )
            .into_response(),
        (_, Ok(Err(e))) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the kiosk UI is not running").into_response(),
    }
}

/// The picture served while a visit is on screen: plain, of the screen's size, no pixel of it.
fn placeholder(width: u32, height: u32) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\"><rect width=\"100%\" height=\"100%\" fill=\"#333\"/>\
         <text x=\"50%\" y=\"50%\" fill=\"#ddd\" font-family=\"sans-serif\" font-size=\"{}\" \
         text-anchor=\"middle\">In a visit — not shown here</text></svg>",
        height / 16
    )
}

#[derive(Deserialize)]
struct Tap {
    x: f32,
    y: f32,
}

async fn tap(Query(at): Query<Tap>) -> StatusCode {
    match slint::invoke_from_event_loop(move || headless::tap(at.x, at.y)) {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The page: the screen, refreshed as fast as it renders, and clicks sent as taps.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>telekiosk — virtual touchscreen</title>
<style>
body{margin:0;background:#222;color:#ddd;font:15px system-ui,sans-serif;text-align:center}
img{max-width:100vw;max-height:calc(100vh - 40px);cursor:pointer;box-shadow:0 0 0 12px #000}
p{margin:8px}
</style></head><body>
<p>Virtual touchscreen of the demo kiosk — click to touch.</p>
<img id="s" alt="kiosk screen">
<script>
const img = document.getElementById('s');
function next() { img.src = 'screen.png?t=' + Date.now(); }
img.onload = () => setTimeout(next, 100);
img.onerror = () => setTimeout(next, 1000);
img.onclick = (e) => {
  const r = img.getBoundingClientRect();
  const x = (e.clientX - r.left) * img.naturalWidth / r.width;
  const y = (e.clientY - r.top) * img.naturalHeight / r.height;
  fetch(`tap?x=${x.toFixed(1)}&y=${y.toFixed(1)}`, { method: 'POST' });
};
next();
</script></body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_is_a_plain_picture_of_the_screen_size() {
        let svg = placeholder(1280, 800);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("width=\"1280\" height=\"800\""), "{svg}");
        assert!(svg.contains("In a visit — not shown here"), "{svg}");
        assert!(!svg.contains("<image"), "{svg}");
    }

    #[test]
    fn only_the_loopback_host_it_listens_on_is_served() {
        let addr: SocketAddr = "127.0.0.1:8090".parse().unwrap();
        for ok in ["127.0.0.1:8090", "localhost:8090", "[::1]:8090"] {
            assert!(host_allowed(Some(ok), addr), "{ok}");
        }
        for bad in ["evil.example:8090", "127.0.0.1:8091", "127.0.0.1", "localhost"] {
            assert!(!host_allowed(Some(bad), addr), "{bad}");
        }
        assert!(!host_allowed(None, addr));
    }

    #[test]
    fn tokens_are_long_and_plain() {
        assert!(valid_token("0123456789abcdef"));
        assert!(!valid_token("short"));
        assert!(!valid_token("0123456789abcdef/../x"));
    }
}

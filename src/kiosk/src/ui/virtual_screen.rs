//! A virtual touchscreen for demos on machines without a display: the headless screen served
//! on a loopback HTTP port, where a click in the browser is a tap on the kiosk.
//!
//! Loopback only, and kept in memory: each picture is rendered on request and never written to
//! disk. It is a development aid; a kiosk in service has a real panel and never starts it.
//! It never shows a visit: while visit video is on screen it serves a plain "In a visit — not
//! shown here" picture instead (taps still go through, e.g. on End).

use std::net::SocketAddr;

use axum::extract::Query;
use axum::http::{StatusCode, header};
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
}

/// Serves the screen on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> Result<(), VirtualScreenError> {
    if !addr.ip().is_loopback() {
        return Err(VirtualScreenError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| VirtualScreenError::Bind { addr, source })?;
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/screen.png", get(screen))
        .route("/tap", post(tap));
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
function next() { img.src = '/screen.png?t=' + Date.now(); }
img.onload = () => setTimeout(next, 100);
img.onerror = () => setTimeout(next, 1000);
img.onclick = (e) => {
  const r = img.getBoundingClientRect();
  const x = (e.clientX - r.left) * img.naturalWidth / r.width;
  const y = (e.clientY - r.top) * img.naturalHeight / r.height;
  fetch(`/tap?x=${x.toFixed(1)}&y=${y.toFixed(1)}`, { method: 'POST' });
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
}

//! The console WebSocket adapter: authenticates the upgrade of `/ws` by session cookie, then
//! decodes each text frame with `telekiosk_protocol::decode` for the hub and sends the hub's
//! messages back as JSON. Keeps the session alive while its clinician is in a call and closes
//! the socket when the session has ended (checked every few seconds, and at once when an
//! account change ends sessions). A console that sends faster than [`console_rate`] allows is
//! closed (code 1008). Logs sizes and ids, never message contents.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::decode::MAX_MESSAGE_BYTES;
use telekiosk_protocol::{DecodeError, decode, encode};
use tokio::sync::mpsc;

use super::AppState;
use super::console_rate::{self, Bucket};
use super::error::{ApiError, ApiResult};
use super::extract::Place;
use super::extract::SignedIn;
use crate::accounts::User;
use crate::audit::{self, Entry};
use crate::signalling::Input;
use crate::signalling::hub::{CONSOLE_QUEUE, HubMsg};

/// How often the socket is pinged, and its session counted as used while in a call.
const TICK: Duration = Duration::from_secs(20);
/// How often the session is checked without being used (an account change made with the CLI,
/// which cannot tell this process, is seen this soon; one made over the API at once).
const CHECK: Duration = Duration::from_secs(2);
/// Close code telling the console its session is over (an application code, 4000-4999).
const SESSION_ENDED: u16 = 4401;

/// `GET /ws`: 401 without a live session, 403 from another origin, else a console connection.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    SignedIn { user, token }: SignedIn,
    Place(place): Place,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if !same_origin(&headers, &uri) {
        let entry = Entry::new(&audit::user(&user.username), audit::ACCESS_REFUSED, "/ws", &place);
        state.audit.record(entry.refused("cross_origin")).await;
        return Err(ApiError::CrossOrigin);
    }
    let Some(slot) = state.ws_slots.take(&token) else {
        tracing::warn!(user = %user.username, "console socket refused: too many for one session");
        return Err(ApiError::TooMany {
            retry_after: 5,
            message: format!(
                "This session already has {} console connections open. Close another tab or \
                 window of the console and try again.",
                super::ws_slots::PER_SESSION
            ),
        });
    };
    Ok(match ws {
        // Room above the protocol limit so the decoder, not the socket, refuses oversized
        // messages, with an error the console can show.
        Ok(ws) => ws
            .max_message_size(2 * MAX_MESSAGE_BYTES)
            .max_frame_size(2 * MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| async move {
                run(socket, state, user, token).await;
                drop(slot);
            }),
        Err(rejection) => rejection.into_response(),
    })
}

/// Browsers always send `Origin` on a WebSocket upgrade; it must be this server. Clients that
/// are not browsers send none and are not exposed to cross-site requests.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.or_else(|| uri.authority().map(|a| a.as_str()));
    host.is_some_and(|host| origin.to_str().is_ok_and(|o| o == format!("https://{host}")))
}

async fn run(mut socket: WebSocket, state: Arc<AppState>, user: User, token: String) {
    let hub = state.hub.clone();
    let conn = hub.next_conn();
    let (tx, mut rx) = mpsc::channel(CONSOLE_QUEUE);
    let (name, scope) = (user.username.clone(), user.scope());
    let attach = HubMsg::ConsoleAttached { conn, user: name, scope, tx };
    if hub.send(attach).await.is_err() {
        return;
    }
    tracing::debug!(user = %user.username, conn = conn.0, "console socket open");
    let mut in_call = false;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + CHECK, CHECK);
    let mut revoked = state.accounts.revocations();
    let mut bucket = Bucket::new(console_rate::BURST, console_rate::RATE, Instant::now());
    let why = loop {
        tokio::select! {
            frame = socket.recv() => {
                if matches!(frame, Some(Ok(Message::Text(_) | Message::Binary(_))))
                    && !bucket.take(Instant::now())
                {
                    tracing::warn!(user = %user.username, conn = conn.0, "console socket closed: it sent messages too fast");
                    let reason = "Too many messages: reload the page to reconnect";
                    let frame = CloseFrame { code: console_rate::TOO_FAST, reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    drain(&mut socket).await;
                    break "sent too fast";
                }
                let msg: Result<ConsoleToServer, DecodeError> = match frame {
                    Some(Ok(Message::Text(text))) => {
                        if !in_session(&state, &token).await {
                            close(&mut socket).await;
                            break "session ended";
                        }
                        decode(text.as_bytes())
                    }
                    Some(Ok(Message::Binary(_))) => Err(DecodeError::Malformed(
                        "binary frames are not accepted: send JSON text".into(),
                    )),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break "closed by the console",
                    Some(Err(e)) => {
                        tracing::debug!(conn = conn.0, "WebSocket error: {e}");
                        break "WebSocket error";
                    }
                };
                if hub.send(HubMsg::Input(Input::FromConsole { conn, msg })).await.is_err() {
                    break "fleetd is stopping";
                }
            }
            out = rx.recv() => {
                let Some(msg) = out else { break "dropped by fleetd" };
                match &msg {
                    ServerToConsole::Joined { .. } => in_call = true,
                    ServerToConsole::Ended { .. } => in_call = false,
                    _ => {}
                }
                let json = String::from_utf8(encode(&msg)).expect("JSON is UTF-8");
                if socket.send(Message::Text(json.into())).await.is_err() {
                    break "send failed";
                }
            }
            _ = check.tick() => {
                if !still_live(&state, &token).await {
                    close(&mut socket).await;
                    break "session ended";
                }
            }
            changed = revoked.changed() => {
                if changed.is_err() || !still_live(&state, &token).await {
                    close(&mut socket).await;
                    break "session ended by an account change";
                }
            }
            _ = tick.tick() => {
                // A call in progress is activity even when nobody clicks; otherwise the idle
                // time-out applies and an expired session closes the console.
                let live = if in_call {
                    in_session(&state, &token).await
                } else {
                    still_live(&state, &token).await
                };
                if !live {
                    close(&mut socket).await;
                    break "session ended";
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break "ping failed";
                }
            }
        }
    };
    let _ = hub.send(HubMsg::Input(Input::ConsoleDisconnected { conn })).await;
    // The router writes the audit line; this one only says why the socket closed.
    tracing::debug!(user = %user.username, conn = conn.0, "console socket closed: {why}");
}

/// Whether `token`'s session is live, counting this as use.
async fn in_session(state: &Arc<AppState>, token: &str) -> bool {
    let token = token.to_string();
    let live =
        state.blocking(move |s| Ok::<_, ApiError>(s.accounts.session(&token, Instant::now())));
    live.await.is_ok_and(|user| user.is_some())
}

/// Whether `token`'s session is live, not counting this as use.
async fn still_live(state: &Arc<AppState>, token: &str) -> bool {
    let token = token.to_string();
    let live =
        state.blocking(move |s| Ok::<_, ApiError>(s.accounts.is_live(&token, Instant::now())));
    live.await.unwrap_or(false)
}

/// After sending a close frame: reads (and drops) what the console still sends until it
/// answers the close, for 2 s at most. Dropping a connection with unread data resets it, and the
/// reset can discard the close frame before the console reads it.
async fn drain(socket: &mut WebSocket) {
    let answered = async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answered).await;
}

async fn close(socket: &mut WebSocket) {
    let frame = CloseFrame { code: SESSION_ENDED, reason: "Session ended".into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn only_this_origin_or_no_origin_may_open_a_console_connection() {
        let uri = Uri::from_static("/ws");
        assert!(same_origin(&headers(Some("https://127.0.0.1:8443"), "127.0.0.1:8443"), &uri));
        assert!(same_origin(&headers(None, "127.0.0.1:8443"), &uri));
        assert!(!same_origin(&headers(Some("https://evil.example"), "127.0.0.1:8443"), &uri));
        assert!(!same_origin(&headers(Some("http://127.0.0.1:8443"), "127.0.0.1:8443"), &uri));
    }
}

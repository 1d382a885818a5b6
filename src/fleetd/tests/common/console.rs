//! A clinician console's WebSocket, for the tests that sign in and watch the queue: connect
//! with the session cookie, read until a message arrives, send one.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::{decode, encode};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{Fleetd, WAIT, tls};

/// A console's connection.
pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the console WebSocket of the session `cookie` names.
pub async fn console(f: &Fleetd, cookie: &str) -> Ws {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector));
    connect.await.expect("console connects").0
}

/// Reads console messages until one satisfies `want`, returning every one read.
pub async fn until(ws: &mut Ws, want: impl Fn(&ServerToConsole) -> bool) -> Vec<ServerToConsole> {
    let mut seen = vec![];
    timeout(WAIT, async {
        loop {
            if let Message::Text(text) = ws.next().await.expect("open").expect("healthy") {
                let msg = decode::<ServerToConsole>(text.as_bytes()).unwrap();
                let done = want(&msg);
                seen.push(msg);
                if done {
                    return;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no expected console message; saw {seen:?}"));
    seen
}

pub async fn send(ws: &mut Ws, msg: &ConsoleToServer) {
    ws.send(Message::text(String::from_utf8(encode(msg)).unwrap())).await.unwrap();
}

pub fn lists(msg: &ServerToConsole, visit: &str) -> bool {
    matches!(msg, ServerToConsole::Queue { waiting } if waiting.iter().any(|w| w.visit_id == visit))
}

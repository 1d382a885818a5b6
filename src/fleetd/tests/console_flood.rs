//! Review L10 over real HTTPS: one console that floods its WebSocket is closed with code 1008
//! and a reason, and another clinician's console keeps working.

mod common;

use std::sync::Arc;

use common::{Fleetd, WAIT, add_user, sign_in, start, stop, tls};
use futures_util::{SinkExt, StreamExt};
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::{decode, encode};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn console(f: &Fleetd, cookie: &str) -> Ws {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", f.url("").parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector));
    connect.await.expect("console connects").0
}

fn join_nothing() -> Message {
    let msg = ConsoleToServer::Join { visit_id: "no-such-visit".into() };
    Message::Text(String::from_utf8(encode(&msg)).unwrap().into())
}

/// The next console message (skipping pings), or `None` if the socket closed.
async fn next(ws: &mut Ws) -> Option<ServerToConsole> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(decode(text.as_bytes()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_that_floods_its_socket_is_closed_and_another_console_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password", "clinician").await;
    add_user(&dir, "bob", "bob-password", "clinician").await;
    let f = start(&dir).await;
    let mut alice = console(&f, &sign_in(&f, "alice", "alice-password").await).await;
    let mut bob = console(&f, &sign_in(&f, "bob", "bob-password").await).await;
    assert!(matches!(next(&mut bob).await, Some(ServerToConsole::Queue { .. })));

    // Far more than the burst, as fast as the socket takes them.
    for _ in 0..2000 {
        if alice.send(join_nothing()).await.is_err() {
            break;
        }
    }
    let close = timeout(WAIT, async {
        loop {
            match alice.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the flooding console saw no close frame: {e}"),
                None => panic!("the flooding console's socket ended without a close frame"),
            }
        }
    })
    .await
    .expect("the flooding console was never closed");
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Policy, "{close:?}");
    assert!(close.reason.contains("Too many messages"), "{close:?}");

    // Bob's console still answers.
    bob.send(join_nothing()).await.unwrap();
    let reply = timeout(WAIT, next(&mut bob)).await.expect("bob's console answers in time");
    assert!(matches!(reply, Some(ServerToConsole::Error { .. })), "{reply:?}");
    assert!(f.logged().contains("sent messages too fast"), "the close was not logged");
    stop(f).await;
}

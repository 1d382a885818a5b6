//! Connection limits of the HTTPS server (review M6): a client that never finishes its request
//! head is closed by the header-read timeout instead of holding its connection forever, and one
//! session may hold only a few console WebSockets.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::{add_user, sign_in, start, stop, tls};
use rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn console(f: &common::Fleetd, cookie: &str) -> Result<Ws, WsError> {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let connected =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector)).await;
    connected.map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fifth_console_socket_of_one_session_is_refused_and_another_session_still_connects() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password", "clinician").await;
    let f = start(&dir).await;
    let cookie = sign_in(&f, "alice", "alice-password").await;
    let mut open = vec![];
    for n in 1..=4 {
        open.push(console(&f, &cookie).await.unwrap_or_else(|e| panic!("socket {n}: {e}")));
    }
    match console(&f, &cookie).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 429),
        Err(e) => panic!("the fifth socket failed otherwise: {e}"),
        Ok(_) => panic!("a fifth console socket of one session was accepted"),
    }
    let other = sign_in(&f, "alice", "alice-password").await;
    let _sixth = console(&f, &other).await.expect("another session is not limited by the first");
    // Closing one frees its slot.
    let mut first = open.remove(0);
    let _ = futures_util::SinkExt::send(&mut first, Message::Close(None)).await;
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = console(&f, &cookie).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a closed socket never gave its slot back");
    drop((open, again, _sixth));
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_request_line_is_closed_by_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let f = start(&dir).await;
    let (port, config) = (f.web_port, Arc::new(tls(&f.ca, None)));
    let outcome = tokio::task::spawn_blocking(move || {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Far longer than fleetd's header-read timeout: only the server can end the wait.
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream.write_all(b"GET / HT").unwrap();
        stream.flush().unwrap();
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return "closed".to_string(),
                Ok(_) => continue, // a 408 or similar before the close is fine
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return "still open after 60 s".to_string();
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return "still open after 60 s".to_string();
                }
                Err(_) => return "closed".to_string(),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(outcome, "closed");
    stop(f).await;
}

/// `POST /api/enrol` from the loopback address `from`: the status, the Retry-After header.
async fn enrol_from(
    f: &common::Fleetd,
    from: [u8; 4],
    token: &str,
    csr: &str,
) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls(&f.ca, None))
        .local_address(std::net::IpAddr::from(from))
        .build()
        .unwrap();
    let body = serde_json::json!({ "token": token, "csr_pem": csr });
    let res = client.post(f.url("/api/enrol")).json(&body).send().await.unwrap();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (res.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_enrolment_codes_is_throttled_and_another_address_still_enrols() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let f = start(&dir).await;
    let csr = common::device_key().1;
    let mut statuses = vec![];
    for _ in 0..50 {
        let (status, retry) = enrol_from(&f, [127, 0, 0, 1], "2345-6789", &csr).await;
        if status == 429 {
            assert!(
                retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1),
                "429 without Retry-After"
            );
        }
        statuses.push(status);
    }
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert!(throttled >= 40, "only {throttled} of 50 bad codes were throttled: {statuses:?}");
    assert!(statuses[..5].iter().all(|&s| s == 401), "the first few are heard: {statuses:?}");
    let token = common::enrol_token(&dir, "1", "1h").await.token;
    let (status, _) = enrol_from(&f, [127, 0, 0, 2], &token, &common::device_key().1).await;
    assert_eq!(status, 200, "a kiosk at another address was refused");
    stop(f).await;
}

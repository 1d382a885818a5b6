//! Connection limits of the HTTPS server (review M6): a client that never finishes its request
//! head is closed by the header-read timeout instead of holding its connection forever.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::{start, stop, tls};
use rustls::pki_types::ServerName;

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

//! Accounts and sign-in against a real fleetd: two-step sign-in (wrong, replayed and recovery
//! codes; enrolment in the console's API), throttling and lock-out, sign-in floods, account
//! lifecycle from the CLI and the admin API (sessions and console WebSockets end at once),
//! automatic logoff that background polls cannot defeat, cross-site requests, the `__Host-`
//! cookie and HSTS.

#[path = "../common/mod.rs"]
mod common;
mod sessions;
mod sign_in;

use std::sync::Arc;

use common::{Fleetd, WAIT, free_port, http, tls, wait_ready};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// fleetd started with extra `serve` arguments.
pub async fn start_with(dir: &std::path::Path, args: &[&str]) -> Fleetd {
    let (web, mqtt) = (free_port(), free_port());
    let mqtt_listen = format!("127.0.0.1:{mqtt}");
    let child =
        common::spawn_fleetd(dir, web, &[&["--mqtt-listen", &mqtt_listen][..], args].concat());
    wait_ready(child, dir, web, mqtt).await
}

pub async fn post(f: &Fleetd, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let res = http(f).post(f.url(path)).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// The password step; returns the pending sign-in's token.
pub async fn password_step(f: &Fleetd, user: &str, password: &str) -> String {
    let (status, reply) =
        post(f, "/api/login", serde_json::json!({ "username": user, "password": password })).await;
    assert_eq!((status, reply["step"].as_str()), (200, Some("code")), "{reply}");
    reply["pending"].as_str().unwrap().to_string()
}

pub async fn code_step(f: &Fleetd, pending: &str, code: &str) -> (u16, serde_json::Value) {
    post(f, "/api/login/code", serde_json::json!({ "pending": pending, "code": code })).await
}

pub async fn get_status(f: &Fleetd, path: &str, cookie: &str) -> u16 {
    let res = http(f).get(f.url(path)).header("cookie", cookie).send().await.unwrap();
    res.status().as_u16()
}

pub async fn add_user_without_totp(
    f_dir: &std::path::Path,
    name: &str,
    password: &str,
    role: &str,
) {
    let mut child = tokio::process::Command::new(common::FLEETD)
        .args(["user", "add", name, "--role", role, "--password-stdin", "--data-dir"])
        .arg(f_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).await.unwrap();
    assert!(child.wait().await.unwrap().success());
}

pub async fn cli_stdin(
    dir: &std::path::Path,
    args: &[&str],
    input: &str,
) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(common::FLEETD)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

pub async fn console(f: &Fleetd, cookie: &str) -> Ws {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .expect("console connects");
    ws
}

/// Reads until the socket closes; returns the close code.
pub async fn closed_with(ws: &mut Ws) -> Option<u16> {
    timeout(WAIT, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the console socket closes in time")
}

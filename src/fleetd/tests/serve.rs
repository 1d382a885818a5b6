//! End to end on loopback: the real `fleetd serve` binary with a real mosquitto, a kiosk played
//! by an MQTT client, and two consoles played by WebSocket clients. Needs mosquitto installed:
//! without it these tests fail, they do not skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::visit::{KioskToServer, ServerToKiosk};
use telekiosk_protocol::{decode, encode, topics};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

const FLEETD: &str = env!("CARGO_BIN_EXE_fleetd");
const WAIT: Duration = Duration::from_secs(15);
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running `fleetd serve`.
struct Fleetd {
    child: Child,
    ca: PathBuf,
    web_port: u16,
    mqtt_port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn add_user(dir: &Path, name: &str, password: &str) {
    let mut child = Command::new(FLEETD)
        .args(["user", "add", name, "--password-stdin", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).await.unwrap();
    assert!(child.wait().await.unwrap().success(), "fleetd user add {name} failed");
}

async fn start(dir: &Path) -> Fleetd {
    assert!(
        Path::new("/usr/sbin/mosquitto").exists(),
        "this test needs mosquitto: apt-get install mosquitto"
    );
    let (web_port, mqtt_port) = (free_port(), free_port());
    let log = dir.with_extension("log");
    let mut child = Command::new(FLEETD)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{web_port}")])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ca = None;
    let ready = timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(path) = line.strip_prefix("CA certificate: ") {
                ca = Some(PathBuf::from(path));
            }
            if line.starts_with("fleetd ready:") {
                return Some(line);
            }
        }
        None
    })
    .await;
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let line = match ready {
        Ok(Some(line)) => line,
        _ => panic!("fleetd never said it was ready; its log:\n{}", logged()),
    };
    let expected = format!(
        "fleetd ready: console https://127.0.0.1:{web_port}/ mqtt mqtts://127.0.0.1:{mqtt_port}"
    );
    assert_eq!(line, expected);
    let ca = ca.expect("fleetd printed its CA path");
    assert!(ca.is_absolute() && ca.exists(), "{ca:?}");
    Fleetd { child, ca, web_port, mqtt_port, log }
}

fn tls(ca: &Path) -> rustls::ClientConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile_free::certs(&pem) {
        roots.add(cert).unwrap();
    }
    rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
}

/// PEM parsing through rustls's own types (no extra crate).
mod rustls_pemfile_free {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    pub fn certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().unwrap()
    }
}

/// A kiosk: publishes on its `visit/out`, and forwards what arrives on its `visit/in`.
async fn kiosk(f: &Fleetd, device_id: &str) -> (AsyncClient, mpsc::Receiver<ServerToKiosk>) {
    let mut options = MqttOptions::new(format!("test-{device_id}"), "127.0.0.1", f.mqtt_port);
    let config = Arc::new(tls(&f.ca));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(topics::visit_in(device_id), QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subscribed_tx.take().map(|s| s.send(()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(decode::<ServerToKiosk>(&p.payload).unwrap()).await;
                }
                Ok(_) => {}
                Err(e) => panic!("kiosk MQTT connection failed: {e}"),
            }
        }
    });
    timeout(WAIT, subscribed).await.expect("kiosk subscribed in time").unwrap();
    (client, rx)
}

async fn publish(client: &AsyncClient, device_id: &str, msg: &KioskToServer) {
    client
        .publish(topics::visit_out(device_id), QoS::AtLeastOnce, false, encode(msg))
        .await
        .unwrap();
}

/// Signs in over HTTPS and returns the `tk_session=…` cookie pair.
async fn sign_in(f: &Fleetd, user: &str, password: &str) -> Result<String, (u16, String)> {
    let http = reqwest::Client::builder().use_preconfigured_tls(tls(&f.ca)).build().unwrap();
    let res = http
        .post(format!("https://127.0.0.1:{}/api/login", f.web_port))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status != 200 {
        return Err((status, res.text().await.unwrap()));
    }
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} missing in {cookie}");
    }
    Ok(cookie.split(';').next().unwrap().to_string())
}

async fn console(f: &Fleetd, cookie: &str) -> Ws {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca)));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .expect("console connects");
    ws
}

async fn send(ws: &mut Ws, msg: &ConsoleToServer) {
    ws.send(Message::text(String::from_utf8(encode(msg)).unwrap())).await.unwrap();
}

/// Reads console messages until one satisfies `want`.
async fn until(ws: &mut Ws, want: impl Fn(&ServerToConsole) -> bool) -> ServerToConsole {
    timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("socket healthy") {
                Message::Text(text) => {
                    let msg = decode::<ServerToConsole>(text.as_bytes()).unwrap();
                    if want(&msg) {
                        return msg;
                    }
                }
                Message::Close(frame) => panic!("console closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the expected console message arrived in time")
}

async fn kiosk_gets(rx: &mut mpsc::Receiver<ServerToKiosk>) -> ServerToKiosk {
    timeout(WAIT, rx.recv()).await.expect("kiosk message in time").expect("kiosk connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_kiosk_is_joined_by_one_clinician_and_refused_to_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password").await;
    add_user(&dir, "bob", "bob-password-1").await;
    let f = start(&dir).await;

    let refused = sign_in(&f, "alice", "wrong-password").await.unwrap_err();
    assert_eq!(refused, (401, r#"{"error":"Wrong user name or password."}"#.to_string()));
    let anonymous = reqwest::Client::builder().use_preconfigured_tls(tls(&f.ca)).build().unwrap();
    let ws_url = format!("https://127.0.0.1:{}/ws", f.web_port);
    assert_eq!(anonymous.get(ws_url).send().await.unwrap().status().as_u16(), 401);

    let (kiosk_a, mut to_kiosk_a) = kiosk(&f, "kiosk-a").await;
    let waiting = KioskToServer::Waiting {
        visit_id: "visit-1".into(),
        clinic: "North Clinic".into(),
        room: "2".into(),
    };
    publish(&kiosk_a, "kiosk-a", &waiting).await;

    let mut alice = console(&f, &sign_in(&f, "alice", "alice-password").await.unwrap()).await;
    let has_visit = |m: &ServerToConsole| matches!(m, ServerToConsole::Queue { waiting } if waiting.iter().any(|w| w.visit_id == "visit-1" && w.device_id == "kiosk-a" && w.clinic == "North Clinic"));
    until(&mut alice, has_visit).await;
    let mut bob = console(&f, &sign_in(&f, "bob", "bob-password-1").await.unwrap()).await;
    until(&mut bob, has_visit).await;

    send(&mut alice, &ConsoleToServer::Join { visit_id: "visit-1".into() }).await;
    until(
        &mut alice,
        |m| matches!(m, ServerToConsole::Joined { visit_id, .. } if visit_id == "visit-1"),
    )
    .await;
    assert_eq!(
        kiosk_gets(&mut to_kiosk_a).await,
        ServerToKiosk::Accepted { visit_id: "visit-1".into() }
    );

    send(&mut bob, &ConsoleToServer::Join { visit_id: "visit-1".into() }).await;
    let taken = until(&mut bob, |m| !matches!(m, ServerToConsole::Queue { .. })).await;
    assert_eq!(taken, ServerToConsole::AlreadyTaken { visit_id: "visit-1".into() });

    // The offer reaches the owner, and the owner's answer reaches the kiosk.
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n".to_string();
    publish(
        &kiosk_a,
        "kiosk-a",
        &KioskToServer::Offer { visit_id: "visit-1".into(), sdp: sdp.clone() },
    )
    .await;
    let offer = until(&mut alice, |m| matches!(m, ServerToConsole::Offer { .. })).await;
    assert_eq!(offer, ServerToConsole::Offer { visit_id: "visit-1".into(), sdp: sdp.clone() });
    send(&mut alice, &ConsoleToServer::Answer { visit_id: "visit-1".into(), sdp: sdp.clone() })
        .await;
    assert_eq!(
        kiosk_gets(&mut to_kiosk_a).await,
        ServerToKiosk::Answer { visit_id: "visit-1".into(), sdp }
    );

    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_reuses_the_ca_and_sigterm_stops_fleetd_and_its_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = start(&dir).await;
    let ca = std::fs::read(&first.ca).unwrap();
    stop(first).await;
    let second = start(&dir).await;
    assert_eq!(std::fs::read(&second.ca).unwrap(), ca, "the CA was replaced");
    stop(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_does_not_outlive_a_killed_fleetd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut f = start(&dir).await;
    f.child.start_kill().unwrap();
    f.child.wait().await.unwrap();
    assert_port_closes(f.mqtt_port).await;
}

/// SIGTERM: fleetd exits with success, and the broker's port closes.
async fn stop(mut f: Fleetd) {
    let pid = nix::unistd::Pid::from_raw(f.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = timeout(WAIT, f.child.wait()).await.expect("fleetd exits in time").unwrap();
    let log = std::fs::read_to_string(&f.log).unwrap_or_default();
    assert!(status.success(), "fleetd exited with {status}; its log:\n{log}");
    assert_port_closes(f.mqtt_port).await;
}

async fn assert_port_closes(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mosquitto still listens on {port} after fleetd is gone");
}

//! What the integration tests share: the real `fleetd` binary started on free loopback ports
//! with a real mosquitto, its CLI, HTTPS clients, MQTT clients, and enrolled kiosks with
//! software keys: simulated ones from `telekiosk-sim` (the fleet bench's too), or bare MQTT
//! clients that a test drives itself. Needs mosquitto installed: without it the tests fail, they
//! do not skip.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, MqttOptions, Outgoing, Packet, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use telekiosk_protocol::api::EnrolToken;
pub use telekiosk_sim::Device;
use telekiosk_sim::{Answer, Behaviour, Kiosk};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

pub const FLEETD: &str = env!("CARGO_BIN_EXE_fleetd");
pub const WAIT: Duration = Duration::from_secs(15);

/// A running `fleetd serve`.
pub struct Fleetd {
    pub child: Child,
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub web_port: u16,
    pub mqtt_port: u16,
    pub log: PathBuf,
}

impl Fleetd {
    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.web_port)
    }

    /// What fleetd (and its mosquitto) logged so far.
    pub fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Adds a user; a clinician or technician is assigned North Clinic (see [`enrol_token`]).
pub async fn add_user(dir: &Path, name: &str, password: &str, role: &str) {
    let clinics: &[&str] = match role {
        "clinician" | "technician" => &["North Clinic"],
        _ => &[],
    };
    add_user_in(dir, name, password, role, clinics).await;
}

/// Adds a user assigned to `clinics`.
pub async fn add_user_in(dir: &Path, name: &str, password: &str, role: &str, clinics: &[&str]) {
    let mut child = Command::new(FLEETD)
        .args(["user", "add", name, "--role", role, "--password-stdin", "--data-dir"])
        .arg(dir)
        .args(clinics.iter().flat_map(|c| ["--clinic", c]))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).await.unwrap();
    assert!(child.wait().await.unwrap().success(), "fleetd user add {name} failed");
}

pub async fn start(dir: &Path) -> Fleetd {
    start_on(dir, free_port(), free_port()).await
}

/// Starts fleetd with its embedded broker on the given ports (the same ones again after a
/// restart, so kiosks find it).
pub async fn start_on(dir: &Path, web_port: u16, mqtt_port: u16) -> Fleetd {
    assert!(
        Path::new("/usr/sbin/mosquitto").exists(),
        "this test needs mosquitto: apt-get install mosquitto"
    );
    let mqtt_listen = format!("127.0.0.1:{mqtt_port}");
    let child = spawn_fleetd(dir, web_port, &["--mqtt-listen", &mqtt_listen]);
    wait_ready(child, dir, web_port, mqtt_port).await
}

/// Spawns `fleetd serve` (HTTPS on `web_port`) with `args`; its log goes to DIR.log (appended).
pub fn spawn_fleetd(dir: &Path, web_port: u16, args: &[&str]) -> Child {
    let log = dir.with_extension("log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(FLEETD)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{web_port}")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits for a spawned fleetd to say it is ready, with its broker on `mqtt_port`.
pub async fn wait_ready(mut child: Child, dir: &Path, web_port: u16, mqtt_port: u16) -> Fleetd {
    let log = dir.with_extension("log");
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
    Fleetd { child, dir: dir.to_path_buf(), ca, web_port, mqtt_port, log }
}

/// SIGTERM: fleetd exits with success, and the broker's port closes.
pub async fn stop(f: Fleetd) {
    let port = f.mqtt_port;
    stop_fleetd(f).await;
    assert_port_closes(port).await;
}

/// SIGTERM: fleetd exits with success.
pub async fn stop_fleetd(mut f: Fleetd) {
    let pid = nix::unistd::Pid::from_raw(f.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = timeout(WAIT, f.child.wait()).await.expect("fleetd exits in time").unwrap();
    assert!(status.success(), "fleetd exited with {status}; its log:\n{}", f.logged());
}

pub async fn assert_port_closes(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mosquitto still listens on {port} after fleetd is gone");
}

/// Trusts fleetd's CA; presents `identity` if given.
pub fn tls(
    ca: &Path,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> rustls::ClientConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    telekiosk_sim::client_tls(ca, identity).unwrap()
}

/// TLS presenting `device`'s certificate to `f`.
pub fn device_tls(f: &Fleetd, device: &Device) -> rustls::ClientConfig {
    tls(&f.ca, Some(device.identity().unwrap()))
}

/// A simulated kiosk for `device` on `f`'s broker, quick to notice it going away.
pub fn sim(f: &Fleetd, device: &Device, answer: Answer) -> Kiosk {
    let tls = device_tls(f, device);
    telekiosk_sim::start(device, tls, f.mqtt_port, Behaviour::quick(answer), Default::default())
}

/// An HTTPS client trusting fleetd's CA.
pub fn http(f: &Fleetd) -> reqwest::Client {
    reqwest::Client::builder().use_preconfigured_tls(tls(&f.ca, None)).build().unwrap()
}

/// Runs `fleetd ARGS --data-dir DIR`; returns (success, stdout, stderr).
pub async fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(FLEETD).args(args).arg("--data-dir").arg(dir).output().await.unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// `fleetd device enrol-token --json` for North Clinic, room `room`.
pub async fn enrol_token(dir: &Path, room: &str, ttl: &str) -> EnrolToken {
    let args = ["device", "enrol-token", "--clinic", "North Clinic", "--room", room];
    let (ok, out, err) = cli(dir, &[&args[..], &["--ttl", ttl, "--json"]].concat()).await;
    assert!(ok, "enrol-token failed: {err}");
    serde_json::from_str(&out).unwrap()
}

/// A software P-256 key and its CSR, as a kiosk without a TPM would make them.
pub fn device_key() -> (rcgen::KeyPair, String) {
    telekiosk_sim::software_key().unwrap()
}

/// `POST /api/enrol`: the HTTP status and the body (an `EnrolResponse` or an `ApiError`).
pub async fn post_enrol(f: &Fleetd, token: &str, csr_pem: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "token": token, "csr_pem": csr_pem });
    let res = http(f).post(f.url("/api/enrol")).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Enrols a software-key kiosk (token from the CLI, CSR over HTTPS), approves it with the CLI,
/// and fetches its certificate as a kiosk would: by asking again.
pub async fn enrolled_device(f: &Fleetd, room: &str) -> Device {
    let token = enrol_token(&f.dir, room, "1h").await.token;
    let approve = async |id: &str| {
        let (ok, _, err) = cli(&f.dir, &["device", "approve", id]).await;
        anyhow::ensure!(ok, "approve failed: {err}");
        Ok(())
    };
    telekiosk_sim::enrol(&http(f), &f.url(""), &token, approve).await.unwrap()
}

/// What an MQTT test client sees after connecting.
#[derive(Debug)]
pub enum Seen {
    SubAck(Vec<SubscribeReasonCode>),
    Publish {
        topic: String,
        payload: Vec<u8>,
    },
    PubAck(u16),
    /// The connection ended; the client does not reconnect.
    Closed(String),
}

/// A connected MQTT client and what it sees.
pub struct Mqtt {
    pub client: AsyncClient,
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

impl Mqtt {
    /// The next event, within [`WAIT`].
    pub async fn next(&mut self) -> Seen {
        timeout(WAIT, self.seen.recv()).await.expect("an MQTT event in time").expect("open")
    }

    /// Events until one matches `want`; returns the ones before it and it.
    pub async fn until(&mut self, want: impl Fn(&Seen) -> bool) -> (Vec<Seen>, Seen) {
        let mut before = Vec::new();
        loop {
            let seen = self.next().await;
            if want(&seen) {
                return (before, seen);
            }
            before.push(seen);
        }
    }
}

/// Connects to fleetd's broker with `tls`; `Err` names why the broker or TLS refused.
pub async fn mqtt(f: &Fleetd, tls: rustls::ClientConfig, client_id: &str) -> Result<Mqtt, String> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", f.mqtt_port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let (tx, seen) = mpsc::unbounded_channel();
    let connected = timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no ConnAck in time".to_string())?;
    connected?;
    tokio::spawn(async move {
        loop {
            let seen = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(a))) => Seen::SubAck(a.return_codes),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    Seen::Publish { topic: p.topic, payload: p.payload.to_vec() }
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => Seen::PubAck(a.pkid),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Seen::Closed(e.to_string()));
                    break;
                }
            };
            if tx.send(seen).is_err() {
                break;
            }
        }
    });
    Ok(Mqtt { client, seen })
}

/// Signs in over HTTPS and returns the `tk_session=…` cookie pair, checking the cookie's
/// attributes; or the refusal's status and body.
pub async fn try_sign_in(f: &Fleetd, user: &str, password: &str) -> Result<String, (u16, String)> {
    let body = serde_json::json!({ "username": user, "password": password });
    let res = http(f).post(f.url("/api/login")).json(&body).send().await.unwrap();
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

/// Signs in over HTTPS and returns the `tk_session=…` cookie pair; panics if refused.
pub async fn sign_in(f: &Fleetd, user: &str, password: &str) -> String {
    match try_sign_in(f, user, password).await {
        Ok(cookie) => cookie,
        Err((status, body)) => panic!("{user} cannot sign in: {status} {body}"),
    }
}

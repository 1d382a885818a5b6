//! What the integration tests share: the real `fleetd` binary started on free loopback ports
//! with a real mosquitto, its CLI, HTTPS clients, MQTT clients, and enrolled kiosks with
//! software keys: simulated ones from `telekiosk-sim` (the fleet bench's too), or bare MQTT
//! clients that a test drives itself. Needs mosquitto installed: without it the tests fail, they
//! do not skip.
#![allow(dead_code)] // each test file uses its own part

pub mod console;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
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
    // Not bind(0): that hands out a port of the kernel's ephemeral range (32768–60999), which any
    // outgoing connection of a test running alongside may take as its local port before the
    // server binds it ("Address already in use", seen in CI). Below that range, and never the
    // same port twice in one test process; each process starts at its own place.
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(37);
    loop {
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (base.wrapping_add(n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Adds a user with two-step sign-in set up (`--with-totp`); a clinician or technician is
/// assigned North Clinic (see [`enrol_token`]). [`sign_in`] computes their codes. Returns the
/// TOTP secret and the recovery codes.
pub async fn add_user(dir: &Path, name: &str, password: &str, role: &str) -> (String, Vec<String>) {
    let clinics: &[&str] = match role {
        "clinician" | "technician" => &["North Clinic"],
        _ => &[],
    };
    add_user_in(dir, name, password, role, clinics).await
}

/// [`add_user`], assigned to `clinics`.
pub async fn add_user_in(
    dir: &Path,
    name: &str,
    password: &str,
    role: &str,
    clinics: &[&str],
) -> (String, Vec<String>) {
    let mut child = Command::new(FLEETD)
        .args(["user", "add", name, "--role", role, "--password-stdin", "--with-totp", "--json"])
        .arg("--data-dir")
        .arg(dir)
        .args(clinics.iter().flat_map(|c| ["--clinic", c]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "fleetd user add {name} failed");
    let codes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = codes["totp_secret"].as_str().unwrap().to_string();
    let recovery = codes["recovery_codes"].as_array().unwrap();
    let recovery = recovery.iter().map(|c| c.as_str().unwrap().to_string()).collect();
    totp_users()
        .lock()
        .unwrap()
        .insert((dir.to_path_buf(), name.to_string()), (secret.clone(), -1));
    (secret, recovery)
}

/// Per (data dir, user): the TOTP secret [`add_user`] got, and the last time step a code was
/// sent for.
type TotpUsers = std::sync::Mutex<std::collections::HashMap<(PathBuf, String), (String, i64)>>;

fn totp_users() -> &'static TotpUsers {
    static USERS: std::sync::OnceLock<TotpUsers> = std::sync::OnceLock::new();
    USERS.get_or_init(Default::default)
}

/// The TOTP code of `secret` for Unix time step `step` (RFC 6238, as an authenticator app).
pub fn totp_code(secret: &str, step: i64) -> String {
    use totp_rs::{Algorithm, Secret, TOTP};
    let bytes = Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 0, 30, bytes).unwrap().generate(step as u64 * 30)
}

/// The current time step (30 s).
pub fn totp_step_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now.as_secs() / 30) as i64
}

/// A code for `user` of `f` that fleetd has not seen yet: a step after the last one used, within
/// the step either side of now that fleetd accepts (waiting for the next step if all are used).
pub async fn next_code(f: &Fleetd, user: &str) -> Option<String> {
    loop {
        let key = (f.dir.clone(), user.to_string());
        let wait = {
            let mut users = totp_users().lock().unwrap();
            let (secret, last) = users.get_mut(&key)?;
            let now = totp_step_now();
            let step = (*last + 1).max(now - 1);
            if step <= now + 1 {
                *last = step;
                return Some(totp_code(secret, step));
            }
            Duration::from_secs(((step - 1) * 30) as u64 + 1).saturating_sub(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap(),
            )
        };
        tokio::time::sleep(wait).await;
    }
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

/// An HTTPS client trusting fleetd's CA, sending fleetd's own `Origin` as a console page does.
pub fn http(f: &Fleetd) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("origin", f.url("").parse().unwrap());
    reqwest::Client::builder()
        .use_preconfigured_tls(tls(&f.ca, None))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Runs `fleetd ARGS --data-dir DIR`; returns (success, stdout, stderr).
pub async fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(FLEETD).args(args).arg("--data-dir").arg(dir).output().await.unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// `fleetd device enrol-token --json` for North Clinic, room `room`.
pub async fn enrol_token(dir: &Path, room: &str, ttl: &str) -> EnrolToken {
    enrol_token_of(dir, "North Clinic", room, ttl).await
}

/// `fleetd device enrol-token --json` for `clinic`, room `room`.
pub async fn enrol_token_of(dir: &Path, clinic: &str, room: &str, ttl: &str) -> EnrolToken {
    let args = ["device", "enrol-token", "--clinic", clinic, "--room", room];
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
    enrolled_device_of(f, "North Clinic", room).await
}

/// [`enrolled_device`] for a kiosk of `clinic`.
pub async fn enrolled_device_of(f: &Fleetd, clinic: &str, room: &str) -> Device {
    let token = enrol_token_of(&f.dir, clinic, room, "1h").await.token;
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
    mqtt_with(mqtt_options(f, tls, client_id), 16).await
}

/// What [`mqtt`] connects with, for a test that changes some of it before [`mqtt_with`].
pub fn mqtt_options(f: &Fleetd, tls: rustls::ClientConfig, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", f.mqtt_port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    options
}

/// Connects with `options` (a request queue of `cap`) and reports what it sees.
pub async fn mqtt_with(options: MqttOptions, cap: usize) -> Result<Mqtt, String> {
    let (client, mut eventloop) = AsyncClient::new(options, cap);
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

/// Signs in over HTTPS in two steps (the password, then a TOTP code computed here) and returns
/// the `__Host-tk_session=…` cookie pair, checking the cookie's attributes; or the refusal's
/// status and body.
pub async fn try_sign_in(f: &Fleetd, user: &str, password: &str) -> Result<String, (u16, String)> {
    let body = serde_json::json!({ "username": user, "password": password });
    let res = http(f).post(f.url("/api/login")).json(&body).send().await.unwrap();
    let mut res = refused(res).await?;
    let reply: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    if reply["step"] == "code" {
        let code = next_code(f, user).await.expect("a user made by add_user");
        let body = serde_json::json!({ "pending": reply["pending"], "code": code });
        let sent = http(f).post(f.url("/api/login/code")).json(&body).send().await.unwrap();
        res = refused(sent).await?;
    } else {
        panic!("{user} signed in without a code (add_user sets up two-step sign-in): {reply}");
    }
    Ok(session_cookie(&res))
}

async fn refused(res: reqwest::Response) -> Result<reqwest::Response, (u16, String)> {
    let status = res.status().as_u16();
    match status {
        200 => Ok(res),
        _ => Err((status, res.text().await.unwrap())),
    }
}

/// The session cookie a sign-in set, checked: `__Host-` prefix and its attributes.
pub fn session_cookie(res: &reqwest::Response) -> String {
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-tk_session="), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} missing in {cookie}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

/// Signs in over HTTPS and returns the session cookie pair; panics if refused.
pub async fn sign_in(f: &Fleetd, user: &str, password: &str) -> String {
    match try_sign_in(f, user, password).await {
        Ok(cookie) => cookie,
        Err((status, body)) => panic!("{user} cannot sign in: {status} {body}"),
    }
}

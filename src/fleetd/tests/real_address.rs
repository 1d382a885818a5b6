//! fleetd on a real address: the `fleetd serve` binary and its mosquitto run inside a network
//! namespace of their own that holds 10.77.0.2/24 (a veth pair), and TLS clients in the same
//! namespace, trusting only fleetd's CA, connect to both listeners by that address, by a DNS
//! `--public-name` and by an IP one (as through a NAT). Needs root, `ip` (iproute2) and
//! mosquitto: without them these tests fail, they do not skip.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{FLEETD, WAIT, tls};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// The server's address in its namespace.
const ADDR: &str = "10.77.0.2";
const WEB_PORT: u16 = 18443;
const MQTT_PORT: u16 = 18883;

/// A network namespace with a veth pair, `ADDR`/24 on one end, and loopback up. Dropping it
/// kills whatever still runs in it and deletes it.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `ip` ({e}): these tests need iproute2 (apt-get install iproute2)")
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ip {}: {err} (these tests need root)", args.join(" "));
}

impl Netns {
    fn create(tag: &str) -> Self {
        let name = format!("tkaddr-{}-{tag}", std::process::id());
        let _ = std::process::Command::new("ip").args(["netns", "delete", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        let script = format!(
            "ip link set lo up && ip link add fleet0 type veth peer name fleet1 && \
             ip addr add {ADDR}/24 dev fleet0 && ip link set fleet0 up && ip link set fleet1 up"
        );
        ip(&["netns", "exec", &ns.name, "sh", "-ec", &script]);
        ns
    }

    /// Runs `f` on a thread that has joined this namespace: sockets it opens are in there.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) =
            std::process::Command::new("ip").args(["netns", "pids", &self.name]).output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let pid = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        let deleted =
            std::process::Command::new("ip").args(["netns", "delete", &self.name]).status();
        if !deleted.is_ok_and(|s| s.success()) {
            eprintln!("could not delete network namespace {}: ip netns delete it", self.name);
        }
    }
}

/// `fleetd serve` in `ns` with `args`, once it has said it is ready; returns it and that line.
async fn serve(ns: &Netns, dir: &Path, args: &[&str]) -> (Child, String) {
    assert!(
        Path::new("/usr/sbin/mosquitto").exists(),
        "this test needs mosquitto: apt-get install mosquitto"
    );
    let log = dir.with_extension("log");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, FLEETD, "serve", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("fleetd ready:") {
                return Some(line);
            }
        }
        None
    })
    .await;
    match ready {
        Ok(Some(line)) => (child, line),
        _ => panic!(
            "fleetd never said it was ready; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    }
}

/// SIGTERM; fleetd exits with success.
async fn stop(mut child: Child, dir: &Path) {
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = timeout(WAIT, child.wait()).await.expect("fleetd exits in time").unwrap();
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
    assert!(status.success(), "fleetd exited with {status}; its log:\n{log}");
}

/// A kiosk's certificate and key, issued by fleetd's CA as enrolment would.
fn kiosk_identity(dir: &Path) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let issuer =
        Issuer::from_ca_cert_pem(&read("ca.pem"), KeyPair::from_pem(&read("ca-key.pem")).unwrap())
            .unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "dev-realaddr");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    (vec![cert.der().clone()], key)
}

/// From inside `ns`: a TLS connection to `to` that verifies the server as `name` against
/// `config`'s roots. Over HTTPS (`http`), also a `GET /` that must answer 200.
fn connect(
    ns: &Netns,
    to: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
    http: bool,
) -> Result<(), String> {
    ns.run(|| {
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(config.clone(), server_name)
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .map_err(|e| format!("connect {to}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(|e| format!("{name} via {to}: {e}"))?;
        }
        if http {
            let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
            tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
            let mut head = [0u8; 12];
            tls.read_exact(&mut head).map_err(|e| format!("{name} via {to}: {e}"))?;
            if &head != b"HTTP/1.1 200" {
                return Err(format!("{name} via {to}: {}", String::from_utf8_lossy(&head)));
            }
        }
        Ok(())
    })
}

/// Both listeners, reached at `web` and `mqtt`, accept a verifying client under every name in
/// `good` and under none in `bad`.
fn assert_names(
    ns: &Netns,
    dir: &Path,
    (web, mqtt): (SocketAddr, SocketAddr),
    good: &[&str],
    bad: &[&str],
) {
    let ca = dir.join("ca.pem");
    let browser = Arc::new(tls(&ca, None));
    let kiosk = Arc::new(tls(&ca, Some(kiosk_identity(dir))));
    for name in good {
        connect(ns, web, name, &browser, true).unwrap_or_else(|e| panic!("HTTPS: {e}"));
        connect(ns, mqtt, name, &kiosk, false).unwrap_or_else(|e| panic!("MQTT: {e}"));
    }
    for name in bad {
        let web_err = connect(ns, web, name, &browser, true).expect_err(name);
        let mqtt_err = connect(ns, mqtt, name, &kiosk, false).expect_err(name);
        for err in [web_err, mqtt_err] {
            assert!(err.contains("certificate"), "{name}: {err}");
        }
    }
}

fn addr(port: u16) -> SocketAddr {
    format!("{ADDR}:{port}").parse().unwrap()
}

#[tokio::test]
async fn fleetd_on_a_real_address_is_ready_and_reachable_by_it_and_by_its_public_names() {
    let ns = Netns::create("real");
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("fleetd");
    let listen = ["--listen", &format!("{ADDR}:{WEB_PORT}")];
    let mqtt_listen = ["--mqtt-listen", &format!("{ADDR}:{MQTT_PORT}")];
    let both = [&listen[..], &mqtt_listen[..]].concat();
    let public = ["--public-name", "fleet.clinic.example", "--public-name", "203.0.113.7"];

    let (child, ready) = serve(&ns, &dir, &[&both[..], &public[..]].concat()).await;
    assert_eq!(
        ready,
        format!("fleetd ready: console https://{ADDR}:{WEB_PORT}/ mqtt mqtts://{ADDR}:{MQTT_PORT}")
    );
    let to = (addr(WEB_PORT), addr(MQTT_PORT));
    assert_names(&ns, &dir, to, &[ADDR, "fleet.clinic.example", "203.0.113.7"], &["other.example"]);
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let cert = std::fs::read(dir.join("server.pem")).unwrap();
    let kiosk = Arc::new(tls(&dir.join("ca.pem"), Some(kiosk_identity(&dir))));
    stop(child, &dir).await;

    // Another public name: a new server certificate from the same CA, without the old name; a
    // kiosk certificate issued before still gets in. The new name is under the old one: the CA's
    // name constraints, fixed when it was made, permit only that.
    let renamed = ["--server-name", "fleet2.fleet.clinic.example"];
    let (child, _) = serve(&ns, &dir, &[&both[..], &renamed[..]].concat()).await;
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca, "the CA changed");
    assert_ne!(std::fs::read(dir.join("server.pem")).unwrap(), cert);
    let renamed = "fleet2.fleet.clinic.example";
    assert_names(&ns, &dir, to, &[ADDR, renamed], &["fleet.clinic.example"]);
    connect(&ns, to.1, renamed, &kiosk, false).unwrap();
    stop(child, &dir).await;
}

#[tokio::test]
async fn fleetd_on_every_address_is_reachable_by_each_interface_address() {
    let ns = Netns::create("any");
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("fleetd");
    let args = [
        "--listen",
        &format!("0.0.0.0:{WEB_PORT}"),
        "--mqtt-listen",
        &format!("0.0.0.0:{MQTT_PORT}"),
        "--public-name",
        "fleet.clinic.example",
    ];
    let (child, ready) = serve(&ns, &dir, &args).await;
    // fleetd's own client reached its broker by loopback.
    assert_eq!(
        ready,
        format!(
            "fleetd ready: console https://0.0.0.0:{WEB_PORT}/ mqtt mqtts://127.0.0.1:{MQTT_PORT}"
        )
    );
    let good = [ADDR, "127.0.0.1", "localhost", "fleet.clinic.example"];
    assert_names(&ns, &dir, (addr(WEB_PORT), addr(MQTT_PORT)), &good, &["10.77.0.3"]);
    stop(child, &dir).await;
}

#[tokio::test]
async fn a_bad_public_name_is_refused_at_start_with_the_name_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(FLEETD)
        .args(["serve", "--listen", "127.0.0.1:0", "--public-name", "fleet clinic.example"])
        .arg("--data-dir")
        .arg(tmp.path().join("fleetd"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"fleet clinic.example\""), "{err}");
    assert!(!tmp.path().join("fleetd").exists(), "fleetd started anyway");
}

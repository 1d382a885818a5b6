//! Config delivery through faults, end to end on loopback: fleetd restarting (with CLI changes
//! made while it was down), its supervised mosquitto killed (a broker without persistence
//! forgets retained messages: fleetd sends them again), and an external mosquitto started and
//! configured by the test as `fleetd serve --help` documents for `--mqtt-url`. Simulated
//! kiosks as in `rollout.rs`. Needs mosquitto: without it these tests fail, they do not skip.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Device, Fleetd, cli, enrol_token, enrolled_device, free_port, sim, spawn_fleetd, start_on,
    stop, stop_fleetd, wait_ready,
};
use telekiosk_protocol::api::{FleetStatus, RolloutInfo, RolloutStatus};
use telekiosk_protocol::device::Presence;
use telekiosk_sim::{Answer, Kiosk};

const GROUP: &str = "North Clinic";

async fn roll_out(f: &Fleetd, body: serde_json::Value) -> RolloutInfo {
    let file = f.dir.with_extension("body.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let (ok, _, err) =
        cli(&f.dir, &["config", "set", "--group", GROUP, "--file", file.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let args = ["config", "rollout", "--group", GROUP, "--first-wave-percent", "100", "--json"];
    let (ok, out, err) = cli(&f.dir, &args).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

async fn status(dir: &Path) -> FleetStatus {
    let (ok, out, err) = cli(dir, &["config", "status", "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

async fn completed(f: &Fleetd, id: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = status(&f.dir).await.rollouts.into_iter().find(|r| r.id == id).unwrap();
        if r.progress.status == RolloutStatus::Completed {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "rollout {r:?}\n{}", f.logged());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn kiosks(f: &Fleetd, n: usize) -> (Vec<Device>, Vec<Kiosk>) {
    let mut devices = Vec::new();
    for i in 0..n {
        devices.push(enrolled_device(f, &(i + 1).to_string()).await);
    }
    let sims: Vec<_> = devices.iter().map(|d| sim(f, d, Answer::Accept)).collect();
    for s in &sims {
        s.until("connected", |seen| seen.connections > 0).await;
    }
    (devices, sims)
}

/// The pid of fleetd's mosquitto child.
fn mosquitto_of(fleetd_pid: u32) -> i32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …
        let Some((head, rest)) = stat.split_once(") ") else { continue };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if head.ends_with("(mosquitto") && ppid == Some(fleetd_pid) {
            return head.split(' ').next().unwrap().parse().unwrap();
        }
    }
    panic!("fleetd {fleetd_pid} has no mosquitto child");
}

async fn until_logged(f: &Fleetd, line: &str, times: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while f.logged().matches(line).count() < times {
        assert!(tokio::time::Instant::now() < deadline, "{line:?} not {times}× in\n{}", f.logged());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosks_end_on_the_latest_config_after_fleetd_and_broker_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (web_port, mqtt_port) = (free_port(), free_port());
    let f = start_on(&dir, web_port, mqtt_port).await;
    let (devices, mut sims) = kiosks(&f, 3).await;
    let first = roll_out(&f, serde_json::json!({})).await;
    completed(&f, first.id).await;

    // fleetd (and its broker) stop; meanwhile an admin changes the config with the CLI.
    stop_fleetd(f).await;
    let f_down = dummy(&dir, web_port, mqtt_port);
    let second = roll_out(&f_down, serde_json::json!({ "idle_timeout_secs": 120 })).await;
    let f = start_on(&dir, web_port, mqtt_port).await;
    completed(&f, second.id).await;
    for s in &sims {
        s.until("applied the second version", |seen| seen.applied == second.version).await;
    }

    // The broker crashes: fleetd's supervisor restarts it, empty; fleetd reconnects and sends
    // every retained config again.
    let resent = "re-sending every device's retained config";
    let before = f.logged().matches(resent).count();
    let pid = mosquitto_of(f.child.id().unwrap());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    until_logged(&f, resent, before + 1).await;
    // A kiosk that comes up now gets the latest config from the retained message alone.
    sims.pop().unwrap().stop();
    let fresh = sim(&f, &devices[2], Answer::Accept);
    fresh
        .until("got the retained config", |seen| seen.configs.first() == Some(&second.version))
        .await;
    for s in &sims {
        s.until("came back", |seen| seen.connections >= 3).await;
        assert_eq!(s.applied(), second.version);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(&f.dir).await;
        let online = s.devices.iter().filter(|d| {
            d.state.as_ref().is_some_and(|st| {
                st.presence == Presence::Online && st.config_version == second.version
            })
        });
        if online.count() == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", s.devices);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop(f).await;
}

/// A `Fleetd` value for the CLI helpers while no server runs.
fn dummy(dir: &Path, web_port: u16, mqtt_port: u16) -> Fleetd {
    let child = tokio::process::Command::new("true").kill_on_drop(true).spawn().unwrap();
    Fleetd {
        child,
        dir: dir.to_path_buf(),
        ca: dir.join("ca.pem"),
        web_port,
        mqtt_port,
        log: dir.with_extension("log"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleetd_delivers_config_through_an_external_broker_configured_as_documented() {
    assert!(Path::new("/usr/sbin/mosquitto").exists(), "this test needs mosquitto");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // The operator makes fleetd's CA first (any CLI command that needs it does).
    enrol_token(&dir, "0", "1h").await;
    let (web_port, mqtt_port) = (free_port(), free_port());
    let url = format!("mqtts://127.0.0.1:{mqtt_port}");
    let child = spawn_fleetd(&dir, web_port, &["--mqtt-url", &url]);
    // fleetd writes the CRL at start; the broker needs it.
    let crl = dir.join("crl.pem");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !crl.exists() {
        assert!(tokio::time::Instant::now() < deadline, "fleetd wrote no crl.pem");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // As `fleetd serve --help` says for --mqtt-url: client certificates from fleetd's CA, the
    // CN as user name and client id, fleetd's packet limit, no anonymous clients, fleetd's
    // CRL, and fleetd's ACL.
    let acl = tmp.path().join("broker.acl");
    std::fs::write(
        &acl,
        "user fleetd\ntopic readwrite telekiosk/#\n\n\
         pattern read telekiosk/v1/dev/%u/config\npattern read telekiosk/v1/dev/%u/cmd\n\
         pattern read telekiosk/v1/dev/%u/visit/in\npattern write telekiosk/v1/dev/%u/state\n\
         pattern write telekiosk/v1/dev/%u/visit/out\n\
         pattern write telekiosk/v1/dev/%u/cmd/result\n",
    )
    .unwrap();
    let user = if nix::unistd::geteuid().is_root() { "user root\n" } else { "" };
    let conf = format!(
        "persistence false\nlog_dest stderr\n{user}listener {mqtt_port} 127.0.0.1\n\
         cafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n\
         use_identity_as_username true\nuse_username_as_clientid true\nmax_packet_size 66560\n\
         allow_anonymous false\ncrlfile {crl}\nacl_file {acl}\n",
        ca = dir.join("ca.pem").display(),
        cert = dir.join("server.pem").display(),
        key = dir.join("server-key.pem").display(),
        crl = crl.display(),
        acl = acl.display(),
    );
    let conf_path = tmp.path().join("broker.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let broker_log = std::fs::File::create(tmp.path().join("broker.log")).unwrap();
    let mut broker = tokio::process::Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf_path)
        .stderr(broker_log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let f = wait_ready(child, &dir, web_port, mqtt_port).await;
    let (_devices, sims) = kiosks(&f, 2).await;
    let rollout = roll_out(&f, serde_json::json!({ "log_level": "debug" })).await;
    completed(&f, rollout.id).await;
    for s in &sims {
        assert_eq!(s.applied(), rollout.version);
        assert!(s.seen().bad.is_empty());
    }
    let logged = std::fs::read_to_string(tmp.path().join("broker.log")).unwrap();
    assert!(
        logged.contains("as fleetd") || logged.contains("u'fleetd'"),
        "fleetd connected by its CN:\n{logged}"
    );
    stop_fleetd(f).await;
    broker.kill().await.unwrap();
}

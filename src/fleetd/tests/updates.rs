//! OS updates on the fleetd side, end to end on loopback: bundles added with the CLI and
//! served over mutual TLS with range requests (a kiosk on a link that drops resumes), and an
//! update rollout whose waves follow what kiosks report of their OS, halting when the new
//! version fails. The kiosks are bare MQTT clients with enrolled certificates that this test
//! drives itself. Needs mosquitto: fails without it, never skips.

mod common;

use std::time::Duration;

use common::{Device, Fleetd, cli, device_tls, enrolled_device, http, mqtt, start, stop};
use rumqttc::QoS;
use telekiosk_protocol::api::{BundleInfo, RolloutStatus, UpdateInfo};
use telekiosk_protocol::command::{Command, CommandPayload, SignedCommand};
use telekiosk_protocol::device::{DeviceState, Presence};
use telekiosk_protocol::update::{FailedUpdate, OsState};
use telekiosk_protocol::{encode, topics};

/// A file that starts like a RAUC bundle (squashfs magic), `len` bytes.
fn fake_bundle(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut bytes = b"hsqs".to_vec();
    bytes.extend((0..len - 4).map(|i| (i * 7 % 251) as u8));
    let path = dir.join(format!("bundle-{len}.raucb"));
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

async fn add(f: &Fleetd, file: &std::path::Path, version: &str) -> (bool, String, String) {
    cli(&f.dir, &["update", "add", file.to_str().unwrap(), "--version", version, "--json"]).await
}

fn client(f: &Fleetd, device: &Device) -> reqwest::Client {
    reqwest::Client::builder().use_preconfigured_tls(device_tls(f, device)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_served_in_ranges_to_active_kiosks_only() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let device = enrolled_device(&f, "1").await;

    let (file, bytes) = fake_bundle(tmp.path(), 300_000);
    let (ok, out, err) = add(&f, &file, "2.0").await;
    assert!(ok, "{err}");
    let bundle: BundleInfo = serde_json::from_str(&out).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!((bundle.version.as_str(), bundle.size), ("2.0", 300_000));
    assert_eq!(bundle.sha256, hex);

    // Refused, with the reason: the same version again, the same file as another version,
    // and a file that is not a bundle.
    let (ok, _, err) = add(&f, &file, "2.0").await;
    assert!(!ok && err.contains("version \"2.0\" is already there"), "{err}");
    let (ok, _, err) = add(&f, &file, "2.1").await;
    assert!(!ok && err.contains("already there as version \"2.0\""), "{err}");
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a bundle").unwrap();
    let (ok, _, err) = add(&f, &text, "2.2").await;
    assert!(!ok && err.contains("does not start like a RAUC bundle"), "{err}");

    let url = f.url(&telekiosk_protocol::update::bundle_path(&bundle.sha256));
    let kiosk = client(&f, &device);
    let whole = kiosk.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &bytes[..]);
    // The rest after a dropped connection.
    let rest = kiosk.get(&url).header("range", "bytes=123456-").send().await.unwrap();
    assert_eq!(rest.status(), 206);
    let range = rest.headers()["content-range"].to_str().unwrap().to_string();
    assert_eq!(range, "bytes 123456-299999/300000");
    assert_eq!(rest.bytes().await.unwrap().as_ref(), &bytes[123_456..]);

    // No client certificate, an unknown bundle, a revoked kiosk.
    let anonymous = http(&f).get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let unknown = f.url(&telekiosk_protocol::update::bundle_path(&"0".repeat(64)));
    assert_eq!(kiosk.get(&unknown).send().await.unwrap().status(), 404);
    let (ok, _, err) = cli(&f.dir, &["device", "revoke", &device.id]).await;
    assert!(ok, "{err}");
    // A fresh connection (the revoked certificate may still be accepted by TLS until the CRL
    // is reloaded; the registry refuses it either way).
    let refused = client(&f, &device).get(&url).send().await;
    assert!(refused.map_or(true, |r| r.status() == 403), "a revoked kiosk got the bundle");

    let all = ["--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"];
    let (ok, out, err) = cli(&f.dir, &[&["audit", "export"][..], &all].concat()).await;
    assert!(ok, "{err}");
    assert!(out.contains("update.bundle_add") && out.contains("device.bundle_fetch"), "{out}");
    stop(f).await;
}

/// A bare kiosk: its MQTT connection, subscribed to its commands, reporting `os`.
struct Bare {
    id: String,
    mqtt: common::Mqtt,
}

impl Bare {
    async fn connect(f: &Fleetd, device: &Device) -> Self {
        let mqtt = mqtt(f, device_tls(f, device), &device.id).await.unwrap();
        mqtt.client.subscribe(topics::cmd(&device.id), QoS::AtLeastOnce).await.unwrap();
        let mut bare = Self { id: device.id.clone(), mqtt };
        bare.mqtt.until(|s| matches!(s, common::Seen::SubAck(_))).await;
        bare
    }

    async fn report(&self, os: OsState) {
        let mut state = DeviceState::offline();
        state.presence = Presence::Online;
        state.software = "test".into();
        state.os = Some(Box::new(os));
        let topic = topics::state(&self.id);
        self.mqtt.client.publish(topic, QoS::AtLeastOnce, true, encode(&state)).await.unwrap();
    }

    /// The next install order fleetd sends.
    async fn order(&mut self) -> telekiosk_protocol::update::UpdateOrder {
        loop {
            let common::Seen::Publish { payload, .. } = self.mqtt.next().await else { continue };
            let signed: SignedCommand = serde_json::from_slice(&payload).unwrap();
            let cmd: CommandPayload = serde_json::from_str(&signed.payload).unwrap();
            if let Command::InstallUpdate(order) = cmd.command {
                return order;
            }
        }
    }
}

fn on(version: &str) -> OsState {
    OsState { version: version.into(), slot: "A".into(), ..OsState::default() }
}

async fn update_status(f: &Fleetd, id: i64) -> UpdateInfo {
    let (ok, out, err) = cli(&f.dir, &["update", "status", &id.to_string(), "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

async fn until_status(f: &Fleetd, id: i64, want: impl Fn(&UpdateInfo) -> bool) -> UpdateInfo {
    for _ in 0..150 {
        let u = update_status(f, id).await;
        if want(&u) {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("update {id} never got there: {:?}\n{}", update_status(f, id).await, f.logged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_rollout_goes_in_waves_by_running_version_and_halts_when_it_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let mut devices = Vec::new();
    for room in ["1", "2", "3"] {
        devices.push(enrolled_device(&f, room).await);
    }
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    let mut kiosks = Vec::new();
    for d in &devices {
        let k = Bare::connect(&f, d).await;
        k.report(on("1.0")).await;
        kiosks.push(k);
    }
    let (file, _) = fake_bundle(tmp.path(), 5000);
    let (ok, out, err) = add(&f, &file, "2.0").await;
    assert!(ok, "{err}");
    let bundle: BundleInfo = serde_json::from_str(&out).unwrap();

    // Refused: no such version.
    let base = ["update", "rollout", "--group", "North Clinic", "--json"];
    let (ok, _, err) = cli(&f.dir, &[&base[..], &["--version", "9.9"]].concat()).await;
    assert!(!ok && err.contains("no bundle has version \"9.9\""), "{err}");

    let args = [
        &base[..],
        &["--version", "2.0", "--first-wave-percent", "1", "--failure-threshold-percent", "0"],
        &["--health-timeout", "2m"],
    ]
    .concat();
    let (ok, out, err) = cli(&f.dir, &args).await;
    assert!(ok, "{err}");
    let started: UpdateInfo = serde_json::from_str(&out).unwrap();
    assert_eq!(started.progress.waves.iter().map(|w| w.devices).collect::<Vec<_>>(), [1, 2]);

    // Wave 1: the first kiosk is told what to fetch, signed.
    let order = kiosks[0].order().await;
    assert_eq!((order.version.as_str(), order.sha256.as_str()), ("2.0", bundle.sha256.as_str()));
    assert_eq!((order.size, order.health_timeout_secs), (5000, 120));
    // A second rollout of the group is refused while this one runs.
    let (ok, _, err) = cli(&f.dir, &[&base[..], &["--version", "2.0"]].concat()).await;
    assert!(!ok && err.contains("is still running"), "{err}");

    // It reports 2.0 running: wave 2 goes out.
    kiosks[0].report(on("2.0")).await;
    let second = kiosks[1].order().await;
    assert_eq!(second.version, "2.0");
    kiosks[2].order().await;
    let u = until_status(&f, started.id, |u| u.progress.current_wave == 2).await;
    assert_eq!((u.progress.waves[0].acked, u.progress.waves[1].pending), (1, 2));

    // The second kiosk's new version did not become healthy and it went back: the rollout
    // halts (threshold 0 %) and says why; the device shows the kiosk's reason.
    let reason = "telekiosk did not report healthy within 120 s";
    let failed = FailedUpdate { version: "2.0".into(), reason: reason.into() };
    kiosks[1].report(OsState { failed: Some(failed), ..on("1.0") }).await;
    let u = until_status(&f, started.id, |u| u.progress.status == RolloutStatus::Halted).await;
    assert!(u.progress.halt_reason.as_deref().unwrap().contains("1 of 3 devices"), "{u:?}");
    let dev = u.progress.devices.iter().find(|d| d.device_id == kiosks[1].id).unwrap();
    assert_eq!((dev.outcome.as_str(), dev.reason.as_deref()), ("refused", Some(reason)));
    stop(f).await;
}

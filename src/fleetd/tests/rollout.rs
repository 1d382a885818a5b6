//! Config rollouts end to end on loopback: the real `fleetd serve` with a real mosquitto, a
//! fleet of simulated kiosks (enrolled devices with software keys, see `telekiosk-sim`) that
//! verify each signed config and answer with their state. Needs mosquitto: without it these
//! tests fail, they do not skip.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Device, Fleetd, cli, enrolled_device, sim, start, stop};
use telekiosk_protocol::api::{DeviceDetail, FleetStatus, RolloutInfo, RolloutStatus};
use telekiosk_sim::{Answer, Kiosk};

const GROUP: &str = "North Clinic";

/// Enrols `n` kiosks, sorted by id: the engine sends waves in id order, so index i is the
/// i-th device sent.
async fn enrol(f: &Fleetd, n: usize) -> Vec<Device> {
    let mut devices = Vec::new();
    for i in 0..n {
        devices.push(enrolled_device(f, &(i + 1).to_string()).await);
    }
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    devices
}

/// Starts a simulated kiosk for each device that has an answer, and waits until they are
/// connected.
async fn sims(
    f: &Fleetd,
    devices: &[Device],
    answer: impl Fn(usize) -> Option<Answer>,
) -> Vec<Option<Kiosk>> {
    let sims: Vec<Option<Kiosk>> =
        devices.iter().enumerate().map(|(i, d)| answer(i).map(|a| sim(f, d, a))).collect();
    for s in sims.iter().flatten() {
        s.until("connected", |seen| seen.connections > 0).await;
    }
    sims
}

/// Enrols `n` kiosks and starts a simulated kiosk for each; `refusing` of them refuse config.
async fn fleet(
    f: &Fleetd,
    n: usize,
    refusing: impl Fn(usize) -> bool,
) -> (Vec<Device>, Vec<Kiosk>) {
    let devices = enrol(f, n).await;
    let answer = |i| Some(if refusing(i) { Answer::Refuse } else { Answer::Accept });
    let sims = sims(f, &devices, answer).await.into_iter().flatten().collect();
    (devices, sims)
}

/// `fleetd config set --group GROUP --file F` with `body`.
async fn set_group(dir: &Path, body: &serde_json::Value) -> (bool, String, String) {
    let file = dir.with_extension(format!("body-{}.json", rand_suffix()));
    std::fs::write(&file, body.to_string()).unwrap();
    cli(dir, &["config", "set", "--group", GROUP, "--file", file.to_str().unwrap()]).await
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

async fn rollout(dir: &Path, extra: &[&str]) -> RolloutInfo {
    let args = [&["config", "rollout", "--group", GROUP, "--json"][..], extra].concat();
    let (ok, out, err) = cli(dir, &args).await;
    assert!(ok, "rollout refused: {err}");
    serde_json::from_str(&out).unwrap()
}

async fn status(dir: &Path) -> FleetStatus {
    let (ok, out, err) = cli(dir, &["config", "status", "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Waits until rollout `id` is in a final state; returns it.
async fn finished(f: &Fleetd, id: i64) -> RolloutInfo {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&f.dir).await;
        let r = s.rollouts.into_iter().find(|r| r.id == id).expect("the rollout is listed");
        if !matches!(r.progress.status, RolloutStatus::Running | RolloutStatus::Paused) {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "rollout still {r:?}\n{}", f.logged());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_halts_at_the_failure_threshold_and_never_reaches_later_waves() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    // Waves of 1, 2, 4, 3 devices in id order: the 2nd, 3rd and 4th devices refuse.
    let (devices, sims) = fleet(&f, 10, |i| (1..=3).contains(&i)).await;

    let (ok, _, err) = set_group(&f.dir, &serde_json::json!({ "idle_timeout_secs": 5 })).await;
    assert!(!ok, "an out-of-range body is refused");
    assert!(err.contains("field `idle_timeout_secs` is invalid: 5 is outside 10–600"), "{err}");
    let (ok, _, err) = set_group(&f.dir, &serde_json::json!({ "colour": "red" })).await;
    assert!(!ok && err.contains("unknown field `colour`"), "{err}");
    let (ok, out, err) = set_group(&f.dir, &serde_json::json!({ "idle_timeout_secs": 90 })).await;
    assert!(ok, "{out}{err}");

    let started = rollout(&f.dir, &[]).await;
    assert_eq!(started.progress.waves.iter().map(|w| w.devices).collect::<Vec<_>>(), [1, 2, 4, 3]);
    let done = finished(&f, started.id).await;
    assert_eq!(done.progress.status, RolloutStatus::Halted, "{done:?}");
    // It halts at the first refusal (1 of 3 > 20 %), so the second may not be counted.
    assert!(done.progress.targeted == 3 && done.progress.failed >= 1, "{done:?}");
    assert!(done.progress.halt_reason.unwrap().contains("of 3 devices targeted so far"));

    // Give a wrongly sent wave time to arrive: none must.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, s) in sims.iter().enumerate() {
        let expected = if i < 3 { vec![started.version] } else { vec![] };
        assert_eq!(s.configs(), expected, "device {i} ({})", s.id);
        assert!(s.seen().bad.is_empty());
    }
    assert_eq!(sims[0].applied(), started.version);
    let (_, out, _) = cli(&f.dir, &["device", "show", &devices[1].id, "--json"]).await;
    let detail: DeviceDetail = serde_json::from_str(&out).unwrap();
    let refusal = detail.config.refusal.expect("the refusal is shown");
    assert_eq!(refusal.version, started.version);
    assert!(f.logged().contains("rollout halted"), "an audit line says so");
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_that_accepts_completes_in_waves_and_a_rollback_is_a_higher_version() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let (devices, sims) = fleet(&f, 10, |_| false).await;
    let (ok, _, err) = set_group(&f.dir, &serde_json::json!({ "room_name": "Exam" })).await;
    assert!(ok, "{err}");
    // A per-device override, merged over the group body.
    let file = f.dir.with_extension("override.json");
    std::fs::write(&file, r#"{"media": {"max_fps": 15}}"#).unwrap();
    let args = ["config", "set", "--device", &devices[0].id, "--file", file.to_str().unwrap()];
    let (ok, _, err) = cli(&f.dir, &args).await;
    assert!(ok, "{err}");

    let first = rollout(&f.dir, &[]).await;
    let done = finished(&f, first.id).await;
    assert_eq!(done.progress.status, RolloutStatus::Completed, "{done:?}");
    assert_eq!(done.progress.waves.iter().map(|w| w.acked).collect::<Vec<_>>(), [1, 2, 4, 3]);
    for s in &sims {
        s.until("applied v1", |seen| seen.applied == first.version).await;
    }
    let (_, out, _) = cli(&f.dir, &["config", "show", "--device", &devices[0].id, "--json"]).await;
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["effective"]["media"]["max_fps"], 15);
    assert_eq!(shown["effective"]["room_name"], "Exam");

    let (ok, _, err) = set_group(&f.dir, &serde_json::json!({ "idle_timeout_secs": 300 })).await;
    assert!(ok, "{err}");
    let second = rollout(&f.dir, &["--first-wave-percent", "100"]).await;
    assert_eq!(finished(&f, second.id).await.progress.status, RolloutStatus::Completed);
    let (ok, out, err) = cli(&f.dir, &["config", "rollback", "--group", GROUP, "--json"]).await;
    assert!(ok, "{err}");
    let back: RolloutInfo = serde_json::from_str(&out).unwrap();
    assert_eq!(back.kind, "rollback");
    assert!(back.version > second.version, "a rollback is a new, higher version");
    assert_eq!(finished(&f, back.id).await.progress.status, RolloutStatus::Completed);
    for s in &sims {
        s.until("applied the rollback", |seen| seen.applied == back.version).await;
    }
    let (_, out, _) = cli(&f.dir, &["config", "show", "--group", GROUP, "--json"]).await;
    let group: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(group["body"], serde_json::json!({ "room_name": "Exam" }), "the previous body");

    // A kiosk approved now gets the group's current config without waiting for a rollout.
    let late = enrolled_device(&f, "11").await;
    let kiosk = sim(&f, &late, Answer::Accept);
    kiosk.until("got the group's config", |seen| seen.applied == back.version).await;
    assert!(f.logged().contains("config sent to a device that joined after the group's rollout"));
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_device_holds_its_wave_and_pause_resume_abort_reach_the_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let devices = enrol(&f, 4).await;
    // The first wave's only device is offline for now.
    let mut kiosks = sims(&f, &devices, |i| (i > 0).then_some(Answer::Accept)).await;
    let (ok, _, err) = set_group(&f.dir, &serde_json::json!({})).await;
    assert!(ok, "{err}");
    let started = rollout(&f.dir, &["--first-wave-percent", "25"]).await;
    let id = started.id.to_string();
    let current = |s: &FleetStatus| {
        (s.rollouts[0].progress.current_wave, s.rollouts[0].progress.waves[0].acked)
    };
    let until = |want: (u32, u32)| {
        let dir = f.dir.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let now = current(&status(&dir).await);
                if now.0 >= want.0 && now.1 >= want.1 {
                    return;
                }
                assert!(tokio::time::Instant::now() < deadline, "stuck at {now:?}, want {want:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    until((1, 0)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(current(&status(&f.dir).await), (1, 0), "an offline device is pending");

    let (ok, out, err) = cli(&f.dir, &["config", "pause", &id]).await;
    assert!(ok && out.contains("paused"), "{out}{err}");
    // It comes online, gets the retained config and acknowledges; the rollout stays paused.
    kiosks[0] = Some(sim(&f, &devices[0], Answer::Accept));
    until((1, 1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused = status(&f.dir).await.rollouts.remove(0);
    assert_eq!(
        (paused.progress.status, paused.progress.current_wave),
        (RolloutStatus::Paused, 1),
        "{paused:?}"
    );
    let received = kiosks.iter().flatten().filter(|s| !s.configs().is_empty()).count();
    assert_eq!(received, 1, "nothing beyond the first wave while paused");
    let (ok, _, err) = cli(&f.dir, &["config", "resume", &id]).await;
    assert!(ok, "{err}");
    until((2, 1)).await;
    let (ok, out, err) = cli(&f.dir, &["config", "abort", &id]).await;
    // The three remaining devices may all have acknowledged already: then it is completed.
    assert!(ok || err.contains("completed"), "{out}{err}");
    let (ok, _, err) = cli(&f.dir, &["config", "pause", "999"]).await;
    assert!(!ok && err.contains("there is no rollout 999"), "{err}");
    stop(f).await;
}

/// Review L15: one canary kiosk that (falsely) refuses halts the rollout; a plain resume
/// cannot lift the halt, `--override-halt` can, and the rest of the group then gets the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_can_override_the_halt_caused_by_one_refusing_canary() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let (devices, sims) = fleet(&f, 4, |i| i == 0).await;
    let (ok, out, err) = set_group(&f.dir, &serde_json::json!({ "idle_timeout_secs": 90 })).await;
    assert!(ok, "{out}{err}");
    let started = rollout(&f.dir, &["--canary", &devices[0].id]).await;
    let halted = finished(&f, started.id).await;
    assert_eq!(halted.progress.status, RolloutStatus::Halted, "{halted:?}");
    assert_eq!(halted.progress.targeted, 1, "{halted:?}");

    let id = started.id.to_string();
    let (ok, _, err) = cli(&f.dir, &["config", "resume", &id]).await;
    assert!(!ok && err.contains("only a paused rollout"), "a plain resume lifted a halt: {err}");
    let (ok, out, err) = cli(&f.dir, &["config", "resume", "--override-halt", &id, "--json"]).await;
    assert!(ok, "the override was refused: {err}");
    let resumed: RolloutInfo = serde_json::from_str(&out).unwrap();
    assert_eq!(resumed.progress.status, RolloutStatus::Running, "{resumed:?}");

    let done = finished(&f, started.id).await;
    assert_eq!(done.progress.status, RolloutStatus::Completed, "{done:?}");
    for s in &sims[1..] {
        s.until("the version applied", |seen| seen.applied == started.version).await;
    }
    let range = ["--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"];
    let audit = cli(&f.dir, &[&["audit", "export"][..], &range].concat()).await;
    assert!(audit.1.contains("rollout.override_halt"), "not audited: {}{}", audit.1, audit.2);
    stop(f).await;
}

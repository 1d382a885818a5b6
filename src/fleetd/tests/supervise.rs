//! A panic in one of fleetd's supervised background tasks (review M9, "not tested" 11): fleetd
//! logs which part panicked and exits non-zero, so the service manager restarts it, and stops its
//! broker on the way out. The panic is injected with the debug-only `FLEETD_TEST_PANIC` hook
//! (see `supervise.rs`); the health route's answer while a part is down is tested in
//! `http/health.rs`.

mod common;

use std::process::Stdio;

use common::{FLEETD, WAIT, assert_port_closes, free_port, wait_ready};
use tokio::process::Command;
use tokio::time::timeout;

/// Starts fleetd with `part` told to panic; returns its exit status and its log.
async fn run_with_panic_in(part: &str) -> (std::process::ExitStatus, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (web_port, mqtt_port) = (free_port(), free_port());
    let log = std::fs::File::create(dir.with_extension("log")).unwrap();
    let child = Command::new(FLEETD)
        .arg("serve")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{web_port}")])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
        .env("FLEETD_TEST_PANIC", part)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut f = wait_ready(child, &dir, web_port, mqtt_port).await;
    let status = timeout(WAIT, f.child.wait()).await.expect("fleetd exits by itself").unwrap();
    assert_port_closes(mqtt_port).await;
    (status, f.logged())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_signalling_hub_makes_fleetd_exit_non_zero_naming_it() {
    let (status, log) = run_with_panic_in("signalling hub").await;
    assert!(!status.success(), "fleetd exited with {status} after its hub panicked:\n{log}");
    assert!(log.contains("`signalling hub` panicked"), "the log does not name the part:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_revocation_watcher_makes_fleetd_exit_non_zero_naming_it() {
    let (status, log) = run_with_panic_in("revocation watcher").await;
    assert!(!status.success(), "fleetd exited with {status} after its watcher panicked:\n{log}");
    assert!(
        log.contains("`revocation watcher` panicked"),
        "the log does not name the part:\n{log}"
    );
}

//! The data directory is owner-only: every file fleetd creates there is 0600 (directories
//! 0700), and `serve` refuses a directory its group or others can enter (review L3).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{WAIT, add_user, free_port, spawn_fleetd, start, stop};
use tokio::time::timeout;

/// Every entry of `dir` whose mode lets the group or others in, with its mode.
fn open_entries(dir: &Path) -> Vec<String> {
    let mut open = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        if mode & 0o077 != 0 {
            open.push(format!("{} {:o}", entry.path().display(), mode & 0o777));
        }
        if entry.file_type().unwrap().is_dir() {
            open.extend(open_entries(&entry.path()));
        }
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_in_a_fresh_data_directory_is_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password", "clinician").await;
    let f = start(&dir).await;
    let running = ["fleetd.db", "fleetd.db-wal", "fleetd.db-shm", "mosquitto.conf"];
    let running = running.iter().chain(&["mosquitto.acl", "crl.pem", "ca-key.pem"]);
    for name in running {
        assert!(dir.join(name).exists(), "{name} is missing while fleetd runs");
    }
    assert_eq!(open_entries(&dir), Vec::<String>::new(), "open while running");
    stop(f).await;
    assert!(dir.join("audit-head").exists(), "audit-head is missing after a stop");
    assert_eq!(open_entries(&dir), Vec::<String>::new(), "open after a stop");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_data_directory_others_can_read_and_names_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mqtt = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_fleetd(&dir, free_port(), &["--mqtt-listen", &mqtt]);
    let status = timeout(WAIT, child.wait()).await.expect("fleetd exits in time").unwrap();
    assert!(!status.success(), "fleetd started on a 0755 data directory");
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    let dir = dir.canonicalize().unwrap();
    assert!(log.contains(&format!("chmod 700 {}", dir.display())), "{log}");
    assert!(!dir.join("fleetd.db").exists(), "fleetd created its database before refusing");
}

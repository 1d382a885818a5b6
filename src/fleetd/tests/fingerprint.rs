//! Review M5: the pending-device lists show the short key fingerprint the kiosk shows while it
//! waits (`telekiosk_protocol::fingerprint`), so an admin can compare them before approving:
//! `fleetd device list` (text and `--json`), `fleetd device show`, and the admin API.

mod common;

use common::{add_user, cli, enrol_token, http, post_enrol, sign_in, start, stop};
use telekiosk_protocol::fingerprint::key_fingerprint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_device_is_listed_with_the_fingerprint_of_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "root", "root-password", "admin").await;
    let f = start(&dir).await;
    let (key, csr) = common::device_key();
    let token = enrol_token(&dir, "4", "1h").await.token;
    let (status, reply) = post_enrol(&f, &token, &csr).await;
    assert_eq!(status, 200, "{reply}");
    let id = reply["device_id"].as_str().unwrap().to_string();
    let expected = key_fingerprint(key.public_key_raw());
    assert_eq!(expected.len(), 19, "{expected}");

    let (ok, out, err) = cli(&dir, &["device", "list"]).await;
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("pending") && line.contains(&format!("key {expected}")), "{line}");

    let (ok, out, err) = cli(&dir, &["device", "list", "--json"]).await;
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let device = listed.as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).unwrap();
    assert_eq!(device["key_fingerprint"], expected.as_str(), "{device}");

    let (ok, out, err) = cli(&dir, &["device", "show", &id]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&expected), "{out}");

    let cookie = sign_in(&f, "root", "root-password").await;
    let res = http(&f).get(f.url("/api/admin/devices")).header("cookie", cookie).send().await;
    let devices: serde_json::Value = res.unwrap().json().await.unwrap();
    let device = devices.as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).unwrap();
    assert_eq!(device["key_fingerprint"], expected.as_str(), "{device}");
    stop(f).await;
}

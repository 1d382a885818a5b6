//! Signed commands and the admin API, end to end on loopback: a simulated kiosk
//! (`telekiosk-sim`) receives a command, checks its signature with the key it pinned at
//! enrolment, and answers; the result shows in `fleetd device show` and the API. Needs
//! mosquitto: fails without it, never skips.

mod common;

use std::time::Duration;

use common::{add_user, cli, enrolled_device, http, sign_in, sim, start, stop};
use serde_json::json;
use telekiosk_protocol::api::{CommandInfo, CommandStatus, DeviceDetail, FleetDevice};
use telekiosk_protocol::command::{Command, CommandOutcome};
use telekiosk_sim::Answer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_gets_a_signed_identify_command_and_its_result_shows_in_device_show() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let device = enrolled_device(&f, "1").await;
    let kiosk = sim(&f, &device, Answer::Accept);
    kiosk.until("connected", |s| s.connections > 0).await;

    let args =
        ["device", "cmd", &device.id, "identify", "--seconds", "5", "--wait", "20", "--json"];
    let (ok, out, err) = cli(&f.dir, &args).await;
    assert!(ok, "{out}{err}\n{}", f.logged());
    let info: CommandInfo = serde_json::from_str(&out).unwrap();
    assert_eq!(info.status, CommandStatus::Answered);
    assert_eq!(info.result.as_ref().unwrap().outcome, CommandOutcome::Done);

    // What the kiosk got verified with its pinned key (the simulator checks every signature).
    {
        let seen = kiosk.seen();
        assert!(seen.bad.is_empty(), "{:?}", seen.bad);
        let got = &seen.commands[0];
        assert_eq!(
            (got.command.clone(), got.command_id.as_str()),
            (Command::Identify { seconds: 5 }, info.command_id.as_str())
        );
        assert_eq!(got.expires_at - got.issued_at, 600, "valid for ten minutes");
    }

    let (_, out, _) = cli(&f.dir, &["device", "show", &device.id, "--json"]).await;
    let detail: DeviceDetail = serde_json::from_str(&out).unwrap();
    assert_eq!(detail.commands[0].command_id, info.command_id);
    assert_eq!(detail.commands[0].result.as_ref().unwrap().detail, "flashed the screen");
    let (_, text, _) = cli(&f.dir, &["device", "show", &device.id]).await;
    assert!(text.contains("identify") && text.contains("done: flashed the screen"), "{text}");
    assert!(text.contains("Health:      ok"), "{text}");
    let (ok, _, err) = cli(&f.dir, &["device", "cmd", "dev-nosuchdevi", "reboot"]).await;
    assert!(!ok && err.contains("there is no device"), "{err}");
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_command_kiosks_and_edit_config_over_the_api_and_clinicians_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "ada", "admin-password", "admin").await;
    add_user(&dir, "cleo", "clinician-password", "clinician").await;
    let f = start(&dir).await;
    let device = enrolled_device(&f, "1").await;
    let kiosk = sim(&f, &device, Answer::Accept);
    kiosk.until("connected", |s| s.connections > 0).await;
    let client = http(&f);
    let clinician = sign_in(&f, "cleo", "clinician-password").await;
    let res =
        client.get(f.url("/api/admin/fleet")).header("cookie", &clinician).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);

    let admin = sign_in(&f, "ada", "admin-password").await;
    let api = |method: &str, path: &str| {
        client.request(method.parse().unwrap(), f.url(path)).header("cookie", &admin)
    };
    let path = format!("/api/admin/devices/{}/commands", device.id);
    let res = api("POST", &path)
        .json(&json!({ "command": { "type": "collect_diagnostics" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let queued: CommandInfo = res.json().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let path = format!("/api/admin/commands/{}", queued.command_id);
        let info: CommandInfo = api("GET", &path).send().await.unwrap().json().await.unwrap();
        if info.status == CommandStatus::Answered {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bad = api("POST", &path)
        .json(&json!({ "command": { "type": "identify", "seconds": 99 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let group = "/api/admin/config/groups/North%20Clinic";
    let res =
        api("PUT", group).json(&json!({ "body": { "max_visit_secs": 10 } })).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let error =
        res.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("field `max_visit_secs` is invalid: 10 is outside 300–14400"),
        "{error}"
    );
    let res = api("PUT", group)
        .json(&json!({ "body": { "max_visit_secs": 1800 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = api("POST", "/api/admin/rollouts")
        .json(&json!({ "group": "North Clinic", "first_wave_percent": 100 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let again = api("POST", "/api/admin/rollouts")
        .json(&json!({ "group": "North Clinic" }))
        .send()
        .await
        .unwrap();
    // Either still running (409: one at a time) or already completed (201).
    assert!([201, 409].contains(&again.status().as_u16()));
    kiosk.until("applied", |s| s.applied > 0).await;

    let fleet: Vec<FleetDevice> =
        api("GET", "/api/admin/fleet").send().await.unwrap().json().await.unwrap();
    assert_eq!(fleet.len(), 1);
    let state = fleet[0].state.as_ref().expect("state reported");
    assert_eq!(state.presence, telekiosk_protocol::device::Presence::Online);
    stop(f).await;
}

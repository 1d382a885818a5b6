//! Visit codes and calls for help over a real fleetd, real HTTPS, the console WebSocket and MQTT
//! kiosks: a clinician makes a code; a Spanish patient's kiosk waits with it and only that
//! clinician's console lists it, marked for them; a used code is refused as used and wrong
//! codes make the kiosk wait; a call for help reaches the clinic's consoles and the answer
//! reaches the kiosk; the audit trail records all of it without the code's digits.

mod common;

use common::console::{console, lists, send, until};
use common::{
    Fleetd, Mqtt, Seen, WAIT, add_user_in, cli, device_tls, enrolled_device_of, http, sign_in,
    start, stop,
};
use rumqttc::QoS;
use serde_json::{Value, json};
use telekiosk_protocol::api::{VisitCode, VisitCodeInfo};
use telekiosk_protocol::config::Language;
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::visit::{CodeRefusal, KioskToServer, ServerToKiosk};
use telekiosk_protocol::{decode, encode, topics};

const PASSWORD: &str = "visit-code-test-password";

/// A bare MQTT client with the kiosk's identity, listening on its `visit/in`.
async fn kiosk_link(f: &Fleetd, device: &common::Device) -> Mqtt {
    let mut m = common::mqtt(f, device_tls(f, device), &device.id).await.unwrap();
    m.client.subscribe(topics::visit_in(&device.id), QoS::AtLeastOnce).await.unwrap();
    m.until(|s| matches!(s, Seen::SubAck(_))).await;
    m
}

async fn kiosk_says(m: &Mqtt, device: &common::Device, msg: &KioskToServer) {
    let topic = topics::visit_out(&device.id);
    m.client.publish(topic, QoS::AtLeastOnce, false, encode(msg)).await.unwrap();
}

/// Reads the kiosk's `visit/in` until a message satisfies `want`.
async fn kiosk_hears(m: &mut Mqtt, want: impl Fn(&ServerToKiosk) -> bool) -> ServerToKiosk {
    loop {
        if let Seen::Publish { payload, .. } = m.next().await
            && let Ok(msg) = decode::<ServerToKiosk>(&payload)
            && want(&msg)
        {
            return msg;
        }
    }
}

fn waiting(visit_id: &str, code: &str) -> KioskToServer {
    KioskToServer::Waiting {
        visit_id: visit_id.into(),
        clinic: "anything".into(),
        room: "anything".into(),
        language: Some(Language::Es),
        visit_code: Some(code.into()),
    }
}

fn refused(msg: &ServerToKiosk) -> Option<(CodeRefusal, u32)> {
    match msg {
        ServerToKiosk::CodeRefused { reason, retry_after_secs, .. } => {
            Some((*reason, *retry_after_secs))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_code_brings_the_patient_to_its_clinician_only_and_a_call_for_help_is_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user_in(&dir, "alice", PASSWORD, "clinician", &["North Clinic"]).await;
    add_user_in(&dir, "bob", PASSWORD, "clinician", &["North Clinic"]).await;
    let f = start(&dir).await;
    let room_1 = enrolled_device_of(&f, "North Clinic", "1").await;
    let room_2 = enrolled_device_of(&f, "North Clinic", "2").await;
    let (alice_cookie, bob_cookie) =
        (sign_in(&f, "alice", PASSWORD).await, sign_in(&f, "bob", PASSWORD).await);

    // Alice makes a code; her list shows it by id, never by its digits.
    let res = http(&f)
        .post(f.url("/api/visit-codes"))
        .header("cookie", &alice_cookie)
        .json(&json!({"clinic": "North Clinic", "valid_mins": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let code: VisitCode = res.json().await.unwrap();
    assert!(code.code.len() == 6 && code.code.bytes().all(|b| b.is_ascii_digit()), "{code:?}");
    let list = http(&f).get(f.url("/api/visit-codes")).header("cookie", &alice_cookie);
    let text = list.send().await.unwrap().text().await.unwrap();
    let listed: Vec<VisitCodeInfo> = serde_json::from_str(&text).unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [code.id.as_str()]);
    assert!(!text.contains(&code.code), "the list shows the digits: {text}");
    // Not for a clinic that is not hers.
    let other = http(&f)
        .post(f.url("/api/visit-codes"))
        .header("cookie", &alice_cookie)
        .json(&json!({"clinic": "South Clinic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 403);

    let mut alice = console(&f, &alice_cookie).await;
    let mut bob = console(&f, &bob_cookie).await;
    until(&mut alice, |m| matches!(m, ServerToConsole::Queue { .. })).await;
    until(&mut bob, |m| matches!(m, ServerToConsole::Queue { .. })).await;

    // Room 1's patient, in Spanish, types the code: Alice's queue has it, marked for her.
    let mut kiosk_1 = kiosk_link(&f, &room_1).await;
    kiosk_says(&kiosk_1, &room_1, &waiting("v-code", &code.code)).await;
    let seen = until(&mut alice, |m| lists(m, "v-code")).await;
    let Some(ServerToConsole::Queue { waiting: rows }) = seen.last() else { unreachable!() };
    let row = rows.iter().find(|w| w.visit_id == "v-code").unwrap();
    assert_eq!((row.language, row.for_you, row.room.as_str()), (Some(Language::Es), true, "1"));
    kiosk_hears(&mut kiosk_1, |m| matches!(m, ServerToKiosk::Position { ahead: 0, .. })).await;

    // A walk-in at room 2 reaches Bob; until then Bob never saw the code visit.
    let mut kiosk_2 = kiosk_link(&f, &room_2).await;
    let walk_in = KioskToServer::Waiting {
        visit_id: "v-walk".into(),
        clinic: "x".into(),
        room: "y".into(),
        language: None,
        visit_code: None,
    };
    kiosk_says(&kiosk_2, &room_2, &walk_in).await;
    let seen = until(&mut bob, |m| lists(m, "v-walk")).await;
    assert!(!seen.iter().any(|m| lists(m, "v-code")), "Bob saw Alice's visit: {seen:?}");

    // Alice joins; the code is spent. Room 2 tries it: used. Then two wrong codes: the third
    // wrong try in a row makes the kiosk wait.
    send(&mut alice, &ConsoleToServer::Join { visit_id: "v-code".into() }).await;
    kiosk_hears(&mut kiosk_1, |m| matches!(m, ServerToKiosk::Accepted { .. })).await;
    kiosk_says(&kiosk_2, &room_2, &waiting("v-b1", &code.code)).await;
    let answer = kiosk_hears(&mut kiosk_2, |m| refused(m).is_some()).await;
    assert_eq!(refused(&answer), Some((CodeRefusal::Used, 0)));
    let wrong = if code.code == "000000" { "000001" } else { "000000" };
    kiosk_says(&kiosk_2, &room_2, &waiting("v-b2", wrong)).await;
    let answer = kiosk_hears(&mut kiosk_2, |m| refused(m).is_some()).await;
    assert_eq!(refused(&answer), Some((CodeRefusal::Unknown, 0)));
    kiosk_says(&kiosk_2, &room_2, &waiting("v-b3", wrong)).await;
    let answer = kiosk_hears(&mut kiosk_2, |m| refused(m).is_some()).await;
    assert_eq!(refused(&answer), Some((CodeRefusal::TooManyTries, 30)));

    // Room 2's patient asks for help: both consoles of North Clinic see it; Bob answers.
    kiosk_says(&kiosk_2, &room_2, &KioskToServer::Help { visit_id: "h-2".into() }).await;
    let has_alert = |m: &ServerToConsole| match m {
        ServerToConsole::Help { alerts } => alerts.iter().any(|a| a.visit_id == "h-2"),
        _ => false,
    };
    let seen = until(&mut alice, has_alert).await;
    let Some(ServerToConsole::Help { alerts }) = seen.last() else { unreachable!() };
    assert_eq!((alerts[0].clinic.as_str(), alerts[0].room.as_str()), ("North Clinic", "2"));
    until(&mut bob, has_alert).await;
    send(&mut bob, &ConsoleToServer::AnswerHelp { visit_id: "h-2".into() }).await;
    kiosk_hears(
        &mut kiosk_2,
        |m| matches!(m, ServerToKiosk::HelpComing { visit_id } if visit_id == "h-2"),
    )
    .await;
    until(&mut alice, |m| matches!(m, ServerToConsole::Help { alerts } if alerts.is_empty())).await;

    // The trail has every step, and nowhere the code's digits.
    let export =
        ["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"];
    let deadline = tokio::time::Instant::now() + WAIT;
    let records = loop {
        let (ok, out, err) = cli(&dir, &export).await;
        assert!(ok, "{err}");
        let records: Vec<Value> = serde_json::from_str(&out).unwrap();
        if records.iter().any(|r| r["action"] == "kiosk.help_answered") {
            break records;
        }
        assert!(tokio::time::Instant::now() < deadline, "no help_answered record");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let actions: Vec<&str> = records.iter().filter_map(|r| r["action"].as_str()).collect();
    for action in [
        "visit_code.created",
        "visit_code.redeemed",
        "visit_code.refused",
        "kiosk.help_requested",
        "kiosk.help_answered",
    ] {
        assert!(actions.contains(&action), "no {action} record in {actions:?}");
    }
    let refusals = records.iter().filter(|r| r["action"] == "visit_code.refused").count();
    assert_eq!(refusals, 3);
    for r in &records {
        for field in ["actor", "object", "where", "detail", "outcome"] {
            let text = r[field].to_string();
            assert!(!text.contains(&code.code), "the code's digits in {field} of {r}");
        }
    }

    // Alice revokes nothing of Bob's; her own code goes.
    let revoke = |cookie: &str| {
        http(&f)
            .delete(f.url(&format!("/api/visit-codes/{}", code.id)))
            .header("cookie", cookie.to_string())
    };
    assert_eq!(revoke(&bob_cookie).send().await.unwrap().status().as_u16(), 404);
    assert_eq!(revoke(&alice_cookie).send().await.unwrap().status().as_u16(), 204);
    stop(f).await;
}

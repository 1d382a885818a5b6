//! The audit trail end to end: the real `fleetd serve` records sign-ins (ok and refused),
//! enrolment, approval, a config change, reads and a command with who, what and where;
//! `fleetd audit verify` names a record changed, removed or moved directly in the SQLite file,
//! and the head file catches a cut-off tail; exports (HTTPS and CLI, CSV and JSON) hold the
//! records and no secret. Needs mosquitto installed.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{
    Device, Fleetd, WAIT, add_user, cli, device_tls, enrol_token, enrolled_device, http, sign_in,
    start, stop, tls,
};
use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{Value, json};
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::visit::KioskToServer;
use telekiosk_protocol::{decode, encode, topics};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "wrong-password-1234";
const AGENT: &str = "AuditTest/1.0 (kiosk console)";
const ALL_TIME: &str = "from=2000-01-01&to=2100-01-01";

fn find<'a>(records: &'a [Value], action: &str, outcome: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["action"] == action && r["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no {action} {outcome} record in {records:#?}"))
}

/// Runs SQL on the data directory's database with the append-only triggers dropped (as
/// someone with the file would), inside a transaction that puts them back.
fn tamper(dir: &Path, sql: &str) {
    let db = rusqlite::Connection::open(dir.join("fleetd.db")).unwrap();
    let triggers: Vec<String> = db
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;").unwrap();
    db.execute_batch(sql).unwrap();
    for t in triggers {
        db.execute_batch(&t).unwrap();
    }
}

async fn verify(dir: &Path) -> (bool, String) {
    let (ok, out, err) = cli(dir, &["audit", "verify"]).await;
    (ok, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_records_who_what_where_and_verify_names_a_tampered_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "admin", PASSWORD, "admin").await;
    add_user(&dir, "auditor", PASSWORD, "auditor").await;
    let f = start(&dir).await;
    let client = http(&f);

    // A refused sign-in, then a good one, from a browser with a user agent.
    let login = |password: &str| {
        let body = json!({ "username": "admin", "password": password });
        client.post(f.url("/api/login")).header("user-agent", AGENT).json(&body).send()
    };
    assert_eq!(login(WRONG).await.unwrap().status().as_u16(), 401);
    assert_eq!(login(PASSWORD).await.unwrap().status().as_u16(), 200);

    // A kiosk enrolled (code from the CLI, request over HTTPS) and approved (CLI).
    let device = enrolled_device(&f, "1").await;
    let unused = enrol_token(&dir, "2", "1h").await.token;

    // A config change over HTTPS.
    let cookie = sign_in(&f, "admin", PASSWORD).await;
    let res = client
        .put(f.url("/api/admin/config/groups/North%20Clinic"))
        .header("cookie", &cookie)
        .header("user-agent", AGENT)
        .json(&json!({ "body": { "max_visit_secs": 1800 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // Reads: a console polling a device is recorded once, not per poll.
    for _ in 0..3 {
        let url = f.url(&format!("/api/admin/devices/{}", device.id));
        let res = client.get(url).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
    }
    // A command from the CLI.
    let (ok, _, err) = cli(&dir, &["device", "cmd", &device.id, "identify"]).await;
    assert!(ok, "{err}");

    // The auditor's export.
    let auditor = sign_in(&f, "auditor", PASSWORD).await;
    let export = |format: &str| {
        let url = f.url(&format!("/api/audit/export?{ALL_TIME}&format={format}"));
        client.get(url).header("cookie", &auditor).send()
    };
    let res = export("json").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    let records: Vec<Value> = serde_json::from_str(&text).unwrap();

    let refused = find(&records, "session.sign_in", "refused:wrong_credentials");
    assert_eq!(refused["actor"], "user:admin");
    let ok = find(&records, "session.sign_in", "ok");
    let place = ok["where"].as_str().unwrap();
    assert!(place.starts_with("127.0.0.1:") && place.ends_with(AGENT), "{place}");
    let enrolled = find(&records, "device.enrol", "ok");
    assert_eq!(enrolled["actor"], format!("device:{}", device.id));
    assert!(enrolled["where"].as_str().unwrap().starts_with("127.0.0.1:"));
    let approved = find(&records, "device.approve", "ok");
    assert!(approved["actor"].as_str().unwrap().starts_with("cli:"), "{approved}");
    assert_eq!((&approved["object"], &approved["where"]), (&json!(device.id), &json!("cli")));
    let config = find(&records, "config.group_set", "ok");
    assert_eq!(
        (&config["actor"], &config["object"]),
        (&json!("user:admin"), &json!("North Clinic"))
    );
    assert!(config["where"].as_str().unwrap().ends_with(AGENT));
    let reads =
        records.iter().filter(|r| r["action"] == "data.read" && r["object"] == json!(device.id));
    assert_eq!(reads.count(), 1, "{records:#?}");
    let command = find(&records, "device.command", "ok");
    assert_eq!((&command["object"], &command["where"]), (&json!(device.id), &json!("cli")));
    for r in &records {
        assert!(r["at"].as_str().unwrap().starts_with("20"), "{r}");
    }
    let csv = export("csv").await.unwrap().text().await.unwrap();
    assert!(csv.starts_with("seq,at,actor,action,object,where,outcome,detail,hash\n"), "{csv}");
    assert!(csv.contains(",config.group_set,North Clinic,"), "{csv}");
    let session = cookie.split_once('=').unwrap().1;
    for secret in [PASSWORD, WRONG, unused.as_str(), session, "BEGIN"] {
        assert!(!text.contains(secret) && !csv.contains(secret), "{secret} exported");
    }
    // Every record fleetd makes has a log line rendered from it (the CLI's are in its output).
    assert!(f.logged().contains("action=session.sign_in"), "{}", f.logged());
    stop(f).await;

    // The export was itself recorded; the CLI's export too, and both formats parse.
    let (ok, out, err) = cli(
        &dir,
        &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"],
    )
    .await;
    assert!(ok, "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    find(&all, "audit.export", "ok");
    let (ok, csv, err) = cli(
        &dir,
        &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "csv"],
    )
    .await;
    assert!(ok && csv.lines().count() == all.len() + 2, "{err}{csv}");
    assert!(dir.join("audit-head").exists());

    let (ok, said) = verify(&dir).await;
    assert!(ok && said.starts_with("audit trail intact:"), "{said}");

    // One field changed in the file: named.
    let victim = find(&all, "device.approve", "ok")["seq"].as_i64().unwrap();
    tamper(&dir, &format!("UPDATE audit SET actor = 'cli:nobody' WHERE seq = {victim}"));
    let (ok, said) = verify(&dir).await;
    assert!(!ok && said.contains(&format!("audit record {victim} was changed")), "{said}");
    let actor = find(&all, "device.approve", "ok")["actor"].as_str().unwrap().to_string();
    tamper(&dir, &format!("UPDATE audit SET actor = '{actor}' WHERE seq = {victim}"));
    assert!(verify(&dir).await.0, "put back, it verifies again");

    // The newest record cut off: the chain alone still links, the head file catches it.
    // `all` holds neither its own export's record nor the CSV export's after it.
    let last = all.len() as i64 + 2;
    tamper(
        &dir,
        &format!(
            "CREATE TABLE keep AS SELECT * FROM audit WHERE seq = {last}; DELETE FROM audit WHERE seq = {last};"
        ),
    );
    let (ok, said) = verify(&dir).await;
    assert!(!ok && said.contains(&format!("audit record {last} was removed")), "{said}");
    tamper(&dir, "INSERT INTO audit SELECT * FROM keep; DROP TABLE keep;");
    let (ok, said) = verify(&dir).await;
    assert!(ok, "put back, it verifies again: {said}");

    // One record deleted: named.
    let gone = find(&all, "session.sign_in", "refused:wrong_credentials")["seq"].as_i64().unwrap();
    let keep = format!("CREATE TABLE keep AS SELECT * FROM audit WHERE seq = {gone};");
    tamper(&dir, &format!("{keep} DELETE FROM audit WHERE seq = {gone}"));
    let (ok, said) = verify(&dir).await;
    assert!(!ok && said.contains(&format!("audit record {gone} was removed")), "{said}");

    // Put back, but after the others: named as out of order.
    tamper(&dir, "INSERT INTO audit SELECT * FROM keep; DROP TABLE keep;");
    let (ok, said) = verify(&dir).await;
    assert!(!ok && said.contains(&format!("audit record {gone} was moved out of order")), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_route_is_for_auditors_and_refuses_bad_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "admin", PASSWORD, "admin").await;
    add_user(&dir, "carol", PASSWORD, "clinician").await;
    add_user(&dir, "aud", PASSWORD, "auditor").await;
    let f = start(&dir).await;
    let client = http(&f);
    let get = |cookie: Option<String>, query: &str| {
        let req = client.get(f.url(&format!("/api/audit/export?{query}")));
        match cookie {
            Some(c) => req.header("cookie", c).send(),
            None => req.send(),
        }
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(get(None, ALL_TIME).await.unwrap()), 401);
    let carol = sign_in(&f, "carol", PASSWORD).await;
    assert_eq!(status(get(Some(carol), ALL_TIME).await.unwrap()), 403);
    // Fleet admins do not read the trail either: auditors do.
    let fleet_admin = sign_in(&f, "admin", PASSWORD).await;
    assert_eq!(status(get(Some(fleet_admin), ALL_TIME).await.unwrap()), 403);
    let admin = sign_in(&f, "aud", PASSWORD).await;
    assert_eq!(
        status(get(Some(admin.clone()), "from=2026-13-01&to=2026-12-01").await.unwrap()),
        400
    );
    assert_eq!(
        status(get(Some(admin.clone()), "from=2026-12-02&to=2026-12-01").await.unwrap()),
        400
    );
    assert_eq!(status(get(Some(admin.clone()), ALL_TIME).await.unwrap()), 200);
    let records: Vec<Value> =
        get(Some(admin), &format!("{ALL_TIME}&format=json")).await.unwrap().json().await.unwrap();
    let refused = find(&records, "access.refused", "refused:not_allowed_clinician");
    assert_eq!(
        (&refused["actor"], &refused["object"]),
        (&json!("user:carol"), &json!("/api/audit/export"))
    );
    stop(f).await;
}

/// A kiosk's MQTT client, connected (it only publishes here).
async fn kiosk(f: &Fleetd, device: &Device) -> AsyncClient {
    let mut options = MqttOptions::new(format!("test-{}", device.id), "127.0.0.1", f.mqtt_port);
    let config = Arc::new(device_tls(f, device));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(topics::visit_in(&device.id), QoS::AtLeastOnce).await.unwrap();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::SubAck(_)) = event {
                subscribed_tx.take().map(|s| s.send(()));
            }
        }
    });
    timeout(WAIT, subscribed).await.expect("kiosk subscribed in time").unwrap();
    client
}

async fn console(f: &Fleetd, cookie: &str) -> Ws {
    let mut req = format!("wss://127.0.0.1:{}/ws", f.web_port).into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let connector = Connector::Rustls(Arc::new(tls(&f.ca, None)));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .expect("console connects");
    ws
}

async fn until(ws: &mut Ws, want: impl Fn(&ServerToConsole) -> bool) -> ServerToConsole {
    timeout(WAIT, async {
        loop {
            if let Message::Text(text) = ws.next().await.expect("open").expect("healthy") {
                let msg = decode::<ServerToConsole>(text.as_bytes()).unwrap();
                if want(&msg) {
                    return msg;
                }
            }
        }
    })
    .await
    .expect("the expected console message arrived in time")
}

/// A visit queued, joined and ended is recorded with who and how long; a console message
/// with backticks and a newline (review M7) is recorded as refused, its text nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_is_recorded_queued_joined_and_ended_and_forged_text_goes_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", PASSWORD, "clinician").await;
    let f = start(&dir).await;
    let device = enrolled_device(&f, "3").await;
    let kiosk = kiosk(&f, &device).await;
    let waiting = KioskToServer::Waiting {
        visit_id: "visit-9".into(),
        clinic: "North Clinic".into(),
        room: "3".into(),
        language: None,
        visit_code: None,
    };
    let topic = topics::visit_out(&device.id);
    kiosk.publish(&topic, QoS::AtLeastOnce, false, encode(&waiting)).await.unwrap();

    let mut alice = console(&f, &sign_in(&f, "alice", PASSWORD).await).await;
    let queued = |m: &ServerToConsole| matches!(m, ServerToConsole::Queue { waiting } if waiting.iter().any(|w| w.visit_id == "visit-9"));
    until(&mut alice, queued).await;
    let forged = r#"{"type":"x`\nINFO fleetd::audit: FORGED signed in`","visit_id":"visit-9"}"#;
    alice.send(Message::text(forged)).await.unwrap();
    until(&mut alice, |m| matches!(m, ServerToConsole::Error { .. })).await;
    alice
        .send(Message::text(
            String::from_utf8(encode(&ConsoleToServer::Join { visit_id: "visit-9".into() }))
                .unwrap(),
        ))
        .await
        .unwrap();
    until(&mut alice, |m| matches!(m, ServerToConsole::Joined { .. })).await;
    alice
        .send(Message::text(
            String::from_utf8(encode(&ConsoleToServer::End { visit_id: "visit-9".into() }))
                .unwrap(),
        ))
        .await
        .unwrap();
    until(&mut alice, |m| matches!(m, ServerToConsole::Ended { .. })).await;
    let log = f.log.clone();
    stop(f).await;

    let (ok, out, err) = cli(
        &dir,
        &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"],
    )
    .await;
    assert!(ok, "{err}");
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    let kiosk_actor = json!(format!("device:{}", device.id));
    let queued = find(&records, "visit.queued", "ok");
    assert_eq!((&queued["actor"], &queued["where"]), (&kiosk_actor, &json!(device.id)));
    let joined = find(&records, "visit.joined", "ok");
    assert_eq!(joined["actor"], "user:alice");
    assert_eq!(joined["object"], format!("visit visit-9 kiosk {}", device.id));
    let ended = find(&records, "visit.ended", "ok");
    assert_eq!(ended["actor"], "user:alice");
    assert!(ended["detail"].as_str().unwrap().starts_with("visit over: "), "{ended}");
    let refused = find(&records, "visit.event", "refused:refused");
    assert_eq!(refused["actor"], "user:alice");
    assert!(refused["detail"].as_str().unwrap().contains("unknown message type"), "{refused}");
    assert!(!out.contains("FORGED"), "attacker text in the trail");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("action=visit.event") && !log.contains("FORGED"), "{log}");
    assert!(verify(&dir).await.0);
}

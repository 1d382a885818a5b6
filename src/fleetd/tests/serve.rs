//! End to end on loopback: the real `fleetd serve` binary with a real mosquitto, a kiosk played
//! by an MQTT client (an enrolled device with a software key), and two consoles played by
//! WebSocket clients. Needs mosquitto installed: without it these tests fail, they do not skip.

mod common;

use std::sync::Arc;

use common::{
    Device, Fleetd, WAIT, add_user, device_tls, enrolled_device, sign_in, start, stop, tls,
    try_sign_in,
};
use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole};
use telekiosk_protocol::visit::{KioskToServer, ServerToKiosk};
use telekiosk_protocol::{decode, encode, topics};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A kiosk: publishes on its `visit/out`, and forwards what arrives on its `visit/in`.
async fn kiosk(f: &Fleetd, device: &Device) -> (AsyncClient, mpsc::Receiver<ServerToKiosk>) {
    let device_id = device.id.as_str();
    let mut options = MqttOptions::new(format!("test-{device_id}"), "127.0.0.1", f.mqtt_port);
    let config = Arc::new(device_tls(f, device));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(topics::visit_in(device_id), QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subscribed_tx.take().map(|s| s.send(()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(decode::<ServerToKiosk>(&p.payload).unwrap()).await;
                }
                Ok(_) => {}
                Err(e) => panic!("kiosk MQTT connection failed: {e}"),
            }
        }
    });
    timeout(WAIT, subscribed).await.expect("kiosk subscribed in time").unwrap();
    (client, rx)
}

async fn publish(client: &AsyncClient, device_id: &str, msg: &KioskToServer) {
    client
        .publish(topics::visit_out(device_id), QoS::AtLeastOnce, false, encode(msg))
        .await
        .unwrap();
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

async fn send(ws: &mut Ws, msg: &ConsoleToServer) {
    ws.send(Message::text(String::from_utf8(encode(msg)).unwrap())).await.unwrap();
}

/// Reads console messages until one satisfies `want`.
async fn until(ws: &mut Ws, want: impl Fn(&ServerToConsole) -> bool) -> ServerToConsole {
    timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("socket healthy") {
                Message::Text(text) => {
                    let msg = decode::<ServerToConsole>(text.as_bytes()).unwrap();
                    if want(&msg) {
                        return msg;
                    }
                }
                Message::Close(frame) => panic!("console closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the expected console message arrived in time")
}

async fn kiosk_gets(rx: &mut mpsc::Receiver<ServerToKiosk>) -> ServerToKiosk {
    timeout(WAIT, rx.recv()).await.expect("kiosk message in time").expect("kiosk connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_kiosk_is_joined_by_one_clinician_and_refused_to_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    add_user(&dir, "alice", "alice-password", "clinician").await;
    add_user(&dir, "bob", "bob-password-1", "clinician").await;
    let f = start(&dir).await;
    let device = enrolled_device(&f, "2").await;
    let kiosk_id = device.id.as_str();

    let refused = try_sign_in(&f, "alice", "wrong-password").await.unwrap_err();
    assert_eq!(refused, (401, r#"{"error":"Wrong user name or password."}"#.to_string()));
    let ws_url = f.url("/ws");
    assert_eq!(common::http(&f).get(ws_url).send().await.unwrap().status().as_u16(), 401);

    let (kiosk_a, mut to_kiosk_a) = kiosk(&f, &device).await;
    let waiting = KioskToServer::Waiting {
        visit_id: "visit-1".into(),
        clinic: "North Clinic".into(),
        room: "2".into(),
        language: None,
        visit_code: None,
    };
    publish(&kiosk_a, kiosk_id, &waiting).await;
    // The kiosk hears at once that it is queued (no STUN/TURN configured: no servers).
    assert_eq!(
        kiosk_gets(&mut to_kiosk_a).await,
        ServerToKiosk::Queued { visit_id: "visit-1".into(), ice: Default::default() }
    );
    // And where it stands: no one before it.
    assert_eq!(
        kiosk_gets(&mut to_kiosk_a).await,
        ServerToKiosk::Position { visit_id: "visit-1".into(), ahead: 0 }
    );

    let mut alice = console(&f, &sign_in(&f, "alice", "alice-password").await).await;
    let has_visit = |m: &ServerToConsole| matches!(m, ServerToConsole::Queue { waiting } if waiting.iter().any(|w| w.visit_id == "visit-1" && w.device_id == kiosk_id && w.clinic == "North Clinic"));
    until(&mut alice, has_visit).await;
    let mut bob = console(&f, &sign_in(&f, "bob", "bob-password-1").await).await;
    until(&mut bob, has_visit).await;

    send(&mut alice, &ConsoleToServer::Join { visit_id: "visit-1".into() }).await;
    until(
        &mut alice,
        |m| matches!(m, ServerToConsole::Joined { visit_id, .. } if visit_id == "visit-1"),
    )
    .await;
    assert_eq!(
        kiosk_gets(&mut to_kiosk_a).await,
        ServerToKiosk::Accepted { visit_id: "visit-1".into(), clinician: "alice".into() }
    );

    send(&mut bob, &ConsoleToServer::Join { visit_id: "visit-1".into() }).await;
    let taken = until(&mut bob, |m| !matches!(m, ServerToConsole::Queue { .. })).await;
    assert_eq!(taken, ServerToConsole::AlreadyTaken { visit_id: "visit-1".into() });

    // The offer reaches the owner, and the owner's answer reaches the kiosk.
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n".to_string();
    publish(
        &kiosk_a,
        kiosk_id,
        &KioskToServer::Offer { visit_id: "visit-1".into(), sdp: sdp.clone(), e2ee: kkey() },
    )
    .await;
    let offer = until(&mut alice, |m| matches!(m, ServerToConsole::Offer { .. })).await;
    assert_eq!(
        offer,
        ServerToConsole::Offer {
            visit_id: "visit-1".into(),
            sdp: sdp.clone(),
            e2ee: kkey(),
            // The kiosk's enrolled key, from the registry, for the console to check with.
            device_key: base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                device.key.public_key_raw()
            ),
        }
    );
    send(
        &mut alice,
        &ConsoleToServer::Answer { visit_id: "visit-1".into(), sdp: sdp.clone(), e2ee: ckey() },
    )
    .await;
    assert_eq!(
        kiosk_gets(&mut to_kiosk_a).await,
        ServerToKiosk::Answer { visit_id: "visit-1".into(), sdp, e2ee: ckey() }
    );

    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_reuses_the_ca_and_sigterm_stops_fleetd_and_its_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = start(&dir).await;
    let ca = std::fs::read(&first.ca).unwrap();
    stop(first).await;
    let second = start(&dir).await;
    assert_eq!(std::fs::read(&second.ca).unwrap(), ca, "the CA was replaced");
    stop(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_does_not_outlive_a_killed_fleetd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut f = start(&dir).await;
    f.child.start_kill().unwrap();
    f.child.wait().await.unwrap();
    common::assert_port_closes(f.mqtt_port).await;
}

fn kkey() -> telekiosk_protocol::e2ee::KioskKey {
    telekiosk_protocol::e2ee::KioskKey { public_key: "B".repeat(87), signature: "s".repeat(86) }
}

fn ckey() -> telekiosk_protocol::e2ee::ConsoleKey {
    telekiosk_protocol::e2ee::ConsoleKey { public_key: "C".repeat(87), confirm: "c".repeat(22) }
}

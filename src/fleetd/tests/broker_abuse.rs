//! A kiosk with a valid certificate turned against the fleet, end to end on loopback with the
//! real broker: it sends packets too large for fleetd, connects under another kiosk's client
//! id, writes topics that are fleetd's to write, floods its state, and answers a command twice.
//! The other kiosks, and fleetd's own connection, must not notice. Kiosks are rumqttc clients
//! with software keys. Needs mosquitto: without it these tests fail, they do not skip.

mod common;

use std::time::Duration;

use common::{Device, Fleetd, Seen, WAIT, cli, device_tls, enrolled_device, start, stop};
use rumqttc::QoS;
use telekiosk_protocol::api::{CommandInfo, CommandStatus, DeviceDetail, RolloutInfo};
use telekiosk_protocol::command::{CommandOutcome, CommandPayload, CommandResult, SignedCommand};
use telekiosk_protocol::decode::MAX_MESSAGE_BYTES;
use telekiosk_protocol::device::{DeviceState, Presence};
use telekiosk_protocol::{decode, encode, topics};
use tokio::time::{Instant, sleep, timeout};

/// Connects as `device` with client id `client_id`, able to send packets of any size (the
/// broker decides), and reports what it sees; `Err` if the broker refuses.
async fn connect(f: &Fleetd, device: &Device, client_id: &str) -> Result<common::Mqtt, String> {
    let mut options = common::mqtt_options(f, device_tls(f, device), client_id);
    options.set_max_packet_size(1 << 20, 1 << 20);
    common::mqtt_with(options, 64).await
}

async fn subscribe(m: &mut common::Mqtt, filter: &str) {
    m.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    m.until(|s| matches!(s, Seen::SubAck(_))).await;
}

/// A kiosk's state, told apart by its uptime.
fn state(uptime_secs: u64) -> Vec<u8> {
    let mut s = DeviceState::offline();
    s.presence = Presence::Online;
    s.uptime_secs = uptime_secs;
    encode(&s)
}

/// The device as `fleetd device show --json` has it.
async fn show(f: &Fleetd, id: &str) -> DeviceDetail {
    let (ok, out, err) = cli(&f.dir, &["device", "show", id, "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Waits until `check` holds for the device as fleetd has it.
async fn until_shown(f: &Fleetd, id: &str, what: &str, check: impl Fn(&DeviceDetail) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = show(f, id).await;
        if check(&d) {
            return;
        }
        assert!(Instant::now() < deadline, "{id}: {what}: {d:?}\n{}", f.logged());
        sleep(Duration::from_millis(200)).await;
    }
}

async fn until_logged(f: &Fleetd, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check(&f.logged()) {
        assert!(Instant::now() < deadline, "never logged: {what}\n{}", f.logged());
        sleep(Duration::from_millis(100)).await;
    }
}

/// How often fleetd's own client connected, and failed to.
fn connections(f: &Fleetd) -> (usize, usize) {
    let log = f.logged();
    (log.matches("MQTT connected").count(), log.matches("MQTT connection failed").count())
}

/// Publishes `uptime` as `device`'s state and waits until fleetd has stored it.
async fn state_reaches_fleetd(f: &Fleetd, m: &common::Mqtt, device: &Device, uptime: u64) {
    m.client
        .publish(topics::state(&device.id), QoS::AtLeastOnce, true, state(uptime))
        .await
        .unwrap();
    let has = |d: &DeviceDetail| d.fleet.state.as_ref().is_some_and(|s| s.uptime_secs == uptime);
    until_shown(f, &device.id, "fleetd has its state", has).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_retained_state_cannot_cut_fleetd_off_the_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let (attacker, other) = (enrolled_device(&f, "1").await, enrolled_device(&f, "2").await);
    let mut b = connect(&f, &other, "kiosk-b").await.unwrap();
    state_reaches_fleetd(&f, &b, &other, 1).await;
    let before = connections(&f);

    // Far too large (200 KiB, 100 KiB), and just over what a message may be: the broker drops
    // the sender of the first two; fleetd clears the third.
    let own_state = topics::state(&attacker.id);
    for size in [200 * 1024, 100 * 1024] {
        let mut a = connect(&f, &attacker, "kiosk-a").await.unwrap();
        let bytes = vec![b'x'; size];
        a.client.publish(&own_state, QoS::AtLeastOnce, true, bytes).await.unwrap();
        let (_, end) = a.until(|s| matches!(s, Seen::Closed(_) | Seen::PubAck(_))).await;
        assert!(matches!(end, Seen::Closed(_)), "{size} bytes accepted: {end:?}");
    }
    let mut a = connect(&f, &attacker, "kiosk-a").await.unwrap();
    let just_over = vec![b' '; MAX_MESSAGE_BYTES + 100];
    a.client.publish(&own_state, QoS::AtLeastOnce, true, just_over).await.unwrap();
    a.until(|s| matches!(s, Seen::PubAck(_))).await;
    let cleared = |log: &str| {
        log.lines().any(|l| {
            l.contains("cleared a retained message")
                && l.contains(&attacker.id)
                && l.contains(&own_state)
        })
    };
    until_logged(&f, "the attacker's state cleared", cleared).await;

    // fleetd kept its one connection, and still hears the other kiosk at once.
    sleep(Duration::from_secs(3)).await;
    state_reaches_fleetd(&f, &b, &other, 2).await;
    assert_eq!(connections(&f), before, "fleetd reconnected:\n{}", f.logged());
    while let Ok(seen) = b.seen.try_recv() {
        assert!(!matches!(seen, Seen::Closed(_)), "{seen:?}");
    }
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_using_another_devices_client_id_does_not_knock_it_off() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let (attacker, victim) = (enrolled_device(&f, "1").await, enrolled_device(&f, "2").await);
    let mut b = connect(&f, &victim, &format!("kiosk-{}", victim.id)).await.unwrap();
    // As the kiosk names itself, and as the broker names it now (its CN).
    let mut a1 = connect(&f, &attacker, &format!("kiosk-{}", victim.id)).await.unwrap();
    let mut a2 = connect(&f, &attacker, &victim.id).await.unwrap();
    let quiet = timeout(Duration::from_secs(4), b.seen.recv()).await;
    assert!(quiet.is_err(), "the victim saw {quiet:?}");
    state_reaches_fleetd(&f, &b, &victim, 7).await;
    // The attacker's second connection replaced its own first one, nothing else.
    assert!(matches!(a1.next().await, Seen::Closed(_)));
    a2.client.publish(topics::state(&attacker.id), QoS::AtLeastOnce, true, state(3)).await.unwrap();
    a2.until(|s| matches!(s, Seen::PubAck(_))).await;
    stop(f).await;
}

async fn roll_out(f: &Fleetd) -> RolloutInfo {
    let file = f.dir.with_extension("body.json");
    std::fs::write(&file, "{}").unwrap();
    let set = ["config", "set", "--group", "North Clinic", "--file", file.to_str().unwrap()];
    let (ok, _, err) = cli(&f.dir, &set).await;
    assert!(ok, "{err}");
    let args =
        ["config", "rollout", "--group", "North Clinic", "--first-wave-percent", "100", "--json"];
    let (ok, out, err) = cli(&f.dir, &args).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Queues `identify` for the device; its id.
async fn command(f: &Fleetd, device: &Device) -> String {
    let args = ["device", "cmd", &device.id, "identify", "--seconds", "5", "--json"];
    let (ok, out, err) = cli(&f.dir, &args).await;
    assert!(ok, "{err}");
    serde_json::from_str::<CommandInfo>(&out).unwrap().command_id
}

fn command_of(payload: &[u8]) -> CommandPayload {
    let signed: SignedCommand = decode(payload).unwrap();
    serde_json::from_str(&signed.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_reads_only_what_fleetd_sends_it_and_cannot_forge_its_config_or_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let device = enrolled_device(&f, "1").await;
    roll_out(&f).await;
    let mut m = connect(&f, &device, "kiosk-a").await.unwrap();
    let config = topics::config(&device.id);
    subscribe(&mut m, &config).await;
    let (_, Seen::Publish { payload: signed, .. }) =
        m.until(|s| matches!(s, Seen::Publish { .. })).await
    else {
        unreachable!()
    };

    // Everything under its subtree, then forgeries on what is fleetd's to write, and on a
    // topic nobody uses; then a real command from fleetd, which ends what it can receive.
    subscribe(&mut m, &format!("telekiosk/v1/dev/{}/#", device.id)).await;
    let forged = b"forged".to_vec();
    for topic in [config.clone(), topics::cmd(&device.id), topics::visit_in(&device.id)] {
        m.client.publish(&topic, QoS::AtLeastOnce, true, forged.clone()).await.unwrap();
    }
    let extra = topics::device(&device.id, "extra");
    m.client.publish(&extra, QoS::AtLeastOnce, true, forged.clone()).await.unwrap();
    m.client.publish(topics::state(&device.id), QoS::AtLeastOnce, true, state(5)).await.unwrap();
    let id = command(&f, &device).await;
    let is_command = |s: &Seen| {
        matches!(s, Seen::Publish { topic, payload } if topic.ends_with("/cmd")
            && decode::<SignedCommand>(payload).is_ok())
    };
    let (before, Seen::Publish { payload, .. }) = m.until(is_command).await else { unreachable!() };
    assert_eq!(command_of(&payload).command_id, id);
    let received: Vec<_> = before
        .iter()
        .filter_map(|s| match s {
            Seen::Publish { topic, payload } => {
                Some((topic.as_str(), String::from_utf8_lossy(payload).into_owned()))
            }
            _ => None,
        })
        .collect();
    // The retained config is fleetd's own (the # subscription hands it over again); nothing
    // the device wrote came back to it, not even its own state.
    let signed_text = String::from_utf8_lossy(&signed).into_owned();
    assert_eq!(received, [(config.as_str(), signed_text)]);

    // A fresh subscription still finds fleetd's config retained, not the forgery.
    let mut again = connect(&f, &device, "kiosk-a").await.unwrap();
    subscribe(&mut again, &config).await;
    let (_, Seen::Publish { payload, .. }) =
        again.until(|s| matches!(s, Seen::Publish { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(payload, signed);
    // And fleetd took the state, which is the device's to write.
    until_shown(&f, &device.id, "its state", |d| {
        d.fleet.state.as_ref().is_some_and(|s| s.uptime_secs == 5)
    })
    .await;
    stop(f).await;
}

fn result(command_id: &str, outcome: CommandOutcome, detail: &str) -> Vec<u8> {
    let r = CommandResult { command_id: command_id.into(), outcome, detail: detail.into() };
    encode(&r)
}

fn answered_with(id: &str, detail: &str) -> impl Fn(&DeviceDetail) -> bool {
    let (id, detail) = (id.to_string(), detail.to_string());
    move |d| {
        d.commands.iter().any(|c| {
            c.command_id == id
                && c.status == CommandStatus::Answered
                && c.result.as_ref().is_some_and(|r| r.detail == detail)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_answered_once_and_a_later_result_does_not_rewrite_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let device = enrolled_device(&f, "1").await;
    let mut m = connect(&f, &device, "kiosk-a").await.unwrap();
    subscribe(&mut m, &topics::cmd(&device.id)).await;
    let result_topic = topics::cmd_result(&device.id);
    let is_command = |s: &Seen| matches!(s, Seen::Publish { .. });

    // Answered, then answered again: the second answer is ignored.
    let first = command(&f, &device).await;
    m.until(is_command).await;
    let done = result(&first, CommandOutcome::Done, "first answer");
    m.client.publish(&result_topic, QoS::AtLeastOnce, false, done).await.unwrap();
    until_shown(&f, &device.id, "answered", answered_with(&first, "first answer")).await;
    let rewrite = result(&first, CommandOutcome::Refused, "rewritten");
    m.client.publish(&result_topic, QoS::AtLeastOnce, false, rewrite).await.unwrap();
    let ignored = |log: &str| log.contains("ignored a result for a command no longer waiting");
    until_logged(&f, "the second answer ignored", ignored).await;
    let d = show(&f, &device.id).await;
    assert!(answered_with(&first, "first answer")(&d), "{:?}", d.commands);

    // Deferred until a visit ends, then done: the final answer replaces the deferral.
    let second = command(&f, &device).await;
    m.until(is_command).await;
    for (outcome, detail) in [(CommandOutcome::Deferred, "later"), (CommandOutcome::Done, "done")] {
        let r = result(&second, outcome, detail);
        m.client.publish(&result_topic, QoS::AtLeastOnce, false, r).await.unwrap();
    }
    until_shown(&f, &device.id, "answered at last", answered_with(&second, "done")).await;
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_command_is_sent_again_after_the_broker_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let device = enrolled_device(&f, "1").await;
    let mut m = connect(&f, &device, "kiosk-a").await.unwrap();
    subscribe(&mut m, &topics::cmd(&device.id)).await;
    let is_command = |s: &Seen| matches!(s, Seen::Publish { .. });

    // Sent but never answered: after the broker restarts (revoking another device restarts
    // it), fleetd sends it again, byte for byte.
    let id = command(&f, &device).await;
    let (_, Seen::Publish { payload: sent, .. }) = m.until(is_command).await else {
        unreachable!()
    };
    assert_eq!(command_of(&sent).command_id, id);
    let other = enrolled_device(&f, "2").await;
    let (ok, _, err) = cli(&f.dir, &["device", "revoke", &other.id]).await;
    assert!(ok, "{err}");
    m.until(|s| matches!(s, Seen::Closed(_))).await;
    // Back as soon as the broker is (fleetd's client waits 200 ms before its first retry, and
    // then subscribes and reads the database before it sends).
    let deadline = Instant::now() + WAIT;
    let mut m = loop {
        if let Ok(m) = connect(&f, &device, "kiosk-a").await {
            break m;
        }
        assert!(Instant::now() < deadline, "cannot reconnect:\n{}", f.logged());
        sleep(Duration::from_millis(20)).await;
    };
    subscribe(&mut m, &topics::cmd(&device.id)).await;
    let (_, Seen::Publish { payload, .. }) = m.until(is_command).await else { unreachable!() };
    assert_eq!(payload, sent);
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sent_while_its_kiosk_was_offline_is_sent_again_when_it_reports_online() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let device = enrolled_device(&f, "1").await;
    let id = command(&f, &device).await;
    let sent = |d: &DeviceDetail| d.commands.iter().any(|c| c.status == CommandStatus::Sent);
    until_shown(&f, &device.id, "the command sent", sent).await;
    // Nobody got it. Once it has been out for 30 s, the kiosk comes online.
    sleep(Duration::from_secs(31)).await;
    let mut m = connect(&f, &device, "kiosk-a").await.unwrap();
    subscribe(&mut m, &topics::cmd(&device.id)).await;
    m.client.publish(topics::state(&device.id), QoS::AtLeastOnce, true, state(9)).await.unwrap();
    let (_, Seen::Publish { payload, .. }) = m.until(|s| matches!(s, Seen::Publish { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(command_of(&payload).command_id, id);
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_flooding_its_state_is_cut_to_its_rate_and_does_not_delay_another() {
    let tmp = tempfile::tempdir().unwrap();
    let f = start(&tmp.path().join("data")).await;
    let (flooder, other) = (enrolled_device(&f, "1").await, enrolled_device(&f, "2").await);
    let flood = connect(&f, &flooder, "kiosk-a").await.unwrap();
    let b = connect(&f, &other, "kiosk-b").await.unwrap();
    state_reaches_fleetd(&f, &b, &other, 1).await;

    let client = flood.client.clone();
    let topic = topics::state(&flooder.id);
    let flooding = tokio::spawn(async move {
        let started = Instant::now();
        for n in 1..=2000 {
            client.publish(&topic, QoS::AtLeastOnce, true, state(n)).await.unwrap();
        }
        started.elapsed()
    });
    sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    state_reaches_fleetd(&f, &b, &other, 2).await;
    let took = started.elapsed();
    let flood_took = flooding.await.unwrap();
    let dropping = |log: &str| {
        log.lines().any(|l| l.contains("over its message rate") && l.contains(&flooder.id))
    };
    until_logged(&f, "the flooder's messages dropped", dropping).await;
    // Its burst and rate got through; the rest, its last state included, did not.
    sleep(Duration::from_secs(1)).await;
    let stored = show(&f, &flooder.id).await.fleet.state.map(|s| s.uptime_secs);
    assert!(stored.is_some_and(|n| (100..2000).contains(&n)), "{stored:?}");
    eprintln!(
        "the flood was queued in {flood_took:?}; the other kiosk's state, sent 100 ms into it, \
         was stored {took:?} later; fleetd kept the flooder's state {stored:?} of 2000"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    stop(f).await;
}

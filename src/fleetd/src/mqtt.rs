//! fleetd's own MQTT client: connects to the broker over mutual TLS (a client certificate with
//! CN `fleetd`, which the broker's ACL lets use all of `telekiosk/#`), subscribes to every kiosk's
//! `visit/out`, `state` and `cmd/result`, decodes what arrives and hands it to the hub
//! (signalling) and the fleet driver (state, results), publishes the hub's messages on each
//! kiosk's `visit/in` and the driver's config and commands. Reconnects with backoff and
//! subscribes again after every ConnAck (a clean session forgets subscriptions), then counts
//! the connection in [`Wiring::connected`] so the driver re-sends retained config. Never logs
//! payload contents.
//!
//! What a device sends is screened before anyone acts on it: each device has a token bucket
//! ([`DeviceRates`]) so one flooding kiosk cannot delay the others' signalling (the excess is
//! dropped, with one log line per device now and then), and a retained message fleetd cannot
//! use (an undecodable or oversized `state`, or any retained `visit/out` or `cmd/result`,
//! which kiosks never retain) is cleared with an empty retained publish, so it does not come
//! back at every reconnection. The broker refuses packets larger than [`MAX_PACKET_BYTES`],
//! this client's own limit, so no message can make this client drop its connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use telekiosk_protocol::decode::MAX_MESSAGE_BYTES;
use telekiosk_protocol::device::DeviceState;
use telekiosk_protocol::{DecodeError, decode, encode, topics};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fleet::{FromKiosk, Publish};
use crate::signalling::Input;
use crate::signalling::hub::{HubHandle, HubMsg, KioskMessage};

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The largest MQTT packet fleetd's client accepts, and the broker's `max_packet_size` (it
/// drops a client that sends a larger one): the largest message the protocol allows, plus
/// room for the topic and the packet's header. One number for both, so the broker can never
/// hand fleetd a packet that would make it drop its connection. (mosquitto counts the whole
/// packet, rumqttc only what follows the fixed header, so the broker is the stricter of the
/// two; a packet the broker passes on is never larger than the one it accepted, as fleetd
/// speaks MQTT 3.1.1 and subscribes at the highest QoS kiosks use.)
pub const MAX_PACKET_BYTES: usize = MAX_MESSAGE_BYTES + 1024;

/// Messages a device may send at once ([`DeviceRates`]): a visit's set-up (offer, a few dozen
/// ICE candidates) and a state report fit several times over.
const DEVICE_BURST: f64 = 200.0;
/// Messages a device may send per second once its burst is spent: far above what a kiosk
/// sends (a state report when something changes, signalling during a visit).
const DEVICE_RATE: f64 = 20.0;
/// At most one "dropping" line per device this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Broker host name or IP address; must be a name in the broker's certificate.
    pub host: String,
    /// Broker TLS port.
    pub port: u16,
    /// TLS client configuration trusting the broker's CA and presenting fleetd's certificate.
    pub tls: Arc<rustls::ClientConfig>,
}

/// Why the MQTT client could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The client stopped before it was ever connected and subscribed.
    #[error("the MQTT client stopped before it was subscribed")]
    Stopped,
}

/// How the client is wired to the fleet driver: where kiosk reports go, what to publish, and
/// the connection count the driver watches.
#[derive(Debug)]
pub struct Wiring {
    /// Where kiosk state and command results go.
    pub to_fleet: mpsc::Sender<FromKiosk>,
    /// What to publish (config, retained; commands).
    pub publishes: mpsc::Receiver<Publish>,
    /// Counts subscribed connections: a new value means the broker may have forgotten
    /// retained messages.
    pub connected: watch::Sender<u64>,
}

/// The running client: its tasks and a way to learn when it is subscribed.
#[derive(Debug)]
pub struct Mqtt {
    client: AsyncClient,
    subscribed: watch::Receiver<bool>,
    tasks: [JoinHandle<()>; 3],
}

impl Mqtt {
    /// Starts the client. What kiosks send goes to `hub`; what `outbox` yields is published.
    pub fn start(
        settings: MqttSettings,
        hub: HubHandle,
        outbox: mpsc::Receiver<KioskMessage>,
        wiring: Wiring,
    ) -> Self {
        let client_id = format!("fleetd-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(client_id, settings.host.clone(), settings.port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            // Topic and packet overhead on top of the largest message the protocol allows.
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(settings.tls)));
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(5);
        eventloop.set_network_options(network);
        let (ready_tx, subscribed) = watch::channel(false);
        let where_ = format!("{}:{}", settings.host, settings.port);
        let Wiring { to_fleet, publishes, connected } = wiring;
        let links = Links { hub, to_fleet, ready: ready_tx, connected };
        let receive = tokio::spawn(receive(eventloop, client.clone(), links, where_));
        let publish = tokio::spawn(publish(client.clone(), outbox));
        let fleet = tokio::spawn(publish_fleet(client.clone(), publishes));
        Self { client, subscribed, tasks: [receive, publish, fleet] }
    }

    /// Waits until the client is connected and subscribed for the first time.
    pub async fn subscribed(&mut self) -> Result<(), MqttError> {
        self.subscribed.wait_for(|s| *s).await.map(|_| ()).map_err(|_| MqttError::Stopped)
    }

    /// The three tasks by name, for the supervisor to watch (see `supervise`).
    pub fn tasks_mut(&mut self) -> [(&'static str, &mut JoinHandle<()>); 3] {
        let [receive, publish, fleet] = &mut self.tasks;
        [("mqtt receive", receive), ("mqtt publish", publish), ("mqtt fleet publish", fleet)]
    }

    /// Disconnects cleanly (waiting at most a second), then stops the tasks.
    pub async fn stop(self) {
        let [mut receive, publish, fleet] = self.tasks;
        publish.abort();
        fleet.abort();
        // A finished task may already have been awaited by the supervisor: never poll it again.
        if !receive.is_finished() && self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut receive).await;
        }
        receive.abort();
    }
}

/// Where the receiving task hands things.
struct Links {
    hub: HubHandle,
    to_fleet: mpsc::Sender<FromKiosk>,
    ready: watch::Sender<bool>,
    connected: watch::Sender<u64>,
}

async fn receive(mut eventloop: EventLoop, client: AsyncClient, links: Links, broker: String) {
    let mut backoff = MIN_BACKOFF;
    let mut disconnecting = false;
    let mut rates = DeviceRates::new(DEVICE_BURST, DEVICE_RATE, DROP_LOG_EVERY);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%broker, "MQTT connected");
                backoff = MIN_BACKOFF;
                let filters = [topics::ALL_VISIT_OUT, topics::ALL_STATE, topics::ALL_CMD_RESULT]
                    .map(|t| SubscribeFilter::new(t.to_string(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(%broker, "cannot queue the MQTT subscription: {e}");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    tracing::error!(%broker, "the broker refused fleetd's subscription");
                } else {
                    tracing::info!(%broker, "MQTT subscribed to kiosk signalling, state and results");
                    links.ready.send_replace(true);
                    links.connected.send_modify(|n| *n += 1);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(device) = device_of(&p.topic) else {
                    tracing::warn!(
                        bytes = p.payload.len(),
                        "ignored a publish on an unexpected topic"
                    );
                    continue;
                };
                match rates.admit(device, Instant::now()) {
                    Admit::Yes => {}
                    Admit::Drop { report: None } => continue,
                    Admit::Drop { report: Some(dropped) } => {
                        tracing::warn!(
                            device,
                            dropped,
                            "device over its message rate: dropping its messages"
                        );
                        continue;
                    }
                }
                match screen(&p.topic, p.retain, &p.payload) {
                    Screen::Use => {}
                    Screen::Ignore => continue,
                    Screen::Clear(why) => {
                        let (topic, bytes) = (&p.topic, p.payload.len());
                        tracing::warn!(device, %topic, bytes, "cleared a retained message fleetd cannot use: {why}");
                        if let Err(e) =
                            client.try_publish(topic, QoS::AtLeastOnce, true, Vec::new())
                        {
                            tracing::error!(device, %topic, "cannot clear the retained message: {e}");
                        }
                        continue;
                    }
                }
                if let Some(input) = to_input(&p.topic, &p.payload)
                    && links.hub.send(HubMsg::Input(input)).await.is_err()
                {
                    return;
                }
                if let Some(msg) = to_fleet(&p.topic, &p.payload)
                    && links.to_fleet.send(msg).await.is_err()
                {
                    return;
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                tracing::info!(%broker, "MQTT disconnecting");
                disconnecting = true;
            }
            Ok(_) => {}
            Err(_) if disconnecting => return,
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                tracing::warn!(%broker, "MQTT connection failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn publish(client: AsyncClient, mut outbox: mpsc::Receiver<KioskMessage>) {
    while let Some((device_id, msg)) = outbox.recv().await {
        let payload = encode(&msg);
        let (visit, bytes) = (msg.visit_id().to_string(), payload.len());
        let topic = topics::visit_in(&device_id);
        match client.publish(topic, QoS::AtLeastOnce, false, payload).await {
            Ok(()) => tracing::debug!(device = %device_id, visit, bytes, "published to kiosk"),
            Err(e) => tracing::warn!(device = %device_id, visit, "cannot publish to kiosk: {e}"),
        }
    }
}

async fn publish_fleet(client: AsyncClient, mut publishes: mpsc::Receiver<Publish>) {
    while let Some(p) = publishes.recv().await {
        let (topic, bytes) = (p.topic.clone(), p.payload.len());
        if let Err(e) = client.publish(p.topic, QoS::AtLeastOnce, p.retain, p.payload).await {
            tracing::warn!(%topic, bytes, "cannot publish to kiosk: {e}");
        }
    }
}

/// The device a publish came from, if its topic is a device's.
fn device_of(topic: &str) -> Option<&str> {
    topics::parse(topic).map(|(id, _)| id).filter(|id| is_device_id(id))
}

/// What to do with a device's publish before decoding it for the hub or the driver.
#[derive(Debug, PartialEq, Eq)]
enum Screen {
    /// Pass it on.
    Use,
    /// Nothing to do (an empty message clears a retained one, e.g. ours).
    Ignore,
    /// A retained message fleetd cannot use, and would be handed again after every
    /// reconnection: publish an empty retained message to clear it (why, for the log).
    Clear(String),
}

/// Decides [`Screen`] for a publish on a device topic; `retain` is set when the broker hands
/// over a stored message (at subscription). Kiosks retain only `state`; a stored message on
/// another topic, or a `state` that does not decode (too large, malformed), is cleared.
/// A `state` is cleared even when it came live (retain unset): the broker may have stored it.
fn screen(topic: &str, retain: bool, payload: &[u8]) -> Screen {
    let Some((_, leaf)) = topics::parse(topic) else { return Screen::Ignore };
    if payload.is_empty() {
        return Screen::Ignore;
    }
    match leaf {
        "state" => match decode::<DeviceState>(payload) {
            Ok(_) => Screen::Use,
            Err(DecodeError::TooLarge { len, max }) => {
                Screen::Clear(format!("a state of {len} bytes, more than {max}"))
            }
            Err(_) => Screen::Clear("a state that does not decode".into()),
        },
        "visit/out" | "cmd/result" if retain => {
            Screen::Clear(format!("a retained {leaf}, which kiosks never send"))
        }
        _ => Screen::Use,
    }
}

/// Whether a device's message is taken ([`DeviceRates::admit`]).
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Yes,
    /// Dropped; `report` is how many of the device's messages were dropped so far, when it is
    /// time to log it (at most once per device per interval).
    Drop {
        report: Option<u64>,
    },
}

/// A token bucket per device: `burst` messages at once, refilled at `rate` per second. Plain
/// data: the caller gives the time. Buckets are forgotten once full again, so the map holds
/// only devices that sent recently.
#[derive(Debug)]
struct DeviceRates {
    burst: f64,
    rate: f64,
    log_every: Duration,
    buckets: HashMap<String, Bucket>,
    last_prune: Option<Instant>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
    reported: Option<Instant>,
}

impl DeviceRates {
    fn new(burst: f64, rate: f64, log_every: Duration) -> Self {
        Self { burst, rate, log_every, buckets: HashMap::new(), last_prune: None }
    }

    fn admit(&mut self, device: &str, now: Instant) -> Admit {
        self.prune(now);
        let burst = self.burst;
        if !self.buckets.contains_key(device) {
            let full = Bucket { tokens: burst, at: now, dropped: 0, reported: None };
            self.buckets.insert(device.to_string(), full);
        }
        let Some(bucket) = self.buckets.get_mut(device) else { unreachable!("just inserted") };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Admit::Yes;
        }
        bucket.dropped += 1;
        let due =
            bucket.reported.is_none_or(|r| now.saturating_duration_since(r) >= self.log_every);
        if !due {
            return Admit::Drop { report: None };
        }
        bucket.reported = Some(now);
        Admit::Drop { report: Some(bucket.dropped) }
    }

    /// Forgets, once a minute, devices whose bucket has filled up again.
    fn prune(&mut self, now: Instant) {
        if self
            .last_prune
            .is_some_and(|p| now.saturating_duration_since(p) < Duration::from_secs(60))
        {
            return;
        }
        self.last_prune = Some(now);
        let (burst, rate) = (self.burst, self.rate);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }
}

/// Turns a kiosk's state or command result into input for the fleet driver.
fn to_fleet(topic: &str, payload: &[u8]) -> Option<FromKiosk> {
    let (device_id, leaf) = topics::parse(topic).filter(|(id, _)| is_device_id(id))?;
    let device_id = device_id.to_string();
    match leaf {
        "state" if payload.is_empty() => None,
        "state" => Some(FromKiosk::State { device_id, state: decode(payload) }),
        "cmd/result" => Some(FromKiosk::Result { device_id, result: decode(payload) }),
        _ => None,
    }
}

/// Turns a publish from a kiosk into router input; `None` (logged) for anything else.
fn to_input(topic: &str, payload: &[u8]) -> Option<Input> {
    let Some((device_id, leaf)) = topics::parse(topic).filter(|(id, _)| is_device_id(id)) else {
        tracing::warn!(bytes = payload.len(), "ignored a publish on an unexpected topic");
        return None;
    };
    let device_id = device_id.to_string();
    match leaf {
        "visit/out" => Some(Input::FromKiosk { device_id, msg: decode(payload) }),
        // An empty retained message only clears the previous state.
        "state" if payload.is_empty() => None,
        "state" => Some(Input::KioskPresence { device_id, state: decode(payload) }),
        // The fleet driver's (see `to_fleet`).
        "cmd/result" => None,
        _ => {
            tracing::warn!(device = %device_id, leaf, "ignored a publish on an unexpected topic");
            None
        }
    }
}

/// Device ids are identifiers (the rule `telekiosk_protocol` applies to ids in messages); a
/// topic level that breaks it is not a kiosk of ours.
fn is_device_id(id: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    (1..=64).contains(&id.len()) && id.chars().all(ok_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use telekiosk_protocol::device::DeviceState;
    use telekiosk_protocol::visit::KioskToServer;

    #[test]
    fn a_kiosk_visit_message_becomes_router_input_for_that_device() {
        let msg = KioskToServer::Waiting {
            visit_id: "v1".into(),
            clinic: "c".into(),
            room: "r".into(),
            language: None,
            visit_code: None,
        };
        let input = to_input(&topics::visit_out("kiosk-a"), &encode(&msg));
        assert!(
            matches!(input, Some(Input::FromKiosk { device_id, msg: Ok(m) }) if device_id == "kiosk-a" && m == msg)
        );
    }

    #[test]
    fn a_last_will_becomes_presence_input_and_a_cleared_state_is_ignored() {
        let input = to_input(&topics::state("kiosk-a"), &encode(&DeviceState::offline()));
        assert!(matches!(input, Some(Input::KioskPresence { state: Ok(_), .. })));
        assert!(to_input(&topics::state("kiosk-a"), b"").is_none());
    }

    #[test]
    fn garbage_from_a_kiosk_reaches_the_router_as_a_decode_error() {
        let input = to_input(&topics::visit_out("kiosk-a"), b"{nope");
        assert!(matches!(input, Some(Input::FromKiosk { msg: Err(_), .. })));
    }

    #[test]
    fn state_and_command_results_go_to_the_fleet_driver() {
        let state = to_fleet(&topics::state("kiosk-a"), &encode(&DeviceState::offline()));
        assert!(matches!(state, Some(FromKiosk::State { state: Ok(_), .. })));
        let result = to_fleet(&topics::cmd_result("kiosk-a"), b"{nope");
        assert!(matches!(result, Some(FromKiosk::Result { result: Err(_), .. })));
        assert!(to_fleet(&topics::visit_out("kiosk-a"), b"{}").is_none());
        assert!(to_input(&topics::cmd_result("kiosk-a"), b"{}").is_none());
    }

    #[test]
    fn a_device_gets_its_burst_then_its_rate_and_drops_are_reported_once_per_interval() {
        let t0 = Instant::now();
        let mut rates = DeviceRates::new(3.0, 2.0, Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(rates.admit("dev-a", t0), Admit::Yes);
        }
        assert_eq!(rates.admit("dev-a", t0), Admit::Drop { report: Some(1) });
        assert_eq!(rates.admit("dev-a", t0), Admit::Drop { report: None });
        // Another device is not affected.
        assert_eq!(rates.admit("dev-b", t0), Admit::Yes);
        // Half a second refills one token (2 per second).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(rates.admit("dev-a", t1), Admit::Yes);
        assert_eq!(rates.admit("dev-a", t1), Admit::Drop { report: None });
        // The next report, ten seconds on, carries the count so far; the bucket is full again.
        let t2 = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(rates.admit("dev-a", t2), Admit::Yes);
        }
        assert_eq!(rates.admit("dev-a", t2), Admit::Drop { report: Some(4) });
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut rates = DeviceRates::new(3.0, 2.0, Duration::from_secs(10));
        assert_eq!(rates.admit("dev-a", t0), Admit::Yes);
        assert_eq!(rates.admit("dev-b", t0 + Duration::from_secs(61)), Admit::Yes);
        assert_eq!(rates.buckets.keys().collect::<Vec<_>>(), ["dev-b"]);
    }

    #[test]
    fn retained_messages_fleetd_cannot_use_are_cleared() {
        let state = topics::state("dev-a");
        let good = encode(&DeviceState::offline());
        assert_eq!(screen(&state, true, &good), Screen::Use);
        assert_eq!(screen(&state, false, b""), Screen::Ignore);
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        for (payload, retain) in [(&big[..], true), (b"{nope", true), (b"{nope", false)] {
            assert!(matches!(screen(&state, retain, payload), Screen::Clear(_)));
        }
        for topic in [topics::visit_out("dev-a"), topics::cmd_result("dev-a")] {
            assert!(matches!(screen(&topic, true, b"{}"), Screen::Clear(_)));
            assert_eq!(screen(&topic, false, b"{}"), Screen::Use);
            assert_eq!(screen(&topic, true, b""), Screen::Ignore);
        }
    }

    #[test]
    fn a_topic_with_a_bad_device_id_is_ignored() {
        assert!(to_input("telekiosk/v1/dev/bad id/visit/out", b"{}").is_none());
        assert!(to_input("elsewhere/visit/out", b"{}").is_none());
    }
}

//! The simulated kiosk on MQTT: a rumqttc client over mutual TLS with a last will saying
//! offline. On every ConnAck it subscribes to its `config` and `cmd` topics and reports its
//! state. Each document it verifies with fleetd's pinned Ed25519 key and its own device id;
//! a new config it applies (a `DeviceState` with the new `config_version`) or, if told to
//! refuse, answers with a `config_refusal`; a command it answers `done`. It reconnects by itself
//! (fleetd or broker restarts). What it saw is kept per kiosk ([`Seen`], for tests) and counted
//! across kiosks ([`Tally`], for the bench).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine;
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use telekiosk_protocol::command::{CommandOutcome, CommandPayload, CommandResult, SignedCommand};
use telekiosk_protocol::config::{ConfigPayload, SignedConfig};
use telekiosk_protocol::device::{ConfigRefusal, DeviceState, Health, PartStatus, Presence};
use telekiosk_protocol::{decode, encode, topics};
use tokio::task::JoinHandle;

use crate::Device;

/// How long [`Kiosk::until`] waits.
const PATIENCE: Duration = Duration::from_secs(30);

/// How the kiosk answers a new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Refuse,
}

/// How a kiosk behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub answer: Answer,
    /// Reports its camera missing.
    pub sick: bool,
    /// MQTT keep-alive: short notices a dead broker soon; long spares a broker with thousands
    /// of clients.
    pub keep_alive: Duration,
    /// The pause before connecting again after a failure.
    pub retry: Duration,
}

impl Behaviour {
    /// A healthy kiosk that notices a broker going away within seconds: for tests.
    pub fn quick(answer: Answer) -> Self {
        let (keep_alive, retry) = (Duration::from_secs(5), Duration::from_millis(200));
        Self { answer, sick: false, keep_alive, retry }
    }

    /// One of a large fleet: a minute's keep-alive, half a second between attempts.
    pub fn fleet(answer: Answer, sick: bool) -> Self {
        let (keep_alive, retry) = (Duration::from_secs(60), Duration::from_millis(500));
        Self { answer, sick, keep_alive, retry }
    }
}

/// Counts across every kiosk that shares it.
#[derive(Debug, Default)]
pub struct Tally {
    /// Kiosks connected at least once.
    pub connected: AtomicUsize,
    /// Kiosks that applied a config at least once.
    pub applied: AtomicUsize,
    /// Refusals sent.
    pub refused: AtomicUsize,
    /// Documents whose signature or device id did not check out.
    pub bad: AtomicUsize,
}

/// What one kiosk saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Versions of every config document received (duplicates included).
    pub configs: Vec<u64>,
    /// The version in force.
    pub applied: u64,
    /// Commands received, verified.
    pub commands: Vec<CommandPayload>,
    /// ConnAcks so far.
    pub connections: u32,
    /// Documents whose signature or device id did not check out.
    pub bad: Vec<String>,
}

/// A running simulated kiosk. Dropping it leaves it running; [`Kiosk::stop`] ends it.
pub struct Kiosk {
    pub id: String,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Kiosk {
    /// What it saw so far (a poisoned lock is taken over: `Seen` is only ever appended to).
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Versions received so far.
    pub fn configs(&self) -> Vec<u64> {
        self.seen().configs.clone()
    }

    /// The version in force.
    pub fn applied(&self) -> u64 {
        self.seen().applied
    }

    /// Waits until `check` holds for what the kiosk saw; panics after 30 s (for tests).
    pub async fn until(&self, what: &str, check: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check(&self.seen()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {what}: {:?}",
                self.id,
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Disconnects for good (no last will: it just stops).
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Starts a simulated kiosk for `device` against the broker on loopback `port`, with `tls`
/// presenting the device's certificate.
pub fn start(
    device: &Device,
    tls: rustls::ClientConfig,
    port: u16,
    behaviour: Behaviour,
    tally: Arc<Tally>,
) -> Kiosk {
    let id = device.id.clone();
    let mut options = MqttOptions::new(id.clone(), "127.0.0.1", port);
    options.set_keep_alive(behaviour.keep_alive);
    options.set_clean_session(true);
    let will =
        LastWill::new(topics::state(&id), encode(&DeviceState::offline()), QoS::AtLeastOnce, true);
    options.set_last_will(will);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    let (client, eventloop) = AsyncClient::new(options, 16);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sim = Sim {
        id: id.clone(),
        key: device.pinned.clone(),
        behaviour,
        client,
        seen: seen.clone(),
        tally,
    };
    let task = tokio::spawn(sim.run(eventloop));
    Kiosk { id, seen, task }
}

/// The kiosk's side of the connection, inside its task.
struct Sim {
    id: String,
    key: Vec<u8>,
    behaviour: Behaviour,
    client: AsyncClient,
    seen: Arc<Mutex<Seen>>,
    tally: Arc<Tally>,
}

impl Sim {
    async fn run(self, mut eventloop: rumqttc::EventLoop) {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(packet)) => self.on(packet),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(self.behaviour.retry).await,
            }
        }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on(&self, packet: Packet) {
        match packet {
            Packet::ConnAck(_) => {
                let applied = {
                    let mut s = self.seen();
                    s.connections += 1;
                    if s.connections == 1 {
                        self.tally.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    s.applied
                };
                for t in [topics::config(&self.id), topics::cmd(&self.id)] {
                    let _ = self.client.try_subscribe(t, QoS::AtLeastOnce);
                }
                self.report(&self.state(applied, None));
            }
            Packet::Publish(p) if p.topic == topics::config(&self.id) => {
                let Ok(signed) = decode::<SignedConfig>(&p.payload) else { return };
                match self.verified::<ConfigPayload>(&signed.payload, &signed.signature) {
                    Some(config) if config.device_id == self.id => self.on_config(config.version),
                    _ => self.bad(signed.payload),
                }
            }
            Packet::Publish(p) if p.topic == topics::cmd(&self.id) => {
                let Ok(signed) = decode::<SignedCommand>(&p.payload) else { return };
                match self.verified::<CommandPayload>(&signed.payload, &signed.signature) {
                    Some(cmd) if cmd.device_id == self.id => self.on_command(cmd),
                    _ => self.bad(signed.payload),
                }
            }
            _ => {}
        }
    }

    fn on_config(&self, version: u64) {
        let reply = {
            let mut s = self.seen();
            s.configs.push(version);
            match self.behaviour.answer {
                // The same document again (retained, re-sent) is already in force.
                _ if version == s.applied => None,
                Answer::Accept if version > s.applied => {
                    if s.applied == 0 {
                        self.tally.applied.fetch_add(1, Ordering::Relaxed);
                    }
                    s.applied = version;
                    Some(self.state(s.applied, None))
                }
                _ => {
                    self.tally.refused.fetch_add(1, Ordering::Relaxed);
                    let reason = "simulated kiosk refuses this config".to_string();
                    Some(self.state(s.applied, Some(ConfigRefusal { version, reason })))
                }
            }
        };
        if let Some(reply) = reply {
            self.report(&reply);
        }
    }

    fn on_command(&self, cmd: CommandPayload) {
        let result = CommandResult {
            command_id: cmd.command_id.clone(),
            outcome: CommandOutcome::Done,
            detail: "flashed the screen".into(),
        };
        self.seen().commands.push(cmd);
        let topic = topics::cmd_result(&self.id);
        let _ = self.client.try_publish(topic, QoS::AtLeastOnce, false, encode(&result));
    }

    fn bad(&self, payload: String) {
        self.tally.bad.fetch_add(1, Ordering::Relaxed);
        self.seen().bad.push(payload);
    }

    /// The payload, if the signature over it checks out with the pinned key and it decodes.
    fn verified<T: telekiosk_protocol::Validate + serde::de::DeserializeOwned>(
        &self,
        payload: &str,
        signature: &str,
    ) -> Option<T> {
        let sig = base64::engine::general_purpose::STANDARD.decode(signature).ok()?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.key)
            .verify(payload.as_bytes(), &sig)
            .ok()?;
        decode(payload.as_bytes()).ok()
    }

    fn report(&self, state: &DeviceState) {
        let topic = topics::state(&self.id);
        let _ = self.client.try_publish(topic, QoS::AtLeastOnce, true, encode(state));
    }

    fn state(&self, applied: u64, refusal: Option<ConfigRefusal>) -> DeviceState {
        let camera = if self.behaviour.sick { PartStatus::Missing } else { PartStatus::Ok };
        DeviceState {
            presence: Presence::Online,
            software: "telekiosk-sim 0.1".into(),
            clinic: String::new(),
            room: String::new(),
            config_version: applied,
            config_refusal: refusal,
            uptime_secs: 1,
            health: Health {
                camera,
                microphone: PartStatus::Ok,
                speaker: PartStatus::Ok,
                tpm: PartStatus::Ok,
            },
            network: None,
            last_visit: None,
            os: None,
        }
    }
}

//! A simulated kiosk for the fleet tests: an enrolled device (software key) that connects over
//! mutual TLS, subscribes to its `config` and `cmd` topics on every ConnAck, verifies each
//! document with fleetd's pinned Ed25519 key, and answers as a kiosk would: a `DeviceState`
//! with the new `config_version` (or a `config_refusal`), and a `CommandResult`. It reconnects
//! by itself (fleetd or broker restarts), with a last will saying offline.

use std::sync::{Arc, Mutex};
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

use super::{Device, WAIT};

/// How the kiosk answers a new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Refuse,
}

/// What the kiosk saw.
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

/// A running simulated kiosk.
pub struct SimKiosk {
    pub id: String,
    pub seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl SimKiosk {
    /// Versions received so far.
    pub fn configs(&self) -> Vec<u64> {
        self.seen.lock().unwrap().configs.clone()
    }

    /// The version in force.
    pub fn applied(&self) -> u64 {
        self.seen.lock().unwrap().applied
    }

    /// Waits until `check` holds for what the kiosk saw.
    pub async fn until(&self, what: &str, check: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        while !check(&self.seen.lock().unwrap()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {what}: {:?}",
                self.id,
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Disconnects for good (no last will: it just stops).
    pub fn stop(self) {
        self.task.abort();
    }
}

fn state(applied: u64, refusal: Option<ConfigRefusal>) -> DeviceState {
    DeviceState {
        presence: Presence::Online,
        software: "sim-1.0".into(),
        clinic: "North Clinic".into(),
        room: "sim".into(),
        config_version: applied,
        config_refusal: refusal,
        uptime_secs: 1,
        health: Health {
            camera: PartStatus::Ok,
            microphone: PartStatus::Ok,
            speaker: PartStatus::Ok,
            tpm: PartStatus::Ok,
        },
        network: None,
        last_visit: None,
    }
}

/// The raw 32-byte Ed25519 key inside a SubjectPublicKeyInfo PEM.
fn pinned_key(spki_pem: &str) -> Vec<u8> {
    let der = pem::parse(spki_pem).unwrap().contents().to_vec();
    assert_eq!(der.len(), 44, "an Ed25519 SubjectPublicKeyInfo");
    der[12..].to_vec()
}

fn verify(key: &[u8], payload: &str, signature: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature) else { return false };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(payload.as_bytes(), &sig)
        .is_ok()
}

/// Starts a simulated kiosk for `device` against the broker on `mqtt_port`.
pub fn start(
    device: &Device,
    tls: rustls::ClientConfig,
    mqtt_port: u16,
    answer: Answer,
) -> SimKiosk {
    let id = device.id.clone();
    let key = pinned_key(&device.signing_key_pem);
    let mut options = MqttOptions::new(format!("sim-{id}"), "127.0.0.1", mqtt_port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    let will =
        LastWill::new(topics::state(&id), encode(&DeviceState::offline()), QoS::AtLeastOnce, true);
    options.set_last_will(will);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (task_seen, task_id) = (seen.clone(), id.clone());
    let task = tokio::spawn(async move {
        let (seen, id) = (task_seen, task_id);
        loop {
            let event = match eventloop.poll().await {
                Ok(e) => e,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Event::Incoming(packet) = event else { continue };
            match packet {
                Packet::ConnAck(_) => {
                    let applied = {
                        let mut s = seen.lock().unwrap();
                        s.connections += 1;
                        s.applied
                    };
                    for t in [topics::config(&id), topics::cmd(&id)] {
                        let _ = client.try_subscribe(t, QoS::AtLeastOnce);
                    }
                    let _ = client.try_publish(
                        topics::state(&id),
                        QoS::AtLeastOnce,
                        true,
                        encode(&state(applied, None)),
                    );
                }
                Packet::Publish(p) if p.topic == topics::config(&id) => {
                    let Ok(signed) = decode::<SignedConfig>(&p.payload) else { continue };
                    let payload: ConfigPayload = match decode(signed.payload.as_bytes()) {
                        Ok(c) if verify(&key, &signed.payload, &signed.signature) => c,
                        _ => {
                            seen.lock().unwrap().bad.push(signed.payload);
                            continue;
                        }
                    };
                    if payload.device_id != id {
                        seen.lock().unwrap().bad.push(signed.payload);
                        continue;
                    }
                    let reply = {
                        let mut s = seen.lock().unwrap();
                        s.configs.push(payload.version);
                        match answer {
                            // The same document again (retained, re-sent) is already in force.
                            _ if payload.version == s.applied => None,
                            Answer::Accept if payload.version > s.applied => {
                                s.applied = payload.version;
                                Some(state(s.applied, None))
                            }
                            _ => {
                                let reason = "simulated kiosk refuses this config".to_string();
                                let refusal = ConfigRefusal { version: payload.version, reason };
                                Some(state(s.applied, Some(refusal)))
                            }
                        }
                    };
                    if let Some(reply) = reply {
                        let _ = client.try_publish(
                            topics::state(&id),
                            QoS::AtLeastOnce,
                            true,
                            encode(&reply),
                        );
                    }
                }
                Packet::Publish(p) if p.topic == topics::cmd(&id) => {
                    let Ok(signed) = decode::<SignedCommand>(&p.payload) else { continue };
                    let ok = verify(&key, &signed.payload, &signed.signature);
                    let payload = match decode::<CommandPayload>(signed.payload.as_bytes()) {
                        Ok(c) if ok && c.device_id == id => c,
                        _ => {
                            seen.lock().unwrap().bad.push(signed.payload);
                            continue;
                        }
                    };
                    let result = CommandResult {
                        command_id: payload.command_id.clone(),
                        outcome: CommandOutcome::Done,
                        detail: "flashed the screen".into(),
                    };
                    seen.lock().unwrap().commands.push(payload);
                    let _ = client.try_publish(
                        topics::cmd_result(&id),
                        QoS::AtLeastOnce,
                        false,
                        encode(&result),
                    );
                }
                _ => {}
            }
        }
    });
    SimKiosk { id, seen, task }
}

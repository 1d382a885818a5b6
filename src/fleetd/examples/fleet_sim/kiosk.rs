//! One simulated kiosk for the bench: a real MQTT client over mutual TLS with a software key
//! (the simulator only; real kiosks keep theirs in the TPM). On every ConnAck it subscribes to
//! its `config` topic and reports its state; each config it verifies against the pinned key
//! and answers with its new `config_version`, or a refusal if told to refuse. Commands are
//! verified the same way and answered `done`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use telekiosk_protocol::command::{CommandOutcome, CommandPayload, CommandResult, SignedCommand};
use telekiosk_protocol::config::{ConfigPayload, SignedConfig};
use telekiosk_protocol::device::{ConfigRefusal, DeviceState, Health, PartStatus, Presence};
use telekiosk_protocol::{decode, encode, topics};

/// Counters shared by every simulated kiosk.
#[derive(Debug, Default)]
pub struct Counters {
    /// Kiosks connected at least once.
    pub connected: AtomicUsize,
    /// Kiosks that applied a config (the bench starts from a fresh fleet, all at version 0).
    pub applied: AtomicUsize,
    /// Refusals sent.
    pub refused: AtomicUsize,
    /// Documents that failed verification.
    pub bad: AtomicUsize,
}

/// How a kiosk behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub refuse: bool,
    pub sick: bool,
}

fn state(applied: u64, refusal: Option<ConfigRefusal>, b: Behaviour) -> DeviceState {
    let camera = if b.sick { PartStatus::Missing } else { PartStatus::Ok };
    DeviceState {
        presence: Presence::Online,
        software: "fleet-sim 0.1".into(),
        clinic: String::new(),
        room: String::new(),
        config_version: applied,
        config_refusal: refusal,
        uptime_secs: 3600,
        health: Health {
            camera,
            microphone: PartStatus::Ok,
            speaker: PartStatus::Ok,
            tpm: PartStatus::Ok,
        },
        network: None,
        last_visit: None,
    }
}

/// Runs one kiosk until the process ends.
pub async fn run(
    id: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    pinned: Arc<Vec<u8>>,
    b: Behaviour,
    counters: Arc<Counters>,
) {
    let mut options = MqttOptions::new(id.clone(), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    let will = encode(&DeviceState::offline());
    options.set_last_will(LastWill::new(topics::state(&id), will, QoS::AtLeastOnce, true));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pinned.to_vec());
    let (mut applied, mut first) = (0u64, true);
    loop {
        let packet = match eventloop.poll().await {
            Ok(Event::Incoming(p)) => p,
            Ok(_) => continue,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match packet {
            Packet::ConnAck(_) => {
                if std::mem::take(&mut first) {
                    counters.connected.fetch_add(1, Ordering::Relaxed);
                }
                let _ = client.try_subscribe(topics::config(&id), QoS::AtLeastOnce);
                let _ = client.try_subscribe(topics::cmd(&id), QoS::AtLeastOnce);
                let report = encode(&state(applied, None, b));
                let _ = client.try_publish(topics::state(&id), QoS::AtLeastOnce, true, report);
            }
            Packet::Publish(p) if p.topic.ends_with("/cmd") => {
                let Ok(signed) = decode::<SignedCommand>(&p.payload) else { continue };
                let sig = base64::engine::general_purpose::STANDARD.decode(&signed.signature);
                let verified = sig.is_ok_and(|s| key.verify(signed.payload.as_bytes(), &s).is_ok());
                let Ok(cmd) = decode::<CommandPayload>(signed.payload.as_bytes()) else { continue };
                if !verified || cmd.device_id != id {
                    counters.bad.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let detail = "fleet-sim: done".to_string();
                let result = CommandResult {
                    command_id: cmd.command_id,
                    outcome: CommandOutcome::Done,
                    detail,
                };
                let _ = client.try_publish(
                    topics::cmd_result(&id),
                    QoS::AtLeastOnce,
                    false,
                    encode(&result),
                );
            }
            Packet::Publish(p) => {
                let Ok(signed) = decode::<SignedConfig>(&p.payload) else { continue };
                let sig = base64::engine::general_purpose::STANDARD.decode(&signed.signature);
                let verified = sig.is_ok_and(|s| key.verify(signed.payload.as_bytes(), &s).is_ok());
                let payload = match decode::<ConfigPayload>(signed.payload.as_bytes()) {
                    Ok(c) if verified && c.device_id == id => c,
                    _ => {
                        counters.bad.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                if payload.version <= applied {
                    continue;
                }
                let report = if b.refuse {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    let reason = "fleet-sim refuses this config".to_string();
                    state(applied, Some(ConfigRefusal { version: payload.version, reason }), b)
                } else {
                    if applied == 0 {
                        counters.applied.fetch_add(1, Ordering::Relaxed);
                    }
                    applied = payload.version;
                    state(applied, None, b)
                };
                let _ =
                    client.try_publish(topics::state(&id), QoS::AtLeastOnce, true, encode(&report));
            }
            _ => {}
        }
    }
}

//! MQTT adapter: the kiosk's one outbound connection to the fleet (TLS on 8883).
//!
//! It publishes the kiosk's retained state (last will: offline) and command results, sends visit
//! signalling on `visit/out`, decodes what arrives on `visit/in` — with the protocol crate's
//! limits — and hands the raw bytes of `config` and `cmd` documents to the controller, which
//! verifies them (signatures are over exact bytes, so nothing here parses them). It never
//! decides anything about a visit, a config or a command. After every ConnAck it subscribes
//! again to `visit/in`, `config` and `cmd` (the broker may have come back without our session;
//! it then delivers the retained config again) and republishes the latest state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use telekiosk_protocol::command::CommandResult;
use telekiosk_protocol::decode::MAX_MESSAGE_BYTES;
use telekiosk_protocol::device::DeviceState;
use telekiosk_protocol::visit::{KioskToServer, ServerToKiosk};
use telekiosk_protocol::{DecodeError, decode, encode, topics};
use tokio::sync::mpsc::UnboundedSender;

/// Why the fleet link could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("the fleet CA certificate is not usable: {0}")]
    Ca(String),
    #[error("cannot send to fleetd: {0}")]
    Send(#[from] rumqttc::ClientError),
}

/// What the link reports to the controller.
#[derive(Debug)]
pub enum UplinkEvent {
    /// Connected (again) and subscribed.
    Connected,
    /// The connection dropped; rumqttc reconnects after a back-off.
    Disconnected(String),
    /// A message on `visit/in`, decoded or refused with its reason.
    Visit(Result<ServerToKiosk, DecodeError>),
    /// A document on `config` (retained), as received: the controller verifies it.
    Config(Vec<u8>),
    /// A document on `cmd`, as received: the controller verifies it.
    Command(Vec<u8>),
}

/// Where and who: the broker, TLS (the fleet CA, and this kiosk's certificate with its
/// TPM-held key), this kiosk's id.
#[derive(Clone)]
pub struct UplinkOptions {
    pub host: String,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    pub device_id: String,
}

/// Handle to send on the link. Cheap to clone.
#[derive(Clone)]
pub struct MqttUplink {
    client: AsyncClient,
    device_id: String,
    /// The latest state, republished after every (re)connection.
    state: Arc<Mutex<Option<DeviceState>>>,
}

impl MqttUplink {
    /// Starts the link; it keeps reconnecting until the process ends.
    pub fn start(
        opts: &UplinkOptions,
        events: UnboundedSender<UplinkEvent>,
    ) -> Result<Self, UplinkError> {
        let mut mqtt = MqttOptions::new(format!("kiosk-{}", opts.device_id), &opts.host, opts.port);
        mqtt.set_keep_alive(Duration::from_secs(10));
        mqtt.set_clean_session(true);
        let limit = MAX_MESSAGE_BYTES + 1024;
        mqtt.set_max_packet_size(limit, limit);
        let will = encode(&DeviceState::offline());
        mqtt.set_last_will(LastWill::new(
            topics::state(&opts.device_id),
            will,
            QoS::AtLeastOnce,
            true,
        ));
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(opts.tls.clone())));
        let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
        let link = Self { client, device_id: opts.device_id.clone(), state: Arc::default() };
        let task_link = link.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        failures = 0;
                        task_link.on_connected();
                        let _ = events.send(UplinkEvent::Connected);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let id = &task_link.device_id;
                        let event = if p.topic == topics::visit_in(id) {
                            UplinkEvent::Visit(decode(&p.payload))
                        } else if p.topic == topics::config(id) {
                            UplinkEvent::Config(p.payload.to_vec())
                        } else if p.topic == topics::cmd(id) {
                            UplinkEvent::Command(p.payload.to_vec())
                        } else {
                            continue;
                        };
                        let _ = events.send(event);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failures += 1;
                        let _ = events.send(UplinkEvent::Disconnected(e.to_string()));
                        tokio::time::sleep(backoff(failures)).await;
                    }
                }
            }
        });
        Ok(link)
    }

    /// Runs in the event-loop task, which must not wait on its own request queue: `try_`.
    fn on_connected(&self) {
        let id = &self.device_id;
        let mut results = vec![];
        for topic in [topics::visit_in(id), topics::config(id), topics::cmd(id)] {
            results.push(self.client.try_subscribe(topic, QoS::AtLeastOnce));
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(state) = state {
            results.push(self.client.try_publish(
                topics::state(id),
                QoS::AtLeastOnce,
                true,
                encode(&state),
            ));
        }
        for r in results {
            if let Err(e) = r {
                tracing::warn!("fleet link: {e}");
            }
        }
    }

    /// Keeps `state` as the kiosk's latest, published after every (re)connection.
    pub fn set_state(&self, state: DeviceState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    /// Keeps `state` and publishes it now (retained, QoS 1). Never waits: if the link's queue is
    /// full (offline for long), this copy is dropped and the next connection sends the latest.
    pub fn publish_state(&self, state: DeviceState) -> Result<(), UplinkError> {
        let bytes = encode(&state);
        self.set_state(state);
        self.client.try_publish(topics::state(&self.device_id), QoS::AtLeastOnce, true, bytes)?;
        Ok(())
    }

    /// Publishes a command's result on `cmd/result` (QoS 1). Never waits, like
    /// [`MqttUplink::publish_state`].
    pub fn send_result(&self, result: &CommandResult) -> Result<(), UplinkError> {
        let topic = topics::cmd_result(&self.device_id);
        self.client.try_publish(topic, QoS::AtLeastOnce, false, encode(result))?;
        Ok(())
    }

    /// Disconnects cleanly (after what is queued), e.g. before a restart.
    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }

    /// Publishes one signalling message on `visit/out` (QoS 1).
    pub async fn send(&self, msg: &KioskToServer) -> Result<(), UplinkError> {
        let topic = topics::visit_out(&self.device_id);
        self.client.publish(topic, QoS::AtLeastOnce, false, encode(msg)).await?;
        Ok(())
    }
}

/// TLS that trusts only the fleet's CA (PEM) and, once enrolled, presents this kiosk's
/// certificate with signatures made by its key.
pub fn tls_config(
    ca_pem: &[u8],
    client_auth: Option<Arc<dyn rustls::client::ResolvesClientCert>>,
) -> Result<Arc<rustls::ClientConfig>, UplinkError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| UplinkError::Ca(e.to_string()))?;
        roots.add(cert).map_err(|e| UplinkError::Ca(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(UplinkError::Ca("no certificate in it".into()));
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client_auth {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Exponential back-off from 1 s to 30 s, with ±25 % jitter so a clinic's kiosks do not all
/// reconnect in the same instant after a broker restart.
fn backoff(failures: u32) -> Duration {
    let base = (1u64 << failures.min(5)).min(30) as f64;
    Duration::from_secs_f64(base * (0.75 + fastrand::f64() * 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_thirty_seconds_with_jitter() {
        for failures in 1..20 {
            let d = backoff(failures).as_secs_f64();
            let base = (1u64 << failures.min(5)).min(30) as f64;
            assert!(d >= base * 0.75 && d <= base * 1.25, "{failures}: {d}");
        }
        assert!(backoff(50).as_secs_f64() <= 37.5);
    }
}

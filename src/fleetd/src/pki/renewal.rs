//! fleetd's own certificates while it runs (review M10): the server certificate (HTTPS and the
//! embedded broker) and fleetd's MQTT client certificate are issued again when less than 30
//! days are left, checked every [`CHECK_EVERY`], and taken into use without a restart:
//!
//! - HTTPS: the listener's [`RustlsConfig`] is swapped; new handshakes get the new certificate,
//!   open connections (console WebSockets, running visits) keep theirs.
//! - The embedded mosquitto: SIGHUP (measured with mosquitto 2.0.11: the listener presents the
//!   new certificate from the next handshake on; open connections stay).
//! - fleetd's MQTT client: its TLS configuration takes the client certificate from a
//!   [`ClientIdentity`], so the next reconnect presents the new one; the open connection stays.
//!
//! The same check logs a warning for every kiosk certificate with less than 30 days left.
//! Owns the check and the swap; never replaces the CA, never writes a key readable by others
//! (see [`super::write`]), never logs a key.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rcgen::Issuer;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use super::{Pki, PkiError, RENEW_BEFORE, ca, ensure_at, invalid, load_certs};
use crate::broker::BrokerControl;
use crate::registry::Registry;

/// How often the certificates are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Issues the server certificate again if it is near its end (or names other names) at `now`;
/// `true` if it did.
pub fn renew_server_if_due(
    pki: &Pki,
    hostname: &str,
    names: &[String],
    now: OffsetDateTime,
) -> Result<bool, PkiError> {
    let before = std::fs::read(&pki.server_cert).ok();
    ensure_at(pki.clone(), hostname, names, now)?;
    Ok(std::fs::read(&pki.server_cert).ok() != before)
}

/// fleetd's MQTT client certificate, swappable while the client runs.
#[derive(Debug)]
pub struct ClientIdentity {
    current: RwLock<(Arc<CertifiedKey>, i64)>,
}

impl ClientIdentity {
    /// A fresh identity issued by `issuer` at `now`.
    pub fn issue(
        issuer: &Issuer<'_, rcgen::KeyPair>,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        Ok(Self { current: RwLock::new(certified(issuer, now)?) })
    }

    /// When the current certificate ends (Unix seconds).
    pub fn not_after(&self) -> i64 {
        self.current.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Issues a new certificate if less than 30 days are left at `now`; `true` if it did.
    pub fn renew_if_due(
        &self,
        issuer: &Issuer<'_, rcgen::KeyPair>,
        now: OffsetDateTime,
    ) -> Result<bool, PkiError> {
        if self.not_after() - now.unix_timestamp() > RENEW_BEFORE.whole_seconds() {
            return Ok(false);
        }
        let fresh = certified(issuer, now)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(true)
    }
}

impl ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn certified(
    issuer: &Issuer<'_, rcgen::KeyPair>,
    now: OffsetDateTime,
) -> Result<(Arc<CertifiedKey>, i64), PkiError> {
    let (chain, key) = ca::fleetd_client_identity(issuer, now)?;
    let not_after = not_after_of(&chain[0]).unwrap_or(now.unix_timestamp());
    let key = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok((Arc::new(CertifiedKey::new(chain, key)), not_after))
}

fn not_after_of(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// A rustls client configuration trusting the CA certificates in `ca_files` and presenting the
/// client certificate `identity` holds at each handshake.
pub fn client_tls(
    ca_files: &[PathBuf],
    identity: Arc<ClientIdentity>,
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for path in ca_files {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| invalid(path, e))?;
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(Arc::new(builder.with_client_cert_resolver(identity)))
}

/// What the check reloads when it issued something.
pub struct Reload {
    /// The HTTPS listener's configuration.
    pub web: RustlsConfig,
    /// The embedded broker, if fleetd runs one.
    pub broker: Option<BrokerControl>,
    /// fleetd's MQTT client certificate.
    pub mqtt: Arc<ClientIdentity>,
    /// The console listener's configuration and the operator's certificate and key files
    /// (`--web-cert`, `--web-key`), re-read at every check.
    pub operator: Option<(RustlsConfig, PathBuf, PathBuf)>,
}

/// What one check did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub server_renewed: bool,
    pub client_renewed: bool,
}

/// One check at `now`: renews what is due and reloads what uses it. Blocking (files, signing):
/// run it on the blocking pool.
pub fn check(
    pki: &Pki,
    hostname: &str,
    names: &[String],
    reload: &Reload,
    now: OffsetDateTime,
) -> Result<Checked, PkiError> {
    let server_renewed = renew_server_if_due(pki, hostname, names, now)?;
    if server_renewed {
        reload.web.reload_from_config(super::server_tls(pki)?);
        if let Some(broker) = &reload.broker {
            broker.reload();
        }
        tracing::info!("server certificate renewed; HTTPS and the broker use it from now on");
    }
    if let Some((config, cert, key)) = &reload.operator {
        match super::web::operator_tls(cert, key) {
            Ok(tls) => config.reload_from_config(tls),
            Err(e) => tracing::error!("cannot re-read the console certificate (--web-cert): {e}"),
        }
    }
    let client_renewed = reload.mqtt.renew_if_due(&super::ca_issuer(pki)?, now)?;
    if client_renewed {
        tracing::info!("fleetd's MQTT client certificate renewed; used from the next connection");
    }
    Ok(Checked { server_renewed, client_renewed })
}

/// Runs [`check`] and the kiosk-certificate warning every [`CHECK_EVERY`] (the first at once).
/// A failed check is logged and tried again at the next tick.
pub fn spawn(
    pki: Pki,
    hostname: String,
    names: Vec<String>,
    registry: Arc<Registry>,
    reload: Reload,
) -> JoinHandle<()> {
    let shared = Arc::new((pki, hostname, names, registry, reload));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let job = shared.clone();
            let done = tokio::task::spawn_blocking(move || {
                let (pki, hostname, names, registry, reload) = &*job;
                let now = OffsetDateTime::now_utc();
                if let Err(e) = registry.warn_near_expiry(now.unix_timestamp()) {
                    tracing::error!("cannot list the kiosk certificates near their end: {e}");
                }
                check(pki, hostname, names, reload, now)
            })
            .await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!("certificate renewal failed (next try in an hour): {e}")
                }
                Err(e) => tracing::error!("certificate renewal check panicked: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests;

//! Keeps the CRL file (`crl.pem`) and the broker in step with the registry. Runs inside
//! `fleetd serve`; the CLI only changes the database, and this notices within a second by
//! polling the registry generation (or at once when the web API pokes it).
//!
//! When the set of revoked serials changes it writes a new CRL atomically (write, fsync,
//! rename) and restarts the embedded broker, which is what closes a revoked device's open
//! connection (see [`crate::broker`]). It also re-issues the CRL daily, long before it
//! expires, and has the broker re-read it (SIGHUP). It never deletes a serial from the CRL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::broker::BrokerControl;
use crate::pki::ca;
use crate::pki::{self, PkiError};
use crate::registry::Registry;
use crate::store::StoreError;

/// How often the registry generation is read.
const POLL: Duration = Duration::from_secs(1);
/// How often the CRL is issued again even if nothing changed.
const REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Why the CRL could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The registry could not be read.
    #[error("cannot read the revoked devices: {0}")]
    Store(#[from] StoreError),
    /// The CRL could not be signed or written.
    #[error("cannot write the revocation list: {0}")]
    Pki(#[from] PkiError),
}

/// One revoked certificate in the CRL: (device id, serial).
pub type Listed = (String, String);

/// Writes the CRL for the registry's revoked certificates to `path`; returns what it lists.
pub fn write_crl(registry: &Registry, path: &Path) -> Result<Vec<Listed>, RevocationError> {
    let revoked = registry.revoked()?;
    let certs: Vec<_> = revoked.iter().map(|(_, cert)| cert.clone()).collect();
    let issuer = pki::ca_issuer(registry.pki())?;
    let pem = ca::build_crl(&issuer, &certs, OffsetDateTime::now_utc())?;
    pki::write(path, &pem, 0o644)?;
    Ok(revoked.into_iter().map(|(id, cert)| (id, cert.serial)).collect())
}

/// The running watcher: poke it after a change to skip the wait for the next poll.
#[derive(Debug, Clone)]
pub struct Watcher {
    poke: Arc<Notify>,
}

impl Watcher {
    /// Checks the registry now rather than at the next poll.
    pub fn poke(&self) {
        self.poke.notify_one();
    }
}

/// Starts the watcher. `applied` are the serials in the CRL written at start; `broker` is the
/// embedded broker, or `None` for an external one (which the operator must make re-read the
/// CRL file: the watcher logs when that is needed).
pub fn spawn(
    registry: Arc<Registry>,
    crl: PathBuf,
    applied: Vec<Listed>,
    broker: Option<BrokerControl>,
) -> (Watcher, JoinHandle<()>) {
    let poke = Arc::new(Notify::new());
    let watcher = Watcher { poke: poke.clone() };
    (watcher, tokio::spawn(run(registry, crl, applied, broker, poke)))
}

async fn run(
    registry: Arc<Registry>,
    crl: PathBuf,
    mut applied: Vec<Listed>,
    broker: Option<BrokerControl>,
    poke: Arc<Notify>,
) {
    let mut seen = registry.generation().ok();
    let mut written = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = poke.notified() => {}
        }
        crate::supervise::injected_panic("revocation watcher");
        let generation = match registry.generation() {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::error!("cannot read the registry generation: {e}");
                continue;
            }
        };
        let stale = written.elapsed() >= REFRESH;
        if generation == seen && !stale {
            continue;
        }
        let revoked = match registry.revoked() {
            Ok(r) => r.into_iter().map(|(id, cert)| (id, cert.serial)).collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!("cannot read the revoked devices: {e}");
                continue;
            }
        };
        seen = generation;
        if revoked == applied && !stale {
            continue;
        }
        match write_crl(&registry, &crl) {
            Ok(listed) => {
                written = Instant::now();
                for (device, serial) in listed.iter().filter(|l| !applied.contains(l)) {
                    tracing::info!(target: "fleetd::audit", device, serial, "revoked device's certificate added to the CRL");
                }
                let changed = listed != applied;
                applied = listed;
                apply(changed, applied.len(), &crl, broker.as_ref());
            }
            // Retried at the next poll: `seen` is reset so the change is not forgotten.
            Err(e) => {
                tracing::error!(path = %crl.display(), "{e}; retrying");
                seen = None;
            }
        }
    }
}

/// Makes the broker use the CRL just written.
fn apply(changed: bool, revoked: usize, crl: &Path, broker: Option<&BrokerControl>) {
    match (broker, changed) {
        (Some(broker), true) => {
            tracing::info!(
                revoked,
                "revocation list changed: restarting the broker to close revoked connections"
            );
            broker.restart();
        }
        (Some(broker), false) => broker.reload(),
        (None, true) => tracing::warn!(
            revoked, path = %crl.display(),
            "revocation list changed: the external broker must re-read this file and drop the \
             revoked device's connection (mosquitto: restart it; SIGHUP only affects new connections)"
        ),
        (None, false) => tracing::info!(
            path = %crl.display(),
            "revocation list re-issued: the external broker must re-read it before the old one expires"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::DataDir;
    use crate::store::Store;
    use rustls::pki_types::CertificateRevocationListDer;
    use rustls::pki_types::pem::PemObject;
    use telekiosk_protocol::api::{EnrolRequest, NewEnrolToken};
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;

    fn crl_serials(path: &Path) -> Vec<String> {
        let der = CertificateRevocationListDer::from_pem_file(path).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        crl.iter_revoked_certificates().map(|r| hex(r.raw_serial())).collect()
    }

    #[test]
    fn the_crl_file_lists_every_revoked_certificate_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::ensure(DataDir::of(&dir).pki(), "host").unwrap();
        let registry = Registry::new(Store::in_memory(), pki, String::new()).unwrap();
        let crl = DataDir::of(&dir).crl();
        assert_eq!(write_crl(&registry, &crl).unwrap(), vec![]);
        assert_eq!(crl_serials(&crl), Vec::<String>::new());

        let mut ids = Vec::new();
        for room in ["1", "2"] {
            let req = NewEnrolToken { clinic: "c".into(), room: room.into(), ttl_secs: None };
            let token = registry.create_token(&req, "admin", 0).unwrap().token;
            let key = rcgen::KeyPair::generate().unwrap();
            let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap();
            let req = EnrolRequest { token, csr_pem: csr.pem().unwrap() };
            let id = registry.enrol(&req, 0).unwrap().device_id;
            registry.approve(&id, "admin", 0).unwrap();
            ids.push(id);
        }
        let revoked = registry.revoke(&ids[0], "admin", 0).unwrap();
        let listed = write_crl(&registry, &crl).unwrap();
        assert_eq!(listed, vec![(ids[0].clone(), revoked.cert_serial.clone().unwrap())]);
        assert_eq!(crl_serials(&crl), vec![revoked.cert_serial.unwrap()]);
        assert!(!dir.path().join("crl.tmp").exists(), "no temporary file left behind");
    }
}

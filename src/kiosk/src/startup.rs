//! Bring-up before the first visit: the TPM identity, enrolment, the TLS every connection
//! then uses, and the certificate renewal loop ([`crate::renewal`]). On any failure the kiosk
//! shows "This kiosk needs service" with the reason; it never falls back to a software key
//! unless the development flag says so, loudly.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::enrol::{self, Credentials, EnrolError};
use crate::identity::{DeviceKey, IdentityError, SoftwareKey, Tpm};
use crate::renewal::{RenewableCert, Renewal, RenewalTask};
use crate::uplink::{UplinkError, tls_config};

/// What bring-up needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: url::Url,
    /// The fleet CA the kiosk was installed with (PEM).
    pub ca_pem: Vec<u8>,
    pub state_dir: PathBuf,
    /// TCTI of the TPM, e.g. `device:/dev/tpmrm0`.
    pub tcti: String,
    pub enrol_token: Option<String>,
    /// DEVELOPMENT ONLY: a software key instead of the TPM.
    pub insecure_software_key: bool,
}

/// Why the kiosk cannot come up; each says what to do in its message.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the security chip (TPM) is not working: {0}")]
    Tpm(#[from] IdentityError),
    #[error("no TPM is configured: set [tpm] tcti in the hardware profile or pass --tpm")]
    NoTpm,
    #[error("{0}")]
    Enrol(#[from] EnrolError),
    #[error("{0}")]
    Tls(#[from] UplinkError),
    #[error("cannot use the development key in {path}: {reason}")]
    DevKey { path: PathBuf, reason: String },
}

/// The kiosk's identity, ready for every TLS connection.
pub struct Identity {
    pub credentials: Credentials,
    pub key: DeviceKey,
    /// Trusts the fleet CA and presents this kiosk's certificate with its key.
    pub tls: Arc<rustls::ClientConfig>,
    /// Renews the certificate at two thirds of its life (stops when dropped).
    _renewal: RenewalTask,
    /// Keeps the TPM worker alive as long as the key is used.
    _tpm: Option<Tpm>,
}

/// Opens the TPM (or the development key), loads or creates the device key, and enrols if this
/// kiosk has not been enrolled; `progress` gets plain-words status for the set-up screen.
pub async fn identity(
    settings: &Settings,
    progress: impl Fn(&str),
) -> Result<Identity, StartError> {
    progress("Checking this kiosk's security chip…");
    let (key, tpm) = if settings.insecure_software_key {
        (development_key(settings)?, None)
    } else {
        if settings.tcti.is_empty() {
            return Err(StartError::NoTpm);
        }
        let (tcti, dir) = (settings.tcti.clone(), settings.state_dir.clone());
        let (key, tpm) = tokio::task::spawn_blocking(move || {
            let tpm = Tpm::open(&tcti)?;
            let key = tpm.device_key(&dir)?;
            Ok::<_, IdentityError>((key, tpm))
        })
        .await
        .expect("TPM bring-up task does not panic")?;
        (key, Some(tpm))
    };
    tracing::info!(key = %key.describe(), "device key ready");
    let credentials = match enrol::load(&settings.state_dir, &key)? {
        Some(creds) => creds,
        None => {
            let token = settings.enrol_token.as_deref().ok_or(EnrolError::NoToken)?;
            let plain_tls = tls_config(&settings.ca_pem, None)?;
            enrol::enrol(&settings.server, plain_tls, &key, token, &settings.state_dir, &progress)
                .await?
        }
    };
    tracing::info!(device = %credentials.device_id, "enrolled");
    // Every connection asks `cert` for the client certificate, so a renewed one is used from
    // the next connection on.
    let cert = RenewableCert::new(key.clone(), credentials.chain()?);
    let tls = tls_config(credentials.ca_pem.as_bytes(), Some(cert.clone()))?;
    let renewal = Renewal {
        server: settings.server.clone(),
        tls: tls.clone(),
        key: key.clone(),
        cert,
        state_dir: settings.state_dir.clone(),
    };
    let renewal = RenewalTask::spawn(renewal, credentials.clone());
    Ok(Identity { credentials, key, tls, _renewal: renewal, _tpm: tpm })
}

impl Identity {
    /// The TPM holding the key; `None` with the development key.
    pub fn tpm(&self) -> Option<&Tpm> {
        self._tpm.as_ref()
    }
}

fn development_key(settings: &Settings) -> Result<DeviceKey, StartError> {
    let path = settings.state_dir.join("INSECURE-development-key.pk8");
    tracing::warn!(
        "INSECURE: using a software key ({}) instead of the TPM. Development only: anyone who \
         can read that file can impersonate this kiosk.",
        path.display()
    );
    let err = |reason: String| StartError::DevKey { path: path.clone(), reason };
    let key = match std::fs::read(&path) {
        Ok(pkcs8) => {
            SoftwareKey::from_pkcs8_for_development(&pkcs8).map_err(|e| err(e.to_string()))?
        }
        Err(_) => {
            let (key, pkcs8) =
                SoftwareKey::generate_for_development().map_err(|e| err(e.to_string()))?;
            std::fs::create_dir_all(&settings.state_dir).map_err(|e| err(e.to_string()))?;
            // Owner-only from creation: whoever reads it can sign as this kiosk.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| err(e.to_string()))?;
            std::io::Write::write_all(&mut file, &pkcs8).map_err(|e| err(e.to_string()))?;
            key
        }
    };
    Ok(key.into_device_key())
}

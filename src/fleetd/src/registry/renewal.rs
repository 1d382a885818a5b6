//! Renewal of an enrolled kiosk's certificate (review H4): a kiosk whose certificate nears its
//! end sends a CSR for the same key over a TLS connection on which it presents that
//! certificate; the CA issues a new one with the same subject (the device id) and key.
//!
//! It owns the renewal rule ([`decide`], pure) and the near-expiry report. It never issues a
//! certificate for another key than the one recorded at enrolment, never renews a revoked or
//! pending device, and never logs a CSR or a certificate (only ids and serials).

use telekiosk_protocol::api::RenewResponse;
use time::OffsetDateTime;

use super::{Registry, info};
use crate::pki::ca::{self, CsrError, DeviceKey};
use crate::pki::{self, PkiError};
use crate::store::{DeviceRecord, StoreError, devices};

/// A device certificate with less than this left (seconds) is reported in the log.
pub const WARN_BEFORE_SECS: i64 = 30 * 86_400;

/// Why a renewal was refused. Messages go back to the kiosk and into its log.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The TLS connection carried no client certificate from the fleet CA.
    #[error(
        "renewal needs the kiosk's current certificate: connect with it as the TLS client \
         certificate"
    )]
    NoClientCertificate,
    /// The client certificate names no device this fleetd knows.
    #[error("the client certificate names no enrolled kiosk ({0:?})")]
    UnknownDevice(String),
    /// The device was revoked: it must be enrolled again with a new key.
    #[error("this kiosk was revoked; it must make a new key and be enrolled with a new code")]
    Revoked,
    /// The device has not been approved yet.
    #[error("this kiosk has not been approved yet; it gets its first certificate by enrolment")]
    NotApproved,
    /// The client certificate's key is not the device's (a certificate for another key).
    #[error("the client certificate is not for this kiosk's enrolled key")]
    CertificateKey,
    /// The CSR's key is not the device's key: renewal keeps the key.
    #[error("the CSR is for another key than this kiosk's certificate; renewal keeps the key")]
    CsrKey,
    /// The CSR is unusable.
    #[error("the certificate request was refused: {0}")]
    BadCsr(#[from] CsrError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA could not sign.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// The renewal rule: `device` (as stored) may have a new certificate for `csr_key` when it
/// is active and both the presented certificate's key and the CSR's key are its own.
pub fn decide(
    device: &DeviceRecord,
    presented: &DeviceKey,
    csr_key: &DeviceKey,
) -> Result<(), RenewError> {
    match device.status.as_str() {
        "active" => {}
        "revoked" => return Err(RenewError::Revoked),
        _ => return Err(RenewError::NotApproved),
    }
    if presented.sec1() != device.public_key.as_slice() {
        return Err(RenewError::CertificateKey);
    }
    if csr_key.sec1() != device.public_key.as_slice() {
        return Err(RenewError::CsrKey);
    }
    Ok(())
}

/// Whether a certificate ending at `not_after` has less than [`WARN_BEFORE_SECS`] left at `now`.
pub fn near_expiry(not_after: i64, now: i64) -> bool {
    not_after.saturating_sub(now) < WARN_BEFORE_SECS
}

impl Registry {
    /// Renews the certificate of the device whose client certificate (DER, already verified by
    /// TLS against the fleet CA) is `client_cert`, for the key of `csr_pem`.
    pub fn renew(
        &self,
        client_cert: &[u8],
        csr_pem: &str,
        now: i64,
    ) -> Result<RenewResponse, RenewError> {
        let (id, presented) = ca::subject_and_key(client_cert).ok_or(RenewError::CertificateKey)?;
        let device = match self.device(&id) {
            Ok(d) => d,
            Err(StoreError::NoSuchDevice(_)) => return Err(RenewError::UnknownDevice(id)),
            Err(e) => return Err(e.into()),
        };
        let csr_key = ca::check_csr(csr_pem)?;
        decide(&device, &presented, &csr_key)?;
        let issuer = pki::ca_issuer(self.pki())?;
        let when = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::now_utc());
        let cert = ca::issue_device_cert(&issuer, &id, &csr_key, when)?;
        let renewed =
            self.store().write(|c| devices::renew(c, &id, &cert, now).map_err(StoreError::from))?;
        if !renewed {
            // Revoked since we looked.
            return Err(RenewError::Revoked);
        }
        tracing::info!(device = %id, serial = %cert.serial, "device certificate renewed");
        let expires_at = ca::not_after(&cert.pem).unwrap_or(now);
        Ok(RenewResponse { device_id: id, certificate_pem: cert.pem, expires_at })
    }

    /// Active devices whose certificate has less than 30 days left at `now`: (id, notAfter).
    /// Each is logged as a warning; the admin console shows `cert_expires_at`.
    pub fn warn_near_expiry(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let near: Vec<(String, i64)> = self
            .store()
            .read(devices::devices)?
            .into_iter()
            .filter(|d| d.status == "active")
            .map(info)
            .filter_map(|d| d.cert_expires_at.map(|at| (d.id, at)))
            .filter(|(_, at)| near_expiry(*at, now))
            .collect();
        for (id, at) in &near {
            let days = (at - now) / 86_400;
            tracing::warn!(
                device = %id,
                expires_at = at,
                "device certificate expires in {days} days and the kiosk has not renewed it: \
                 check that it is online"
            );
        }
        Ok(near)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(status: &str, key: &[u8]) -> DeviceRecord {
        DeviceRecord {
            id: "dev-aaaaaaaaaa".into(),
            clinic: "c".into(),
            room: "r".into(),
            public_key: key.to_vec(),
            status: status.into(),
            created_at: 0,
            approved_at: None,
            revoked_at: None,
            cert_pem: None,
            cert_serial: None,
            cert_fingerprint: None,
        }
    }

    #[test]
    fn only_an_active_device_renews_and_only_for_its_own_key() {
        let own = DeviceKey::from_sec1(vec![4; 65]);
        let other = DeviceKey::from_sec1(vec![5; 65]);
        assert!(decide(&device("active", own.sec1()), &own, &own).is_ok());
        assert!(matches!(
            decide(&device("revoked", own.sec1()), &own, &own),
            Err(RenewError::Revoked)
        ));
        assert!(matches!(
            decide(&device("pending", own.sec1()), &own, &own),
            Err(RenewError::NotApproved)
        ));
        assert!(matches!(
            decide(&device("active", own.sec1()), &own, &other),
            Err(RenewError::CsrKey)
        ));
        assert!(matches!(
            decide(&device("active", own.sec1()), &other, &own),
            Err(RenewError::CertificateKey)
        ));
    }

    #[test]
    fn less_than_thirty_days_left_is_near_expiry() {
        let now = 1_000_000_000;
        assert!(near_expiry(now + 29 * 86_400, now));
        assert!(near_expiry(now - 1, now));
        assert!(!near_expiry(now + 31 * 86_400, now));
    }
}

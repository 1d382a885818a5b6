//! The `registry/` folder: enrolment tokens ([`token`]), devices, revocation
//! ([`revocation`]). The registry itself: enrolment tokens, enrolment, approval (the CA issues the kiosk's
//! certificate), revocation, and the list admins see. The CLI and the web API both call it.
//!
//! It owns the enrolment rules ([`decide`], pure) and writes one audit line per change:
//! who, what, which device. It never logs a token, a key or a certificate, and it never
//! writes the CRL: [`crate::registry::revocation`] does that in the running server.

pub mod renewal;
pub mod revocation;
mod token;

use telekiosk_protocol::api::{
    DeviceInfo, DeviceStatus, EnrolRequest, EnrolResponse, EnrolStatus, EnrolToken, NewEnrolToken,
};
use telekiosk_protocol::{DecodeError, Validate};
use time::OffsetDateTime;

use crate::pki::ca::{self, CsrError, DeviceKey, Revoked};
use crate::pki::{self, Pki, PkiError};
use crate::store::devices;
use crate::store::{DeviceRecord, EnrolDecision, Store, StoreError, TokenRecord};
pub use token::{DEFAULT_TTL, Token};

/// Why an enrolment was refused. Messages are shown at the kiosk, to a technician.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// No token has that hash (mistyped, or never issued).
    #[error("This enrolment code is not valid.")]
    UnknownToken,
    /// The token was never used and its time is up.
    #[error("This enrolment code has expired; ask the admin for a new one.")]
    ExpiredToken,
    /// The token was used by a kiosk with another key.
    #[error("This enrolment code was already used.")]
    TokenUsed,
    /// The CSR is unusable.
    #[error("The certificate request was refused: {0}.")]
    BadCsr(#[from] CsrError),
    /// The kiosk (this key) was revoked.
    #[error("This kiosk was revoked; it must make a new key and be enrolled with a new code.")]
    Revoked,
    /// This key is already enrolled, through another token.
    #[error("This kiosk's key is already enrolled; send the enrolment code it was enrolled with.")]
    KeyEnrolled,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system random source failed.
    #[error("no randomness for a device id: {0}")]
    Random(getrandom::Error),
}

/// Why an admin operation was refused. Messages are shown to the admin.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request broke a field limit.
    #[error("{0}")]
    Invalid(#[from] DecodeError),
    /// Approving a device that is not pending.
    #[error("device {id} is {status}, not pending: only a pending device can be approved")]
    NotPending { id: String, status: &'static str },
    /// Revoking a device twice.
    #[error("device {0} is already revoked")]
    AlreadyRevoked(String),
    /// The database failed, or the device does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA could not sign.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The system random source failed.
    #[error("no randomness for a token: {0}")]
    Random(getrandom::Error),
}

/// The registry over fleetd's store and CA.
#[derive(Debug)]
pub struct Registry {
    store: Store,
    pki: Pki,
    ca_pem: String,
    signing_key_pem: String,
}

impl Registry {
    /// A registry using `store`, the CA in `pki`, and the config signing public key to hand
    /// to approved kiosks.
    pub fn new(store: Store, pki: Pki, signing_key_pem: String) -> Result<Self, PkiError> {
        let ca_pem = pki::read(&pki.ca_cert)?;
        Ok(Self { store, pki, ca_pem, signing_key_pem })
    }

    /// Makes a one-time enrolment token for a kiosk in `req.clinic` / `req.room`.
    pub fn create_token(
        &self,
        req: &NewEnrolToken,
        by: &str,
        now: i64,
    ) -> Result<EnrolToken, RegistryError> {
        req.validate()?;
        let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL.as_secs());
        let token = Token::generate().map_err(RegistryError::Random)?;
        let record = TokenRecord {
            clinic: req.clinic.trim().to_string(),
            room: req.room.trim().to_string(),
            expires_at: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            device_id: None,
        };
        let hash = token.hash();
        self.store.write(|c| {
            devices::insert_token(c, &hash, &record, now, by).map_err(StoreError::from)
        })?;
        Ok(EnrolToken {
            token: token.shown(),
            clinic: record.clinic,
            room: record.room,
            expires_at: record.expires_at,
        })
    }

    /// A kiosk's enrolment request: records a pending device, or answers how it stands.
    #[cfg(test)]
    pub fn enrol(&self, req: &EnrolRequest, now: i64) -> Result<EnrolResponse, EnrolError> {
        self.enrol_new(req, now).map(|(response, _)| response)
    }

    /// [`Registry::enrol`], and whether this request created the device (what the audit trail
    /// records; a kiosk asking again how it stands is not news).
    pub fn enrol_new(
        &self,
        req: &EnrolRequest,
        now: i64,
    ) -> Result<(EnrolResponse, bool), EnrolError> {
        let result = self.enrol_inner(req, now);
        if let Err(EnrolError::Store(e)) = &result {
            tracing::error!("enrolment failed: {e}");
        }
        result
    }

    fn enrol_inner(
        &self,
        req: &EnrolRequest,
        now: i64,
    ) -> Result<(EnrolResponse, bool), EnrolError> {
        let token = Token::parse(&req.token).ok_or(EnrolError::UnknownToken)?;
        let key = ca::check_csr(&req.csr_pem)?;
        let new_id = token::new_device_id().map_err(EnrolError::Random)?;
        let mut created = false;
        let device = self.store.write(|c| {
            devices::enrol(c, &token.hash(), key.sec1(), |t, bound, same_key| {
                let decision = decide(t, bound, same_key, &key, now, new_id)?;
                created = matches!(decision, EnrolDecision::Create(_));
                Ok::<_, EnrolError>(decision)
            })
        })?;
        let status = match (device.status.as_str(), device.cert_pem) {
            ("active", Some(certificate_pem)) => EnrolStatus::Approved {
                certificate_pem,
                ca_pem: self.ca_pem.clone(),
                signing_key_pem: self.signing_key_pem.clone(),
            },
            _ => EnrolStatus::Pending,
        };
        Ok((EnrolResponse { device_id: device.id, status }, created))
    }

    /// Approves a pending device: the CA issues its certificate.
    pub fn approve(&self, id: &str, by: &str, now: i64) -> Result<DeviceInfo, RegistryError> {
        let device = self.device(id)?;
        if device.status != "pending" {
            return Err(RegistryError::NotPending {
                id: id.into(),
                status: status_of(&device).as_str(),
            });
        }
        let issuer = pki::ca_issuer(&self.pki)?;
        let when = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::now_utc());
        let key = DeviceKey::from_sec1(device.public_key);
        let cert = ca::issue_device_cert(&issuer, id, &key, when)?;
        let approved = self
            .store
            .write(|c| devices::approve(c, id, &cert, now, by).map_err(StoreError::from))?;
        if !approved {
            // Revoked (or approved) by someone else since we looked.
            let status = status_of(&self.device(id)?);
            return Err(RegistryError::NotPending { id: id.into(), status: status.as_str() });
        }
        tracing::info!(device = id, serial = %cert.serial, "device certificate issued");
        self.show(id)
    }

    /// Revokes a device: it may never connect again, and its certificate joins the CRL.
    pub fn revoke(&self, id: &str, by: &str, now: i64) -> Result<DeviceInfo, RegistryError> {
        self.device(id)?;
        if !self.store.write(|c| devices::revoke(c, id, now, by).map_err(StoreError::from))? {
            return Err(RegistryError::AlreadyRevoked(id.into()));
        }
        self.show(id)
    }

    /// One device.
    pub fn show(&self, id: &str) -> Result<DeviceInfo, RegistryError> {
        Ok(info(self.device(id)?))
    }

    /// A device's enrolled public key (SEC1), which its certificate carries.
    pub fn public_key(&self, id: &str) -> Result<Vec<u8>, RegistryError> {
        Ok(self.device(id)?.public_key)
    }

    /// Every device, oldest first.
    pub fn list(&self) -> Result<Vec<DeviceInfo>, RegistryError> {
        Ok(self.store.read(devices::devices)?.into_iter().map(info).collect())
    }

    /// The registry generation (changes with every token or device change).
    pub fn generation(&self) -> Result<i64, StoreError> {
        self.store.read(devices::generation)
    }

    /// Revoked certificates, for the CRL, each with the id of its device.
    pub fn revoked(&self) -> Result<Vec<(String, Revoked)>, StoreError> {
        let rows = self.store.read(devices::revoked_serials)?;
        Ok(rows.into_iter().map(|(id, serial, at)| (id, Revoked { serial, at })).collect())
    }

    /// The device with this id.
    pub(crate) fn device(&self, id: &str) -> Result<DeviceRecord, StoreError> {
        self.store.read(|c| devices::device(c, id))?.ok_or_else(devices::no_such_device(id))
    }

    /// The CA, for signing the CRL.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The store, for [`renewal`].
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

/// The enrolment rules, given the token (if its hash is known), the device bound to it (if it
/// was used), and any device already holding this key.
fn decide(
    token: Option<TokenRecord>,
    bound: Option<DeviceRecord>,
    same_key: Option<DeviceRecord>,
    key: &DeviceKey,
    now: i64,
    new_id: String,
) -> Result<EnrolDecision, EnrolError> {
    let token = token.ok_or(EnrolError::UnknownToken)?;
    if token.device_id.is_some() {
        // A used token answers only the kiosk that used it, even after it has expired.
        return match bound {
            Some(d) if d.public_key == key.sec1() && d.status == "revoked" => {
                Err(EnrolError::Revoked)
            }
            Some(d) if d.public_key == key.sec1() => Ok(EnrolDecision::Existing(d)),
            _ => Err(EnrolError::TokenUsed),
        };
    }
    if token::expired(token.expires_at, now) {
        return Err(EnrolError::ExpiredToken);
    }
    match same_key {
        Some(d) if d.status == "revoked" => Err(EnrolError::Revoked),
        Some(_) => Err(EnrolError::KeyEnrolled),
        None => Ok(EnrolDecision::Create(DeviceRecord {
            id: new_id,
            clinic: token.clinic,
            room: token.room,
            public_key: key.sec1().to_vec(),
            status: "pending".into(),
            created_at: now,
            approved_at: None,
            revoked_at: None,
            cert_pem: None,
            cert_serial: None,
            cert_fingerprint: None,
        })),
    }
}

fn status_of(d: &DeviceRecord) -> DeviceStatus {
    match d.status.as_str() {
        "active" => DeviceStatus::Active,
        "revoked" => DeviceStatus::Revoked,
        _ => DeviceStatus::Pending,
    }
}

/// What admins see of a device.
pub(crate) fn info(d: DeviceRecord) -> DeviceInfo {
    DeviceInfo {
        status: status_of(&d),
        key_fingerprint: telekiosk_protocol::fingerprint::key_fingerprint(&d.public_key),
        id: d.id,
        clinic: d.clinic,
        room: d.room,
        created_at: d.created_at,
        approved_at: d.approved_at,
        revoked_at: d.revoked_at,
        cert_serial: d.cert_serial,
        cert_fingerprint: d.cert_fingerprint,
        cert_expires_at: d.cert_pem.as_deref().and_then(ca::not_after),
    }
}

#[cfg(test)]
mod tests;

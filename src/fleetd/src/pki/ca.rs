//! What fleetd's CA signs for others: kiosk certificates (from a checked CSR), fleetd's own
//! MQTT client certificate, and the certificate revocation list (CRL) the broker enforces.
//!
//! Pure over its inputs (the issuer, the time, the serials): no files, no database. It never
//! copies anything a kiosk asked for into a certificate except its public key: the subject,
//! key usage and lifetime are fleetd's choice.

use rcgen::{
    CertificateParams, CertificateRevocationListParams, CertificateSigningRequestParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, RevokedCertParams, SerialNumber,
    SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;

use crate::pki::{PkiError, random_serial};

/// How long a kiosk certificate is valid.
pub const DEVICE_VALIDITY: Duration = Duration::days(365);
/// How long fleetd's own client certificate is valid (issued again at every start).
const FLEETD_VALIDITY: Duration = Duration::days(397);
/// How long a CRL is valid. fleetd issues a new one daily, well before this runs out: a broker
/// holding an expired CRL refuses every client.
pub const CRL_VALIDITY: Duration = Duration::days(30);
/// The MQTT user name (certificate CN) of fleetd itself. Device ids always start `dev-`.
pub const FLEETD_CN: &str = "fleetd";

/// Why a CSR was refused. Messages are shown to the technician enrolling the kiosk.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    /// No `-----BEGIN CERTIFICATE REQUEST-----` block.
    #[error("the CSR is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)")]
    NotPem,
    /// The DER inside is not a PKCS#10 request.
    #[error("the CSR cannot be parsed as a PKCS#10 certificate request")]
    Unparsable,
    /// The self-signature does not verify.
    #[error("the CSR's signature does not verify: it was not signed by the key it contains")]
    BadSignature,
    /// The key is not ECDSA P-256 (what a TPM makes and what kiosks must use).
    #[error("the CSR's key is {found}; a kiosk key must be ECDSA P-256")]
    WrongKey { found: String },
    /// The request asks for an extension fleetd does not understand.
    #[error("the CSR asks for an unsupported extension; send a request with none")]
    UnsupportedExtension,
}

/// A kiosk's public key, taken from a verified CSR: the uncompressed SEC1 P-256 point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey(Vec<u8>);

impl DeviceKey {
    /// A key from its stored SEC1 bytes (65 bytes, `04 || x || y`).
    pub fn from_sec1(point: Vec<u8>) -> Self {
        Self(point)
    }

    /// The SEC1 bytes, to store and compare.
    pub fn sec1(&self) -> &[u8] {
        &self.0
    }
}

impl PublicKeyData for DeviceKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// Checks a CSR: PEM, PKCS#10, a valid self-signature, an ECDSA P-256 key. Returns the key.
pub fn check_csr(pem: &str) -> Result<DeviceKey, CsrError> {
    let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| CsrError::NotPem)?;
    let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|_| CsrError::Unparsable)?;
    let spki = &parsed.certification_request_info.subject_pki;
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    let point = spki.subject_public_key.data.to_vec();
    let p256 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && curve.as_ref() == Some(&OID_EC_P256)
        && point.len() == 65
        && point[0] == 4;
    if !p256 {
        let found = match curve {
            Some(curve) => format!("an EC key on curve {curve}"),
            None => format!("a key of type {}", spki.algorithm.algorithm),
        };
        return Err(CsrError::WrongKey { found });
    }
    // rcgen checks the self-signature (ring) and the requested extensions.
    CertificateSigningRequestParams::from_der(&der).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => CsrError::BadSignature,
        rcgen::Error::UnsupportedExtension => CsrError::UnsupportedExtension,
        _ => CsrError::Unparsable,
    })?;
    Ok(DeviceKey(point))
}

/// A certificate fleetd's CA issued, with what admins see of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, PEM.
    pub pem: String,
    /// Its serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of its DER, `AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: String,
}

/// Issues a kiosk's client certificate: CN = `device_id`, clientAuth only, a random serial,
/// valid for [`DEVICE_VALIDITY`].
pub fn issue_device_cert(
    issuer: &Issuer<'_, KeyPair>,
    device_id: &str,
    key: &DeviceKey,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let params = client_params(device_id, now, DEVICE_VALIDITY)?;
    let cert = params.signed_by(key, issuer)?;
    let serial = params.serial_number.as_ref().map_or(&[][..], |s| s.as_ref());
    // As the DER INTEGER holds it: no leading zero byte unless the next one has its top bit set.
    let mut first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    if first > 0 && serial.get(first).is_some_and(|b| b & 0x80 != 0) {
        first -= 1;
    }
    Ok(Issued {
        pem: cert.pem(),
        serial: hex(&serial[first..]),
        fingerprint: fingerprint(cert.der()),
    })
}

/// A fresh key and certificate (CN `fleetd`, clientAuth) for fleetd's own MQTT connection.
/// Both live in memory only, so no client key of fleetd's ever sits on disk.
pub fn fleetd_client_identity(
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = client_params(FLEETD_CN, now, FLEETD_VALIDITY)?.signed_by(&key, issuer)?;
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| PkiError::Tls(rustls::Error::General(e.to_string())))?;
    Ok((vec![cert.der().clone()], key))
}

/// One revoked certificate: its serial (lowercase hex, as stored) and when it was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// When an admin revoked it (Unix seconds).
    pub at: i64,
}

/// A CRL listing `revoked`, valid from a minute ago for [`CRL_VALIDITY`]. Its number is the
/// time in milliseconds, so each CRL fleetd issues has a higher one than the last.
pub fn build_crl(
    issuer: &Issuer<'_, KeyPair>,
    revoked: &[Revoked],
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    let number = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for r in revoked {
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(
                &unhex(&r.serial).ok_or_else(|| PkiError::BadSerial(r.serial.clone()))?,
            ),
            revocation_time: OffsetDateTime::from_unix_timestamp(r.at).unwrap_or(now),
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update: now + CRL_VALIDITY,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(issuer)?.pem()?)
}

fn client_params(
    cn: &str,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "telekiosk");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A client certificate as fleetd reads it: its subject CN and its P-256 key (SEC1 bytes).
/// `None` if it is not a certificate with both. Its chain and validity are rustls's to check.
pub fn subject_and_key(der: &[u8]) -> Option<(String, DeviceKey)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    let point = cert.public_key().subject_public_key.data.to_vec();
    (point.len() == 65 && point[0] == 4).then_some((cn, DeviceKey(point)))
}

/// A PEM certificate's notAfter (Unix seconds); `None` if it cannot be parsed.
pub fn not_after(pem: &str) -> Option<i64> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// `AB:CD:…`: SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let pairs: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests;

//! fleetd's certificate authority and the server certificate it issues for its own listeners
//! (the HTTPS console and the MQTT broker), plus the rustls configurations built from them.
//! What the CA signs for others (device certificates, revocation lists) is in [`crate::ca`].
//!
//! Owns `ca.pem`, `ca-key.pem`, `server.pem` and `server-key.pem` in the data directory. It never
//! replaces an existing CA (kiosks trust it), and never writes a private key that anyone but the
//! owner can read. Crypto is rcgen's and rustls's (ring provider); nothing is hand-rolled.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a server certificate is valid (the most browsers accept).
const SERVER_VALIDITY: Duration = Duration::days(397);
/// A server certificate with less than this left is issued again at start.
const RENEW_BEFORE: Duration = Duration::days(30);

/// Why the PKI could not be set up. Each variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// One half of the CA is missing; making a new CA would cut off every enrolled kiosk.
    #[error(
        "{present} exists but {missing} does not: restore it from a backup, or remove both to \
         create a new CA (every kiosk must then be enrolled again)"
    )]
    HalfCa { present: PathBuf, missing: PathBuf },
    /// A file is not a usable certificate or key.
    #[error("{path} is not a usable certificate or key: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// rcgen could not make a key or certificate.
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A certificate serial number in the database is not hex (the database was edited).
    #[error("the stored certificate serial {0:?} is not hex: restore fleetd.db from a backup")]
    BadSerial(String),
    /// rustls refused the certificate or key.
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Paths of fleetd's CA and server certificate, all inside the data directory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate kiosks and browsers trust (PEM).
    pub ca_cert: PathBuf,
    /// The CA private key (PEM, mode 0600).
    pub ca_key: PathBuf,
    /// The server certificate, signed by the CA (PEM).
    pub server_cert: PathBuf,
    /// The server private key (PEM, mode 0600).
    pub server_key: PathBuf,
}

impl Pki {
    /// Paths of the PKI files in `dir`, whether or not they exist yet.
    pub fn paths(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        }
    }
}

/// Makes sure `dir` holds a CA and a current server certificate valid for `localhost`,
/// `127.0.0.1`, `::1` and `hostname`: creates what is missing, reuses what is there, and issues
/// a new server certificate when the old one is near expiry or lacks one of those names.
pub fn ensure(dir: &Path, hostname: &str) -> Result<Pki, PkiError> {
    let pki = Pki::paths(dir);
    let now = OffsetDateTime::now_utc();
    let (ca_pem, ca_key, created_ca) = match (pki.ca_cert.exists(), pki.ca_key.exists()) {
        (true, true) => {
            warn_if_readable_by_others(&pki.ca_key);
            let key_pem = read(&pki.ca_key)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid(&pki.ca_key, e))?;
            (read(&pki.ca_cert)?, key, false)
        }
        (false, false) => {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let cert = ca_params(now)?.self_signed(&key)?;
            write(&pki.ca_key, &key.serialize_pem(), 0o600)?;
            write(&pki.ca_cert, &cert.pem(), 0o644)?;
            tracing::info!(path = %pki.ca_cert.display(), "created a new CA");
            (cert.pem(), key, true)
        }
        (true, false) => return Err(half_ca(&pki.ca_cert, &pki.ca_key)),
        (false, true) => return Err(half_ca(&pki.ca_key, &pki.ca_cert)),
    };
    let names = server_names(hostname);
    if !created_ca && pki.server_key.exists() && server_cert_fits(&pki.server_cert, &names)? {
        return Ok(pki);
    }
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| invalid(&pki.ca_cert, e))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = server_params(&names, hostname, now)?.signed_by(&key, &issuer)?;
    write(&pki.server_key, &key.serialize_pem(), 0o600)?;
    write(&pki.server_cert, &cert.pem(), 0o644)?;
    tracing::info!(path = %pki.server_cert.display(), ?names, "issued a server certificate");
    Ok(pki)
}

/// A rustls server configuration presenting the server certificate (HTTP/2 and HTTP/1.1).
pub fn server_tls(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let certs = load_certs(&pki.server_cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&pki.server_key).map_err(|e| invalid(&pki.server_key, e))?;
    let mut config =
        rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls client configuration that trusts only the CA certificates in `ca_files` and
/// presents `identity` (a certificate chain and its key) to servers that ask for one.
pub fn client_tls(
    ca_files: &[PathBuf],
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for path in ca_files {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| invalid(path, e))?;
        }
    }
    let (chain, key) = identity;
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(Arc::new(builder.with_client_auth_cert(chain, key)?))
}

/// The CA as an rcgen issuer, for signing device certificates and revocation lists.
pub fn ca_issuer(pki: &Pki) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&read(&pki.ca_key)?).map_err(|e| invalid(&pki.ca_key, e))?;
    Issuer::from_ca_cert_pem(&read(&pki.ca_cert)?, key).map_err(|e| invalid(&pki.ca_cert, e))
}

/// The names the server certificate must cover.
fn server_names(hostname: &str) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if !hostname.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(hostname)) {
        names.push(hostname.to_string());
    }
    names
}

fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "telekiosk");
    params.distinguished_name.push(DnType::CommonName, "telekiosk fleetd CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn server_params(
    names: &[String],
    hostname: &str,
    now: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "telekiosk");
    params.distinguished_name.push(DnType::CommonName, format!("fleetd {hostname}"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + SERVER_VALIDITY;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A positive 128-bit random serial number.
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PkiError::Io {
        path: PathBuf::from("<system random source>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Whether the existing server certificate covers `names` and has a while left to run.
fn server_cert_fits(path: &Path, names: &[String]) -> Result<bool, PkiError> {
    if !path.exists() {
        return Ok(false);
    }
    let der =
        load_certs(path)?.into_iter().next().ok_or_else(|| invalid(path, "no certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(path, e))?;
    let fresh = cert.validity().time_to_expiration().is_some_and(|left| left > RENEW_BEFORE);
    let sans = cert.subject_alternative_name().map_err(|e| invalid(path, e))?;
    let sans = sans.map(|ext| ext.value.general_names.clone()).unwrap_or_default();
    let covered = |name: &String| {
        sans.iter().any(|san| match (san, name.parse::<IpAddr>()) {
            (x509_parser::extensions::GeneralName::IPAddress(raw), Ok(ip)) => match ip {
                IpAddr::V4(v4) => *raw == v4.octets(),
                IpAddr::V6(v6) => *raw == v6.octets(),
            },
            (x509_parser::extensions::GeneralName::DNSName(dns), Err(_)) => {
                dns.eq_ignore_ascii_case(name)
            }
            _ => false,
        })
    };
    Ok(fresh && names.iter().all(covered))
}

pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| invalid(path, e))?;
    certs.collect::<Result<Vec<_>, _>>().map_err(|e| invalid(path, e))
}

pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.into(), source })
}

/// Writes a file atomically (temporary file, fsync, rename) with `mode` from its creation on.
pub(crate) fn write(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.into(), source };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "private key is readable by others: chmod 600 it");
    }
}

pub(crate) fn invalid(path: &Path, reason: impl std::fmt::Display) -> PkiError {
    PkiError::Invalid { path: path.into(), reason: reason.to_string() }
}

fn half_ca(present: &Path, missing: &Path) -> PkiError {
    PkiError::HalfCa { present: present.into(), missing: missing.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    fn provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn verifies_as(pki: &Pki, name: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(load_certs(&pki.ca_cert).unwrap().remove(0)).unwrap();
        let verifier = WebPkiServerVerifier::builder(Arc::new(roots)).build().unwrap();
        let leaf = load_certs(&pki.server_cert).unwrap().remove(0);
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn the_server_certificate_chains_to_the_ca_for_every_local_name_and_the_hostname() {
        provider();
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(dir.path(), "kiosk-fleet.example").unwrap();
        for name in ["localhost", "127.0.0.1", "::1", "kiosk-fleet.example"] {
            verifies_as(&pki, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verifies_as(&pki, "elsewhere.example").is_err());
        assert!(server_tls(&pki).is_ok());
    }

    #[test]
    fn private_keys_are_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(dir.path(), "host").unwrap();
        for key in [&pki.ca_key, &pki.server_key] {
            assert_eq!(fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_second_start_reuses_the_ca_and_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), "host").unwrap();
        let before = [&first.ca_cert, &first.ca_key, &first.server_cert].map(|p| read(p).unwrap());
        let second = ensure(dir.path(), "host").unwrap();
        let after =
            [&second.ca_cert, &second.ca_key, &second.server_cert].map(|p| read(p).unwrap());
        assert_eq!(before, after);
    }

    #[test]
    fn a_new_hostname_gets_a_new_server_certificate_from_the_same_ca() {
        provider();
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), "old-name").unwrap();
        let ca = read(&first.ca_cert).unwrap();
        let second = ensure(dir.path(), "new-name").unwrap();
        assert_eq!(read(&second.ca_cert).unwrap(), ca);
        verifies_as(&second, "new-name").unwrap();
    }

    #[test]
    fn a_ca_certificate_without_its_key_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(dir.path(), "host").unwrap();
        fs::remove_file(&pki.ca_key).unwrap();
        assert!(matches!(ensure(dir.path(), "host"), Err(PkiError::HalfCa { .. })));
    }
}

//! The `pki/` folder: fleetd's certificate authority and the server certificate it issues for its own listeners
//! (the HTTPS console and the MQTT broker), plus the rustls configurations built from them.
//! What the CA signs for others (device certificates, revocation lists) is in [`ca`]; the key
//! that signs config and commands is in [`signing`].
//!
//! Writes the CA's and the server's certificates and keys where [`Pki`] says (the data
//! directory's files, named by [`crate::data_dir::DataDir::pki`]). It never replaces an
//! existing CA (kiosks trust it), and never writes a private key that anyone but the owner can
//! read. Crypto is rcgen's and rustls's (ring provider); nothing is hand-rolled.

pub mod ca;
mod constraints;
pub mod renewal;
pub mod signing;
pub mod web;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer};
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

/// Paths of fleetd's CA and server certificate, all inside the data directory
/// ([`crate::data_dir::DataDir::pki`] names them).
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

/// A name kiosks and browsers use to reach fleetd (`--public-name`): a DNS name (lowercase, no
/// trailing dot) or an IP address. Parsing refuses anything a certificate could not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicName {
    /// A DNS name such as `fleet.clinic.example`.
    Dns(String),
    /// An IP address, e.g. the public address of a NAT in front of fleetd.
    Ip(IpAddr),
}

impl FromStr for PublicName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(format!("{s:?} is not an address a kiosk can connect to"));
            }
            return Ok(Self::Ip(ip));
        }
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if name.contains('*') || DnsName::try_from(name.as_str()).is_err() {
            return Err(format!(
                "{s:?} is neither an IP address nor a DNS name (labels of letters, digits and \
                 '-', separated by dots; no wildcards)"
            ));
        }
        Ok(Self::Dns(name))
    }
}

impl std::fmt::Display for PublicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The names fleetd's server certificate must cover, in a stable order without duplicates:
/// `localhost`, `127.0.0.1` and `::1` (fleetd's own MQTT client connects by loopback when its
/// broker listens on loopback or on every address); `hostname`; each address in `listen` that
/// is not unspecified; for an unspecified one, every address in `interfaces` it accepts
/// connections on (`0.0.0.0`: the IPv4 ones; `::`: all), except IPv6 link-local ones, which no
/// URL can name without a zone; and every name in `public`.
pub fn server_names(
    hostname: &str,
    listen: &[IpAddr],
    interfaces: &[IpAddr],
    public: &[PublicName],
) -> Vec<String> {
    let mut names: Vec<PublicName> = vec![
        PublicName::Dns("localhost".into()),
        PublicName::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
        PublicName::Ip(std::net::Ipv6Addr::LOCALHOST.into()),
    ];
    names.extend(hostname.parse::<PublicName>());
    for ip in listen {
        match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => {
                names.extend(interfaces.iter().filter(|i| i.is_ipv4()).map(|i| PublicName::Ip(*i)));
            }
            IpAddr::V6(v6) if v6.is_unspecified() => {
                names.extend(interfaces.iter().map(|i| PublicName::Ip(*i)));
            }
            ip => names.push(PublicName::Ip(*ip)),
        }
    }
    names.extend(public.iter().cloned());
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .filter(|n| !matches!(n, PublicName::Ip(ip) if ip.is_unspecified() || is_link_local_v6(ip)))
        .map(|n| n.to_string())
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

/// Every address of this machine's network interfaces (getifaddrs), for a listener on the
/// unspecified address. An error is logged and gives none: the certificate then covers only the
/// other names.
pub fn interface_addresses() -> Vec<IpAddr> {
    let addrs = match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs,
        Err(e) => {
            tracing::warn!("cannot list the network interfaces' addresses: {e}");
            return Vec::new();
        }
    };
    addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|a| match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
            (Some(v4), _) => Some(IpAddr::V4(v4.ip())),
            (_, Some(v6)) => Some(IpAddr::V6(v6.ip())),
            _ => None,
        })
        .collect()
}

fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// [`ensure_for`] with the names of a fleetd listening on loopback only.
pub fn ensure(pki: Pki, hostname: &str) -> Result<Pki, PkiError> {
    ensure_for(pki, hostname, &server_names(hostname, &[], &[], &[]))
}

/// Makes sure the files of `pki` hold a CA and a current server certificate for exactly
/// `names` (see [`server_names`]): creates what is missing, reuses what is there, and issues a new server
/// certificate from the same CA when the old one is near expiry or names something else.
pub fn ensure_for(pki: Pki, hostname: &str, names: &[String]) -> Result<Pki, PkiError> {
    ensure_at(pki, hostname, names, OffsetDateTime::now_utc())
}

/// [`ensure_for`] as if it ran at `now`: what the running server's renewal check calls, and
/// what tests call with a shifted clock to make certificates that are near their end.
pub fn ensure_at(
    pki: Pki,
    hostname: &str,
    names: &[String],
    now: OffsetDateTime,
) -> Result<Pki, PkiError> {
    let (ca_pem, ca_key, created_ca) = match (pki.ca_cert.exists(), pki.ca_key.exists()) {
        (true, true) => {
            warn_if_readable_by_others(&pki.ca_key);
            let key_pem = read(&pki.ca_key)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid(&pki.ca_key, e))?;
            (read(&pki.ca_cert)?, key, false)
        }
        (false, false) => {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let cert = ca_params(now, names)?.self_signed(&key)?;
            write(&pki.ca_key, &key.serialize_pem(), 0o600)?;
            write(&pki.ca_cert, &cert.pem(), 0o644)?;
            tracing::info!(path = %pki.ca_cert.display(), "created a new CA");
            (cert.pem(), key, true)
        }
        (true, false) => return Err(half_ca(&pki.ca_cert, &pki.ca_key)),
        (false, true) => return Err(half_ca(&pki.ca_key, &pki.ca_cert)),
    };
    if !created_ca {
        let ca_der = load_certs(&pki.ca_cert)?.into_iter().next();
        let outside = ca_der.map(|der| constraints::not_permitted(&der, names)).unwrap_or_default();
        if !outside.is_empty() {
            tracing::error!(
                ?outside,
                "the CA's name constraints do not cover these names: kiosks and browsers will \
                 refuse the server certificate when they use them (the constraints are fixed \
                 when the CA is made; see README, Certificates)"
            );
        }
    }
    if !created_ca && pki.server_key.exists() && server_cert_fits(&pki.server_cert, names, now)? {
        return Ok(pki);
    }
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| invalid(&pki.ca_cert, e))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = server_params(names, hostname, now)?.signed_by(&key, &issuer)?;
    write(&pki.server_key, &key.serialize_pem(), 0o600)?;
    write(&pki.server_cert, &cert.pem(), 0o644)?;
    tracing::info!(path = %pki.server_cert.display(), ?names, "issued a server certificate");
    Ok(pki)
}

/// A rustls server configuration presenting the server certificate (HTTP/2 and HTTP/1.1). It
/// asks clients for a certificate from the fleet CA without requiring one: kiosks present
/// theirs to renew it ([`crate::registry::renewal`]); browsers and enrolling kiosks have none.
/// A certificate that is presented must chain to the CA and be within its validity.
pub fn server_tls(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let certs = load_certs(&pki.server_cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&pki.server_key).map_err(|e| invalid(&pki.server_key, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(&pki.ca_cert)? {
        roots.add(cert).map_err(|e| invalid(&pki.ca_cert, e))?;
    }
    let clients = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Tls(rustls::Error::General(e.to_string())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA as an rcgen issuer, for signing device certificates and revocation lists.
pub fn ca_issuer(pki: &Pki) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&read(&pki.ca_key)?).map_err(|e| invalid(&pki.ca_key, e))?;
    Issuer::from_ca_cert_pem(&read(&pki.ca_cert)?, key).map_err(|e| invalid(&pki.ca_cert, e))
}

fn ca_params(now: OffsetDateTime, names: &[String]) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "telekiosk");
    params.distinguished_name.push(DnType::CommonName, "telekiosk fleetd CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.name_constraints = Some(constraints::for_names(names));
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

/// Whether the existing server certificate names exactly `names` (no fewer: kiosks could not
/// connect; no more: a name an admin dropped must stop working) and has a while left to run.
fn server_cert_fits(path: &Path, names: &[String], now: OffsetDateTime) -> Result<bool, PkiError> {
    use x509_parser::extensions::GeneralName;
    if !path.exists() {
        return Ok(false);
    }
    let der =
        load_certs(path)?.into_iter().next().ok_or_else(|| invalid(path, "no certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(path, e))?;
    let left = cert.validity().not_after.timestamp() - now.unix_timestamp();
    let fresh = left > RENEW_BEFORE.whole_seconds();
    let sans = cert.subject_alternative_name().map_err(|e| invalid(path, e))?;
    let sans = sans.map(|ext| ext.value.general_names.clone()).unwrap_or_default();
    let has: BTreeSet<String> = sans
        .iter()
        .map(|san| match san {
            GeneralName::IPAddress(raw) => match <[u8; 4]>::try_from(*raw) {
                Ok(v4) => IpAddr::from(v4).to_string(),
                Err(_) => <[u8; 16]>::try_from(*raw)
                    .map_or_else(|_| format!("{raw:?}"), |v6| IpAddr::from(v6).to_string()),
            },
            GeneralName::DNSName(dns) => dns.to_ascii_lowercase(),
            other => format!("{other:?}"),
        })
        .collect();
    let wanted: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    Ok(fresh && has == wanted)
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
    fs::rename(&tmp, path).map_err(io)?;
    sync_parent(path).map_err(io)
}

/// Fsyncs the directory holding `path`, so a rename into it survives a power cut (without it a
/// just-created CA or signing key can vanish while kiosks already pinned it).
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
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
    use crate::data_dir::DataDir;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    #[test]
    fn an_atomic_write_replaces_the_file_leaves_no_temporary_and_syncs_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key.pem");
        write(&path, "one", 0o600).unwrap();
        write(&path, "two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let missing = tmp.path().join("gone").join("key.pem");
        assert!(sync_parent(&missing).is_err(), "a missing directory cannot be synced");
        sync_parent(&path).unwrap();
    }

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
        let pki = ensure(DataDir::of(&dir).pki(), "kiosk-fleet.example").unwrap();
        for name in ["localhost", "127.0.0.1", "::1", "kiosk-fleet.example"] {
            verifies_as(&pki, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verifies_as(&pki, "elsewhere.example").is_err());
        assert!(server_tls(&pki).is_ok());
    }

    #[test]
    fn private_keys_are_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(DataDir::of(&dir).pki(), "host").unwrap();
        for key in [&pki.ca_key, &pki.server_key] {
            assert_eq!(fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_second_start_reuses_the_ca_and_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(DataDir::of(&dir).pki(), "host").unwrap();
        let before = [&first.ca_cert, &first.ca_key, &first.server_cert].map(|p| read(p).unwrap());
        let second = ensure(DataDir::of(&dir).pki(), "host").unwrap();
        let after =
            [&second.ca_cert, &second.ca_key, &second.server_cert].map(|p| read(p).unwrap());
        assert_eq!(before, after);
    }

    #[test]
    fn a_new_hostname_gets_a_new_server_certificate_from_the_same_ca() {
        provider();
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(DataDir::of(&dir).pki(), "old-name").unwrap();
        let ca = read(&first.ca_cert).unwrap();
        let second = ensure(DataDir::of(&dir).pki(), "new.old-name").unwrap();
        assert_eq!(read(&second.ca_cert).unwrap(), ca);
        verifies_as(&second, "new.old-name").unwrap();
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn public(list: &[&str]) -> Vec<PublicName> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_loopback_server_is_named_by_loopback_and_its_host_name_only() {
        let names = server_names("Kiosk-Fleet", &ips(&["127.0.0.1", "127.0.0.1"]), &[], &[]);
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "kiosk-fleet"]);
        // A host name that is no DNS name is left out rather than refused.
        assert_eq!(server_names("", &[], &[], &[]), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(server_names("bad name", &[], &[], &[]), ["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn a_server_on_a_real_address_is_named_by_it_and_by_its_public_names() {
        let interfaces = ips(&["127.0.0.1", "10.77.0.9"]);
        let listen = ips(&["10.77.0.2", "10.77.0.3"]);
        let names = server_names("host", &listen, &interfaces, &public(&["Fleet.Example.", "::1"]));
        assert_eq!(
            names,
            ["localhost", "127.0.0.1", "::1", "host", "10.77.0.2", "10.77.0.3", "fleet.example"]
        );
    }

    #[test]
    fn a_server_on_every_address_is_named_by_each_interface_address_it_accepts_on() {
        let interfaces =
            ips(&["127.0.0.1", "10.77.0.2", "::1", "fd00::2", "fe80::1", "192.168.1.4"]);
        let v4 = server_names("host", &ips(&["0.0.0.0"]), &interfaces, &[]);
        assert_eq!(v4, ["localhost", "127.0.0.1", "::1", "host", "10.77.0.2", "192.168.1.4"]);
        // `::` accepts IPv4 too (dual stack); link-local addresses need a zone no URL can hold.
        let both = server_names("host", &ips(&["::", "10.77.0.2"]), &interfaces, &[]);
        assert_eq!(
            both,
            ["localhost", "127.0.0.1", "::1", "host", "10.77.0.2", "fd00::2", "192.168.1.4"]
        );
    }

    #[test]
    fn public_names_are_dns_names_or_usable_ip_addresses() {
        assert_eq!(public(&["[fd00::1]"]), [PublicName::Ip("fd00::1".parse().unwrap())]);
        assert_eq!(public(&["A.Example"]), [PublicName::Dns("a.example".into())]);
        for bad in ["", "a b", "*.example", "a..b", "-a.example", "::", "224.0.0.1", "1.2.3.4.5"] {
            let err = bad.parse::<PublicName>().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn a_changed_set_of_names_gets_a_new_server_certificate_from_the_same_ca() {
        provider();
        let dir = tempfile::tempdir().unwrap();
        let names = |p: &[&str]| server_names("host", &ips(&["10.77.0.2"]), &[], &public(p));
        // The second name is under the first: the CA's name constraints (made with the first
        // set) permit it.
        let first = ensure_for(DataDir::of(&dir).pki(), "host", &names(&["a.example"])).unwrap();
        let [ca, ca_key, cert] =
            [&first.ca_cert, &first.ca_key, &first.server_cert].map(|p| read(p).unwrap());
        verifies_as(&first, "a.example").unwrap();
        verifies_as(&first, "10.77.0.2").unwrap();
        // The same names again: nothing changes.
        ensure_for(DataDir::of(&dir).pki(), "host", &names(&["a.example"])).unwrap();
        assert_eq!(read(&first.server_cert).unwrap(), cert);
        // A name replaced: a new certificate without the old name, from the same CA.
        let second = ensure_for(DataDir::of(&dir).pki(), "host", &names(&["b.a.example"])).unwrap();
        assert_ne!(read(&second.server_cert).unwrap(), cert);
        assert_eq!([&second.ca_cert, &second.ca_key].map(|p| read(p).unwrap()), [ca, ca_key]);
        verifies_as(&second, "b.a.example").unwrap();
        assert!(verifies_as(&second, "a.example").is_err());
    }

    #[test]
    fn a_ca_certificate_without_its_key_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(DataDir::of(&dir).pki(), "host").unwrap();
        fs::remove_file(&pki.ca_key).unwrap();
        assert!(matches!(ensure(DataDir::of(&dir).pki(), "host"), Err(PkiError::HalfCa { .. })));
    }
}

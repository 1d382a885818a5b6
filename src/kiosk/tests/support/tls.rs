//! A test CA (rcgen, software keys: it plays fleetd), and blocking rustls client/server helpers
//! for real handshakes over loopback. Also used by `examples/tpm_bench.rs` through `#[path]`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// The ring provider, explicitly (the workspace builds rustls with ring only).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority with a software key, standing in for fleetd's CA.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { issuer: Issuer::new(params, key), cert: cert.der().clone() }
    }

    /// Issues a client certificate for the key and subject in `csr_der` (checks its signature).
    pub fn issue_client(&self, csr_der: &[u8]) -> CertificateDer<'static> {
        let mut csr = CertificateSigningRequestParams::from_der(
            &CertificateSigningRequestDer::from(csr_der.to_vec()),
        )
        .expect("CSR parses and its signature verifies");
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.signed_by(&self.issuer).expect("issue client certificate").der().clone()
    }

    /// A server certificate and key for `localhost`.
    pub fn issue_server(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into()]).expect("server params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        let key = PrivateKeyDer::try_from(key.serialize_der()).expect("server key DER");
        (cert.der().clone(), key)
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("CA root");
        Arc::new(roots)
    }
}

/// TLS 1.3 or 1.2 only, to test each.
pub fn versions(tls13: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    if tls13 { &TLS13 } else { &TLS12 }
}

/// A server that requires a client certificate issued by `ca`.
pub fn server_config(ca: &TestCa, tls13: bool) -> Arc<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(ca.roots(), provider())
        .build()
        .expect("client verifier");
    let (cert, key) = ca.issue_server();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(tls13))
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert, ca.cert.clone()], key)
        .expect("server config");
    Arc::new(config)
}

/// A client that trusts `ca` and authenticates with `resolver`. Session resumption is off, so
/// every connection is a full handshake with a fresh client signature.
pub fn client_config(
    ca: &TestCa,
    tls13: bool,
    resolver: Arc<dyn ResolvesClientCert>,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(tls13))
        .expect("protocol versions")
        .with_root_certificates(ca.roots())
        .with_client_cert_resolver(resolver);
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Outcome of one connection as the server saw it: the client's certificate chain, or why not.
pub type Seen = Result<Vec<CertificateDer<'static>>, String>;

/// Accepts `count` connections on a loopback port; each: handshake, read "ping", write "pong".
pub fn spawn_server(
    config: Arc<ServerConfig>,
    count: usize,
) -> (SocketAddr, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind server");
    let addr = listener.local_addr().expect("server addr");
    let handle = std::thread::spawn(move || {
        (0..count)
            .map(|_| {
                let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
                serve_one(config.clone(), sock)
            })
            .collect()
    });
    (addr, handle)
}

fn serve_one(config: Arc<ServerConfig>, sock: TcpStream) -> Seen {
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
    tls.write_all(b"pong").map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let certs = tls.conn.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(certs)
}

/// One full client connection: handshake, "ping", expect "pong". Err carries rustls' reason.
pub fn connect(config: Arc<ClientConfig>, addr: SocketAddr) -> Result<(), String> {
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"ping").map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
    if &buf != b"pong" {
        return Err(format!("unexpected reply {buf:?}"));
    }
    Ok(())
}

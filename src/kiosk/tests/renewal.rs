//! Certificate renewal as the kiosk does it (review H4): a CSR for the same key over mutual TLS
//! (presenting the current certificate), the new certificate checked, stored durably and
//! presented from the next connection on. A loopback HTTPS server stands in for fleetd's
//! `POST /api/device/renew`: it requires a client certificate from the test CA and issues one
//! from the CSR. The key is a software key (the TPM path is covered by identity_tls.rs).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::tls::{TestCa, connect, server_config, spawn_server};
use telekiosk::enrol::{self, Credentials};
use telekiosk::identity::{DeviceKey, SoftwareKey};
use telekiosk::renewal::{RenewableCert, Renewal};

const DEVICE: &str = "dev-renewtest1";

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// Serves one `POST /api/device/renew` over TLS requiring a client certificate from `ca`:
/// issues a certificate from the CSR in the body. Returns the port and, when done, the client
/// certificate the request came with.
fn renew_server(ca: Arc<TestCa>) -> (u16, std::thread::JoinHandle<CertificateDer<'static>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = server_config(&ca, true);
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).unwrap();
            request.push(byte[0]);
        }
        let head = String::from_utf8(request).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("post /api/device/renew "), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        let mut body = vec![0u8; length];
        tls.read_exact(&mut body).unwrap();
        let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let csr = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(
            req["csr_pem"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        let issued = ca.issue_client(csr.as_ref());
        let answer = serde_json::json!({
            "device_id": DEVICE,
            "certificate_pem": pem(&issued),
            "expires_at": 4_000_000_000i64,
        })
        .to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{answer}",
            answer.len()
        );
        tls.write_all(reply.as_bytes()).unwrap();
        tls.flush().unwrap();
        let seen = tls.conn.peer_certificates().unwrap()[0].clone().into_owned();
        tls.conn.send_close_notify();
        let _ = tls.flush();
        seen
    });
    (port, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_for_the_same_key_is_stored_and_presented_on_the_next_connection() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = tempfile::tempdir().unwrap();
    let key: DeviceKey = SoftwareKey::generate_for_development().unwrap().0.into_device_key();
    let ca = Arc::new(TestCa::new("test fleet CA"));
    let first = ca.issue_client(&key.csr_der(DEVICE).unwrap());
    let creds = Credentials {
        device_id: DEVICE.into(),
        certificate_pem: pem(&first),
        ca_pem: pem(&ca.cert),
        signing_key_pem: String::new(),
    };
    let cert = RenewableCert::new(key.clone(), vec![first.clone()]);
    let tls = telekiosk::uplink::tls_config(creds.ca_pem.as_bytes(), Some(cert.clone())).unwrap();

    let (port, server) = renew_server(ca.clone());
    let renewal = Renewal {
        server: format!("https://localhost:{port}/").parse().unwrap(),
        tls: tls.clone(),
        key: key.clone(),
        cert,
        state_dir: state.path().to_path_buf(),
    };
    let renewed = renewal.renew_once(&creds).await.expect("renewal succeeds");
    assert_eq!(server.join().unwrap(), first, "the request came with the current certificate");
    let new = renewed.chain().unwrap().remove(0);
    assert_ne!(new, first);
    assert!(key.matches_certificate(&new), "same key");
    // Stored durably: a restart loads the renewed certificate.
    assert_eq!(enrol::load(state.path(), &key).unwrap(), Some(renewed));

    // The next connection presents the new certificate.
    let (addr, seen) = spawn_server(server_config(&ca, true), 1);
    let mut fresh = (*tls).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    let tls = Arc::new(fresh);
    tokio::task::spawn_blocking(move || connect(tls, addr)).await.unwrap().unwrap();
    let seen = seen.join().unwrap().remove(0).unwrap();
    assert_eq!(seen[0], new);
}

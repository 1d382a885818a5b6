use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use rustls::pki_types::ServerName;

use super::*;
use crate::data_dir::DataDir;
use crate::pki::{ca_issuer, server_names, server_tls};

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn names() -> Vec<String> {
    server_names("host", &[], &[], &[])
}

/// Connects over TLS trusting only the CA in `ca`, as `localhost`; the certificate the server
/// presented: (serial, notAfter).
fn presented(addr: SocketAddr, ca: &Path) -> (Vec<u8>, i64) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(load_certs(ca).unwrap().remove(0)).unwrap();
    let config =
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    let der = conn.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    (cert.raw_serial().to_vec(), cert.validity().not_after.timestamp())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_expiry_server_certificate_is_renewed_and_served_without_a_restart() {
    provider();
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    // Issued 380 days ago: 17 days of its 397 are left.
    let long_ago = now - time::Duration::days(380);
    let pki = ensure_at(DataDir::of(&dir).pki(), "host", &names(), long_ago).unwrap();
    let web = RustlsConfig::from_config(server_tls(&pki).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let server = tokio::spawn(crate::http::serve(
        listener,
        web.clone(),
        axum::Router::new(),
        handle.clone(),
    ));
    handle.listening().await.expect("the server listens");
    let ca = pki.ca_cert.clone();
    let (old_serial, old_end) =
        tokio::task::spawn_blocking(move || presented(addr, &ca)).await.unwrap();
    assert!(old_end - now.unix_timestamp() < 30 * 86_400, "the old certificate is near its end");

    let mqtt = Arc::new(ClientIdentity::issue(&ca_issuer(&pki).unwrap(), long_ago).unwrap());
    let old_client_end = mqtt.not_after();
    let reload = Reload { web, broker: None, mqtt: mqtt.clone(), operator: None };
    let (pki2, reload) = (pki.clone(), Arc::new(reload));
    let r = reload.clone();
    let checked =
        tokio::task::spawn_blocking(move || check(&pki2, "host", &names(), &r, now)).await.unwrap();
    assert_eq!(checked.unwrap(), Checked { server_renewed: true, client_renewed: true });

    let ca = pki.ca_cert.clone();
    let (new_serial, new_end) =
        tokio::task::spawn_blocking(move || presented(addr, &ca)).await.unwrap();
    assert_ne!(new_serial, old_serial, "the listener serves the new certificate");
    assert!(new_end > old_end + 300 * 86_400, "{new_end} is not much later than {old_end}");
    assert!(mqtt.not_after() > old_client_end + 300 * 86_400);

    // A second check at the same time finds nothing due.
    let pki2 = pki.clone();
    let again =
        tokio::task::spawn_blocking(move || check(&pki2, "host", &names(), &reload, now)).await;
    assert_eq!(again.unwrap().unwrap(), Checked::default());
    handle.shutdown();
    let _ = server.await;
}

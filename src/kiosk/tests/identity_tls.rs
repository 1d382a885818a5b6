//! Mutual TLS over loopback with the client key in a real swtpm: rustls server requiring a client
//! certificate from a test CA, which issued it from the kiosk's TPM-signed CSR.

mod support;

use rustls::pki_types::CertificateDer;
use support::swtpm::Swtpm;
use support::tls::{TestCa, client_config, connect, server_config, spawn_server};
use telekiosk::identity::{DeviceKey, SoftwareKey, Tpm};

/// Enrols `key` with `ca` the way fleetd will: CSR in, certificate out.
fn enrol(ca: &TestCa, key: &DeviceKey) -> CertificateDer<'static> {
    let cert = ca.issue_client(&key.csr_der("kiosk-test").unwrap());
    assert!(key.matches_certificate(&cert));
    cert
}

fn handshake_with_tpm_key_succeeds_and_server_sees_the_certificate(tls13: bool) {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let ca = TestCa::new("test fleet CA");
    let cert = enrol(&ca, &key);

    let (addr, server) = spawn_server(server_config(&ca, tls13), 2);
    let client = client_config(&ca, tls13, key.client_auth(vec![cert.clone()]));
    connect(client.clone(), addr).expect("mutual TLS handshake with the TPM key");
    connect(client, addr).expect("a second connection signs again");
    for seen in server.join().unwrap() {
        let chain = seen.expect("server accepted the client");
        assert_eq!(chain.first(), Some(&cert), "server saw the TPM key's certificate");
    }
}

#[test]
fn tls13_handshake_with_the_tpm_client_key_succeeds_and_the_server_sees_its_certificate() {
    handshake_with_tpm_key_succeeds_and_server_sees_the_certificate(true);
}

#[test]
fn tls12_handshake_with_the_tpm_client_key_succeeds_and_the_server_sees_its_certificate() {
    handshake_with_tpm_key_succeeds_and_server_sees_the_certificate(false);
}

#[test]
fn handshake_fails_when_the_certificate_is_for_another_key() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let ca = TestCa::new("test fleet CA");
    // A genuine certificate from the same CA, but for a different key.
    let (other, _) = SoftwareKey::generate_for_development().unwrap();
    let other_cert = enrol(&ca, &other.into_device_key());
    assert!(!key.matches_certificate(&other_cert));

    for tls13 in [true, false] {
        let (addr, server) = spawn_server(server_config(&ca, tls13), 1);
        let client = client_config(&ca, tls13, key.client_auth(vec![other_cert.clone()]));
        let client_result = connect(client, addr);
        let seen = server.join().unwrap().pop().unwrap();
        assert!(client_result.is_err(), "TLS 1.{}: client must not get through", tls13 as u8 + 2);
        let reason = seen.expect_err("server must refuse a signature that does not match the cert");
        assert!(
            reason.to_lowercase().contains("signature"),
            "TLS 1.{}: server refused for another reason: {reason}",
            tls13 as u8 + 2
        );
    }
}

#[test]
fn handshake_fails_with_a_plain_reason_when_the_tpm_is_gone() {
    let mut swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let ca = TestCa::new("test fleet CA");
    let cert = enrol(&ca, &key);
    swtpm.stop();

    let (addr, server) = spawn_server(server_config(&ca, true), 1);
    let err = connect(client_config(&ca, true, key.client_auth(vec![cert])), addr).unwrap_err();
    assert!(err.contains("device key could not sign") && err.contains("TPM"), "{err}");
    assert!(server.join().unwrap().pop().unwrap().is_err());
}

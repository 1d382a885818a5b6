use super::*;
use crate::data_dir::DataDir;
use crate::pki;
use rcgen::{PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
use x509_parser::certificate::X509Certificate;
use x509_parser::revocation_list::CertificateRevocationList;

fn test_ca() -> (tempfile::TempDir, Issuer<'static, KeyPair>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::ensure(DataDir::of(&dir).pki(), "host").unwrap();
    let ca_der = pki::load_certs(&pki.ca_cert).unwrap().remove(0).to_vec();
    (dir, pki::ca_issuer(&pki).unwrap(), ca_der)
}

fn csr_for(key: &KeyPair) -> String {
    CertificateParams::default().serialize_request(key).unwrap().pem().unwrap()
}

#[test]
fn a_p256_csr_is_accepted_and_yields_its_public_key() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let device_key = check_csr(&csr_for(&key)).unwrap();
    assert_eq!(device_key.sec1(), key.public_key_raw());
}

#[test]
fn csrs_with_other_keys_are_refused_naming_the_key() {
    for alg in [&PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
        let key = KeyPair::generate_for(alg).unwrap();
        let refused = check_csr(&csr_for(&key)).unwrap_err();
        assert!(matches!(refused, CsrError::WrongKey { .. }), "{alg:?}: {refused}");
        assert!(refused.to_string().contains("must be ECDSA P-256"), "{refused}");
    }
}

#[test]
fn a_csr_whose_signature_does_not_match_its_key_is_refused() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = CertificateParams::default().serialize_request(&key).unwrap();
    let mut der = csr.der().to_vec();
    // The signature is the last bytes of the request; damage one of them.
    let last = der.len() - 3;
    der[last] ^= 0x55;
    let pem = rustls::pki_types::CertificateSigningRequestDer::from(der);
    let pem = pem_of("CERTIFICATE REQUEST", &pem);
    assert_eq!(check_csr(&pem), Err(CsrError::BadSignature));
}

#[test]
fn text_that_is_not_a_csr_is_refused() {
    assert_eq!(check_csr("hello"), Err(CsrError::NotPem));
    let junk = pem_of("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x01");
    assert_eq!(check_csr(&junk), Err(CsrError::Unparsable));
}

#[test]
fn a_device_certificate_names_the_device_is_for_client_auth_only_and_chains_to_the_ca() {
    let (_dir, issuer, ca_der) = test_ca();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let device_key = check_csr(&csr_for(&key)).unwrap();
    let now = OffsetDateTime::now_utc();
    let issued = issue_device_cert(&issuer, "dev-abcdefghij", &device_key, now).unwrap();
    let der = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap();
    assert_eq!(cn, "dev-abcdefghij");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);
    assert!(!cert.is_ca());
    let days = (cert.validity().not_after.timestamp() - now.unix_timestamp()) / 86_400;
    assert_eq!(days, 365);
    assert_eq!(cert.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
    assert_eq!(hex(cert.raw_serial()), issued.serial);
    assert_eq!(issued.fingerprint, fingerprint(&der));
    assert_eq!(issued.fingerprint.len(), 32 * 3 - 1);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key())).expect("signed by the CA");
}

#[test]
fn two_device_certificates_get_different_serials() {
    let (_dir, issuer, _) = test_ca();
    let key = DeviceKey(KeyPair::generate().unwrap().public_key_raw().to_vec());
    let now = OffsetDateTime::now_utc();
    let a = issue_device_cert(&issuer, "dev-aaaaaaaaaa", &key, now).unwrap();
    let b = issue_device_cert(&issuer, "dev-aaaaaaaaaa", &key, now).unwrap();
    assert_ne!(a.serial, b.serial);
}

#[test]
fn the_crl_lists_exactly_the_revoked_serials_and_is_signed_by_the_ca() {
    let (_dir, issuer, ca_der) = test_ca();
    let now = OffsetDateTime::now_utc();
    let revoked = [
        Revoked { serial: "01a2b3".into(), at: now.unix_timestamp() - 60 },
        Revoked { serial: "7f00ff".into(), at: now.unix_timestamp() },
    ];
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    for listed in [&revoked[..], &[]] {
        let pem = build_crl(&issuer, listed, now).unwrap();
        let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
            .unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        let serials: Vec<String> =
            crl.iter_revoked_certificates().map(|r| hex(r.raw_serial())).collect();
        assert_eq!(serials, listed.iter().map(|r| r.serial.clone()).collect::<Vec<_>>());
        assert_eq!(crl.issuer(), ca.subject());
        let next = crl.next_update().unwrap().timestamp();
        assert_eq!((next - now.unix_timestamp()) / 86_400, 30);
        crl.verify_signature(ca.public_key()).expect("signed by the CA");
    }
}

#[test]
fn a_stored_serial_that_is_not_hex_is_an_error_not_a_silent_omission() {
    let (_dir, issuer, _) = test_ca();
    let bad = [Revoked { serial: "xyz".into(), at: 0 }];
    let refused = build_crl(&issuer, &bad, OffsetDateTime::now_utc());
    assert!(matches!(refused, Err(PkiError::BadSerial(_))));
}

fn pem_of(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

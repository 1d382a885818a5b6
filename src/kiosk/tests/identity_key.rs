//! The device key against a real swtpm: non-exportable, verifiable signatures, a valid CSR.

mod support;

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use rustls::pki_types::CertificateSigningRequestDer;
use support::swtpm::Swtpm;
use telekiosk::identity::{DEVICE_KEY_HANDLE, KeyOrigin, RECORD_FILE, Tpm};

#[test]
fn device_key_is_created_non_exportable_and_tpm2_readpublic_agrees() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    assert_eq!(key.origin(), KeyOrigin::Created);

    let attrs = tpm.key_attributes(DEVICE_KEY_HANDLE).unwrap();
    assert!(attrs.fixed_tpm && attrs.fixed_parent && attrs.sensitive_data_origin, "{attrs:?}");
    assert!(attrs.sign && !attrs.decrypt && !attrs.restricted, "{attrs:?}");
    assert!(attrs.is_non_exportable_signing_key());
    let point = key.public_point().to_vec();

    // swtpm serves one connection at a time: close ours before tpm2-tools connects.
    drop((key, tpm));
    let handle = format!("{DEVICE_KEY_HANDLE:#010x}");
    let out = swtpm.tpm2("tpm2_readpublic", &["-c", &handle]);
    let attributes = out
        .lines()
        .skip_while(|l| !l.starts_with("attributes:"))
        .find_map(|l| l.trim().strip_prefix("value: "))
        .unwrap_or_else(|| panic!("no attributes in tpm2_readpublic output:\n{out}"));
    for flag in ["fixedtpm", "fixedparent", "sensitivedataorigin", "sign"] {
        assert!(attributes.split('|').any(|a| a == flag), "{flag} missing: {attributes}");
    }
    assert!(!attributes.split('|').any(|a| a == "decrypt"), "decrypt set: {attributes}");
    assert!(out.contains("curve-id:\n  value: NIST p256"), "not P-256:\n{out}");
    assert!(out.contains("scheme:\n  value: ecdsa"), "not ECDSA:\n{out}");
    let x = hex(&point[1..33]);
    assert!(out.contains(&x), "tpm2_readpublic shows another x coordinate than ours:\n{out}");

    // Nothing on disk can sign: the record holds the public point and the handle only.
    let record = std::fs::read_to_string(state.path().join(RECORD_FILE)).unwrap();
    assert!(record.contains(&hex(&point)) && !record.to_lowercase().contains("private"));
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 1, "only the record on disk");
}

#[test]
fn signatures_verify_with_the_device_public_key_and_not_for_another_message() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();

    let spki = rcgen::SubjectPublicKeyInfo::from_der(&key.public_key_der()).unwrap();
    assert_eq!(rcgen::PublicKeyData::der_bytes(&spki), key.public_point());
    assert_eq!(key.public_point().len(), 65);

    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_point().to_vec());
    for message in [&b""[..], b"kiosk", &[7u8; 5000][..]] {
        let sig = key.sign(message).unwrap();
        public.verify(message, &sig).expect("TPM signature verifies");
        assert!(public.verify(b"another message", &sig).is_err());
    }
    // A clone signs from another thread (DeviceKey is Send + Sync, the TPM thread serialises).
    let other = key.clone();
    let sig = std::thread::spawn(move || other.sign(b"from a thread").unwrap()).join().unwrap();
    public.verify(b"from a thread", &sig).unwrap();
}

#[test]
fn enrolment_csr_carries_the_device_key_and_common_name_and_its_signature_verifies() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();

    let der = key.csr_der("kiosk-room-12").unwrap();
    // from_der checks the CSR's self-signature.
    let csr =
        rcgen::CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
            .expect("CSR parses and its signature verifies");
    assert_eq!(rcgen::PublicKeyData::der_bytes(&csr.public_key), key.public_point());
    let cn = csr.params.distinguished_name.get(&rcgen::DnType::CommonName).unwrap();
    assert_eq!(cn, &rcgen::DnValue::Utf8String("kiosk-room-12".into()));

    let pem = key.csr_pem("kiosk-room-12").unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{pem}");
    assert!(rcgen::CertificateSigningRequestParams::from_pem(&pem).is_ok());
    assert!(key.csr_der("").is_err());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

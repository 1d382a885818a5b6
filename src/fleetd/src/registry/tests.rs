use super::*;
use crate::data_dir::DataDir;
use crate::registry::renewal::RenewError;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;

const NOW: i64 = 1_800_000_000;

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::ensure(DataDir::of(&dir).pki(), "host").unwrap();
    let registry = Registry::new(Store::in_memory(), pki, "SIGNING KEY PEM".into()).unwrap();
    (dir, registry)
}

fn csr(key: &KeyPair) -> String {
    CertificateParams::default().serialize_request(key).unwrap().pem().unwrap()
}

fn new_token(r: &Registry, ttl_secs: Option<u64>) -> String {
    let req = NewEnrolToken { clinic: "North Clinic".into(), room: "Room 2".into(), ttl_secs };
    r.create_token(&req, "admin", NOW).unwrap().token
}

fn enrol(r: &Registry, token: &str, key: &KeyPair, now: i64) -> Result<EnrolResponse, EnrolError> {
    r.enrol(&EnrolRequest { token: token.into(), csr_pem: csr(key) }, now)
}

fn device(id: &str, key: &DeviceKey, status: &str) -> DeviceRecord {
    DeviceRecord {
        id: id.into(),
        clinic: "c".into(),
        room: "r".into(),
        public_key: key.sec1().to_vec(),
        status: status.into(),
        created_at: 0,
        approved_at: None,
        revoked_at: None,
        cert_pem: None,
        cert_serial: None,
        cert_fingerprint: None,
    }
}

#[test]
fn the_enrolment_rules_decide_every_case() {
    let key = DeviceKey::from_sec1(vec![4; 65]);
    let other = DeviceKey::from_sec1(vec![5; 65]);
    let token = |used: bool, expires_at: i64| TokenRecord {
        clinic: "c".into(),
        room: "r".into(),
        expires_at,
        device_id: used.then(|| "dev-a".into()),
    };
    let fresh = token(false, NOW + 1);
    type Case = (
        &'static str,
        Option<TokenRecord>,
        Option<DeviceRecord>,
        Option<DeviceRecord>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("unknown token", None, None, None, "unknown"),
        ("fresh token", Some(fresh.clone()), None, None, "create"),
        ("expired token", Some(token(false, NOW)), None, None, "expired"),
        (
            "used, same key",
            Some(token(true, NOW + 1)),
            Some(device("dev-a", &key, "pending")),
            None,
            "existing",
        ),
        (
            "used, same key, expired since",
            Some(token(true, NOW - 1)),
            Some(device("dev-a", &key, "active")),
            None,
            "existing",
        ),
        (
            "used, same key, revoked",
            Some(token(true, NOW + 1)),
            Some(device("dev-a", &key, "revoked")),
            None,
            "revoked",
        ),
        (
            "used by another key",
            Some(token(true, NOW + 1)),
            Some(device("dev-a", &other, "pending")),
            None,
            "used",
        ),
        (
            "fresh token, revoked key",
            Some(fresh.clone()),
            None,
            Some(device("dev-b", &key, "revoked")),
            "revoked",
        ),
        (
            "fresh token, enrolled key",
            Some(fresh),
            None,
            Some(device("dev-b", &key, "active")),
            "key enrolled",
        ),
    ];
    for (case, token, bound, same_key, want) in cases {
        let got = match decide(token, bound, same_key, &key, NOW, "dev-new".into()) {
            Ok(EnrolDecision::Create(d)) => {
                assert_eq!(
                    (d.id.as_str(), d.status.as_str(), d.clinic.as_str()),
                    ("dev-new", "pending", "c")
                );
                "create"
            }
            Ok(EnrolDecision::Existing(_)) => "existing",
            Err(EnrolError::UnknownToken) => "unknown",
            Err(EnrolError::ExpiredToken) => "expired",
            Err(EnrolError::TokenUsed) => "used",
            Err(EnrolError::Revoked) => "revoked",
            Err(EnrolError::KeyEnrolled) => "key enrolled",
            Err(e) => panic!("{case}: {e}"),
        };
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn a_device_enrols_is_approved_gets_its_certificate_and_is_revoked() {
    let (_dir, r) = registry();
    let token = new_token(&r, None);
    let key = KeyPair::generate().unwrap();
    let first = enrol(&r, &token, &key, NOW + 5).unwrap();
    assert_eq!(first.status, EnrolStatus::Pending);
    assert!(first.device_id.starts_with("dev-"));
    // The same kiosk asking again, with the code typed differently, gets the same device.
    let again = enrol(&r, &token.to_lowercase().replace('-', ""), &key, NOW + 6).unwrap();
    assert_eq!(again, first);

    let generation = r.generation().unwrap();
    let shown = r.approve(&first.device_id, "admin", NOW + 10).unwrap();
    assert_eq!(shown.status, DeviceStatus::Active);
    assert_eq!((shown.clinic.as_str(), shown.room.as_str()), ("North Clinic", "Room 2"));
    assert!(r.generation().unwrap() > generation);
    // Long after the code expired, the kiosk still learns it was approved.
    let approved = enrol(&r, &token, &key, NOW + 3 * 86_400).unwrap();
    let EnrolStatus::Approved { certificate_pem, ca_pem, signing_key_pem } = approved.status else {
        panic!("not approved: {approved:?}");
    };
    assert!(certificate_pem.contains("BEGIN CERTIFICATE") && ca_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(signing_key_pem, "SIGNING KEY PEM");

    assert!(r.revoked().unwrap().is_empty());
    let revoked = r.revoke(&first.device_id, "admin", NOW + 20).unwrap();
    assert_eq!((revoked.status, revoked.revoked_at), (DeviceStatus::Revoked, Some(NOW + 20)));
    let listed = r.revoked().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, first.device_id);
    assert_eq!(Some(&listed[0].1.serial), shown.cert_serial.as_ref());
    assert!(matches!(enrol(&r, &token, &key, NOW + 30), Err(EnrolError::Revoked)));
    assert_eq!(r.list().unwrap(), vec![revoked]);
}

#[test]
fn a_used_expired_or_unknown_code_is_refused() {
    let (_dir, r) = registry();
    let token = new_token(&r, Some(60));
    enrol(&r, &token, &KeyPair::generate().unwrap(), NOW).unwrap();
    let other_key = KeyPair::generate().unwrap();
    assert!(matches!(enrol(&r, &token, &other_key, NOW), Err(EnrolError::TokenUsed)));
    let short = new_token(&r, Some(60));
    assert!(matches!(enrol(&r, &short, &other_key, NOW + 60), Err(EnrolError::ExpiredToken)));
    let unknown = if token.starts_with('2') { "3333-3333" } else { "2222-2222" };
    assert!(matches!(enrol(&r, unknown, &other_key, NOW), Err(EnrolError::UnknownToken)));
    assert!(matches!(enrol(&r, "not a code", &other_key, NOW), Err(EnrolError::UnknownToken)));
    assert!(r.list().unwrap().len() == 1, "refusals record no device");
}

#[test]
fn only_a_pending_device_can_be_approved_and_only_once_revoked() {
    let (_dir, r) = registry();
    let token = new_token(&r, None);
    let id = enrol(&r, &token, &KeyPair::generate().unwrap(), NOW).unwrap().device_id;
    r.approve(&id, "admin", NOW).unwrap();
    let twice = r.approve(&id, "admin", NOW).unwrap_err();
    assert_eq!(
        twice.to_string(),
        format!("device {id} is active, not pending: only a pending device can be approved")
    );
    r.revoke(&id, "admin", NOW).unwrap();
    assert!(matches!(r.revoke(&id, "admin", NOW), Err(RegistryError::AlreadyRevoked(_))));
    assert!(matches!(r.approve(&id, "admin", NOW), Err(RegistryError::NotPending { .. })));
    let missing = r.approve("dev-nosuchdevi", "admin", NOW).unwrap_err();
    assert!(missing.to_string().contains("there is no device \"dev-nosuchdevi\""), "{missing}");
}

#[test]
fn a_token_for_a_blank_or_multi_line_place_is_refused() {
    let (_dir, r) = registry();
    for (clinic, room) in [(" ", "1"), ("North", "Room\n2"), ("North", "")] {
        let req = NewEnrolToken { clinic: clinic.into(), room: room.into(), ttl_secs: None };
        assert!(matches!(r.create_token(&req, "admin", NOW), Err(RegistryError::Invalid(_))));
    }
    let forever = NewEnrolToken { clinic: "c".into(), room: "r".into(), ttl_secs: Some(u64::MAX) };
    assert!(r.create_token(&forever, "admin", NOW).is_err());
}

#[test]
fn a_renewed_kiosk_keeps_its_key_and_revoking_it_revokes_every_certificate_it_had() {
    let (_dir, r) = registry();
    let key = KeyPair::generate().unwrap();
    let token = new_token(&r, None);
    let id = enrol(&r, &token, &key, NOW).unwrap().device_id;
    let first = r.approve(&id, "admin", NOW).unwrap();
    let first_pem = r.device(&id).unwrap().cert_pem.unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(first_pem.as_bytes()).unwrap();
    // Near the end of its life, the kiosk renews with its current certificate and key.
    let later = NOW + 300 * 86_400;
    let renewed = r.renew(&der, &csr(&key), later).unwrap();
    assert_eq!(renewed.device_id, id);
    assert!(renewed.expires_at > first.cert_expires_at.unwrap());
    let again =
        rustls::pki_types::CertificateDer::from_pem_slice(renewed.certificate_pem.as_bytes())
            .unwrap();
    assert_eq!(ca::subject_and_key(&again), ca::subject_and_key(&der), "same subject and key");
    let shown = r.show(&id).unwrap();
    assert_ne!(shown.cert_serial, first.cert_serial);
    assert_eq!(shown.cert_expires_at, Some(renewed.expires_at));
    // Another key is refused.
    let other = KeyPair::generate().unwrap();
    assert!(matches!(r.renew(&der, &csr(&other), later), Err(RenewError::CsrKey)));
    // Revoked: no renewal, and both serials are on the CRL.
    r.revoke(&id, "admin", later).unwrap();
    assert!(matches!(r.renew(&der, &csr(&key), later), Err(RenewError::Revoked)));
    let on_crl: Vec<String> = r.revoked().unwrap().into_iter().map(|(_, x)| x.serial).collect();
    for serial in [first.cert_serial.unwrap(), shown.cert_serial.unwrap()] {
        assert!(on_crl.contains(&serial), "{serial} not in {on_crl:?}");
    }
}

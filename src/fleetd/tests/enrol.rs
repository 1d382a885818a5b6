//! Enrolment, mutual TLS, per-device ACLs and revocation, end to end on loopback: the real
//! `fleetd serve` with a real mosquitto, kiosks played by rumqttc clients with software keys.
//! Needs mosquitto installed: without it these tests fail, they do not skip.

mod common;

use std::time::{Duration, Instant};

use common::{
    Device, Fleetd, Seen, WAIT, add_user, cli, device_key, device_tls, enrol_token,
    enrolled_device, mqtt, post_enrol, sign_in, start, stop, tls,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rumqttc::{QoS, SubscribeReasonCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use telekiosk_protocol::api::{DeviceDetail, DeviceInfo, DeviceStatus, EnrolToken};
use telekiosk_protocol::topics;

async fn data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    (tmp, dir)
}

/// Subscribes and returns the SubAck's codes.
async fn subscribe(m: &mut common::Mqtt, filter: &str) -> Vec<SubscribeReasonCode> {
    m.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    match m.until(|s| matches!(s, Seen::SubAck(_))).await.1 {
        Seen::SubAck(codes) => codes,
        _ => unreachable!(),
    }
}

/// Publishes at QoS 1 and waits for the broker's PubAck: once it is back, the broker has
/// routed the message to every subscriber allowed to have it.
async fn publish_acked(m: &mut common::Mqtt, topic: &str, payload: &str) {
    m.client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).await.unwrap();
    m.until(|s| matches!(s, Seen::PubAck(_))).await;
}

/// Has fleetd send the device a command (the one thing a device both may receive and can make
/// happen) and returns every publish it received before that command came: what the broker
/// delivered to it up to now. The device must be subscribed to its `cmd` topic.
async fn delivered_before_marker(f: &Fleetd, m: &mut common::Mqtt, device: &Device) -> Vec<String> {
    let args = ["device", "cmd", &device.id, "identify", "--seconds", "5"];
    let (ok, _, err) = cli(&f.dir, &args).await;
    assert!(ok, "{err}");
    let cmd = topics::cmd(&device.id);
    let is_marker = |s: &Seen| matches!(s, Seen::Publish { topic, .. } if *topic == cmd);
    let (before, _) = m.until(is_marker).await;
    before
        .into_iter()
        .filter_map(|s| match s {
            Seen::Publish { topic, .. } => Some(topic),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_device_connects_with_its_certificate_and_uses_only_its_own_topics() {
    let (_tmp, dir) = data_dir().await;
    let f = start(&dir).await;
    let (a, b) = (enrolled_device(&f, "1").await, enrolled_device(&f, "2").await);
    let mut ma = mqtt(&f, device_tls(&f, &a), "kiosk-a").await.expect("device A connects");
    let mut mb = mqtt(&f, device_tls(&f, &b), "kiosk-b").await.expect("device B connects");
    let b_state = topics::state(&b.id);

    // Each subscribes under its own subtree (the broker delivers only what fleetd sends it
    // there: see broker_abuse.rs) and publishes its state.
    let granted = subscribe(&mut ma, &format!("telekiosk/v1/dev/{}/#", a.id)).await;
    assert!(matches!(granted[..], [SubscribeReasonCode::Success(_)]), "{granted:?}");
    publish_acked(&mut ma, &topics::state(&a.id), "state of A").await;
    subscribe(&mut mb, &format!("telekiosk/v1/dev/{}/#", b.id)).await;

    // A subscribing to B's subtree gets nothing of it. (mosquitto 2.0.11's acl_file grants the
    // SUBACK and refuses each delivery instead; either way A never reads B's messages.)
    let to_b = subscribe(&mut ma, &format!("telekiosk/v1/dev/{}/#", b.id)).await;
    publish_acked(&mut mb, &b_state, "for fleetd only").await;
    let b_prefix = format!("telekiosk/v1/dev/{}/", b.id);
    let seen_by_a = delivered_before_marker(&f, &mut ma, &a).await;
    assert!(
        !seen_by_a.iter().any(|t| t.starts_with(&b_prefix)),
        "A received {seen_by_a:?} (SubAck {to_b:?})"
    );

    // A publishing on B's subtree reaches nobody.
    let forged = topics::visit_in(&b.id);
    publish_acked(&mut ma, &forged, "forged").await;
    let seen_by_b = delivered_before_marker(&f, &mut mb, &b).await;
    assert!(!seen_by_b.contains(&forged), "B received A's publish: {seen_by_b:?}");
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_no_certificate_a_foreign_ca_and_a_pending_device() {
    let (_tmp, dir) = data_dir().await;
    let f = start(&dir).await;

    let anonymous = mqtt(&f, tls(&f.ca, None), "anonymous").await.err();
    let anonymous = anonymous.expect("a client without a certificate is refused");
    assert!(anonymous.contains("received fatal alert: CertificateRequired"), "{anonymous}");

    let foreign = mqtt(&f, tls(&f.ca, Some(foreign_identity("dev-aaaaaaaaaa"))), "foreign").await;
    let foreign = foreign.err().expect("a certificate from another CA is refused");
    assert!(foreign.contains("received fatal alert: UnknownCA"), "{foreign}");

    // A pending device has no certificate yet, so all it could offer is the above.
    let token = enrol_token(&dir, "3", "1h").await;
    let (status, body) = post_enrol(&f, &token.token, &device_key().1).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")));

    let log = f.logged();
    assert!(log.contains("certificate verify failed"), "the broker says why:\n{log}");
    assert!(log.contains("peer did not return a certificate"), "the broker says why:\n{log}");
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_closes_its_open_connection_within_seconds_and_refuses_it_after() {
    let (_tmp, dir) = data_dir().await;
    let f = start(&dir).await;
    let (a, b) = (enrolled_device(&f, "1").await, enrolled_device(&f, "2").await);
    let mut ma = mqtt(&f, device_tls(&f, &a), "kiosk-a").await.expect("device A connects");

    let (ok, out, err) = cli(&dir, &["device", "revoke", &a.id]).await;
    assert!(ok && out.contains("revoked"), "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ma.seen.recv()).await {
            Ok(Some(Seen::Closed(_)) | None) => break,
            Ok(Some(_)) => {}
            Err(_) => panic!("the revoked device was still connected after 10 s:\n{}", f.logged()),
        }
    }

    let refused = connect_until_settled(&f, &a).await.expect_err("a revoked device connects");
    assert!(refused.contains("received fatal alert: CertificateRevoked"), "{refused}");
    // Everyone else reconnects to the restarted broker, fleetd included.
    mqtt(&f, device_tls(&f, &b), "kiosk-b").await.expect("device B still connects");
    let (status, body) = post_enrol(&f, &a.token, &a.csr).await;
    assert_eq!(status, 403, "{body}");
    // Nor can it come back with a new code and the same key.
    let token = enrol_token(&dir, "1", "1h").await.token;
    assert_eq!(post_enrol(&f, &token, &a.csr).await.0, 403);
    let (_, shown, _) = cli(&dir, &["device", "show", &a.id, "--json"]).await;
    let shown: DeviceInfo = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown.status, DeviceStatus::Revoked);
    assert!(f.logged().contains("restarting the broker to close revoked connections"));
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_codes_are_one_time_expiring_and_refused_with_reasons() {
    let (_tmp, dir) = data_dir().await;
    let f = start(&dir).await;
    let token = enrol_token(&dir, "1", "1h").await.token;
    let (_, csr) = device_key();
    let (status, first) = post_enrol(&f, &token, &csr).await;
    assert_eq!(status, 200, "{first}");
    // The same kiosk asking again learns where it stands; another kiosk is refused.
    assert_eq!(post_enrol(&f, &token.to_lowercase(), &csr).await, (200, first.clone()));
    let used = post_enrol(&f, &token, &device_key().1).await;
    assert_eq!(used, (409, json!({ "error": "This enrolment code was already used." })));

    let unknown = if token.starts_with('2') { "3456-789A" } else { "2345-6789" };
    let refused = post_enrol(&f, unknown, &csr).await;
    assert_eq!(refused, (401, json!({ "error": "This enrolment code is not valid." })));

    let short: EnrolToken = enrol_token(&dir, "2", "1s").await;
    while common_now() < short.expires_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expired = post_enrol(&f, &short.token, &device_key().1).await;
    let message = "This enrolment code has expired; ask the admin for a new one.";
    assert_eq!(expired, (401, json!({ "error": message })));

    let fresh = enrol_token(&dir, "3", "1h").await.token;
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p384 = CertificateParams::default().serialize_request(&p384).unwrap().pem().unwrap();
    let (status, body) = post_enrol(&f, &fresh, &p384).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("must be ECDSA P-256"), "{body}");
    let junk = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    let (status, body) = post_enrol(&f, &fresh, junk).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_enrol(&f, "no spaces!", &csr).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    // The refusals used nothing up: the fresh code still works.
    assert_eq!(post_enrol(&f, &fresh, &device_key().1).await.0, 200);
    stop(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_make_codes_approve_list_and_revoke_over_the_api_and_clinicians_cannot() {
    let (_tmp, dir) = data_dir().await;
    add_user(&dir, "ada", "admin-password", "admin").await;
    add_user(&dir, "cleo", "clinician-password", "clinician").await;
    let f = start(&dir).await;
    let http = common::http(&f);
    let new_token = json!({ "clinic": "North Clinic", "room": "4" });

    let anonymous = http.post(f.url("/api/admin/devices/tokens")).json(&new_token).send().await;
    assert_eq!(anonymous.unwrap().status().as_u16(), 401);
    let clinician = sign_in(&f, "cleo", "clinician-password").await;
    for (method, path) in [("POST", "/api/admin/devices/tokens"), ("GET", "/api/admin/devices")] {
        let req = http.request(method.parse().unwrap(), f.url(path)).header("cookie", &clinician);
        let res = req.json(&new_token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403, "{method} {path}");
    }

    let admin = sign_in(&f, "ada", "admin-password").await;
    let api = |method: &str, path: &str| {
        http.request(method.parse().unwrap(), f.url(path)).header("cookie", &admin)
    };
    let res = api("POST", "/api/admin/devices/tokens").json(&new_token).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let token: EnrolToken = res.json().await.unwrap();
    assert!(token.token.len() == 9 && token.token.as_bytes()[4] == b'-', "{}", token.token);
    assert!((token.expires_at - common_now() - 86_400).abs() < 60, "default 24 h");

    let (_, body) = post_enrol(&f, &token.token, &device_key().1).await;
    let id = body["device_id"].as_str().unwrap().to_string();
    let listed: Vec<Value> =
        api("GET", "/api/admin/devices").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.len(), 1);
    let mut fields: Vec<&str> = listed[0].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    fields.sort_unstable();
    let phi_free = [
        "approved_at",
        "cert_expires_at",
        "cert_fingerprint",
        "cert_serial",
        "clinic",
        "created_at",
        "id",
        "key_fingerprint",
        "revoked_at",
        "room",
        "status",
    ];
    assert_eq!(fields, phi_free);
    assert_eq!(
        (listed[0]["id"].as_str(), listed[0]["status"].as_str()),
        (Some(&*id), Some("pending"))
    );

    let approve = format!("/api/admin/devices/{id}/approve");
    let approved: DeviceInfo = api("POST", &approve).send().await.unwrap().json().await.unwrap();
    assert_eq!(approved.status, DeviceStatus::Active);
    assert!(approved.cert_serial.is_some() && approved.cert_fingerprint.is_some());
    let again = api("POST", &approve).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let revoke = format!("/api/admin/devices/{id}/revoke");
    let revoked: DeviceInfo = api("POST", &revoke).send().await.unwrap().json().await.unwrap();
    assert_eq!(revoked.status, DeviceStatus::Revoked);
    // One device in full carries its registry record.
    let shown: DeviceDetail =
        api("GET", &format!("/api/admin/devices/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown.fleet.device, revoked);
    let missing = api("POST", "/api/admin/devices/dev-nosuchdevi/approve").send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    stop(f).await;
}

/// Tries to connect as `device` until the answer is not "broker restarting" (connection
/// refused while mosquitto comes back).
async fn connect_until_settled(f: &Fleetd, device: &Device) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match mqtt(f, device_tls(f, device), "retry").await {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("refused") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A certificate for `cn` from a CA fleetd has never seen.
fn foreign_identity(cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "someone else's CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let chain = vec![cert.der().clone(), ca_cert.der().clone()];
    (chain, PrivateKeyDer::try_from(key.serialize_der()).unwrap())
}

fn common_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

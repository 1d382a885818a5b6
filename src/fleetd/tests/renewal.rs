//! Kiosk certificate renewal over mutual TLS (review H4), end to end: the real `fleetd serve`
//! with mosquitto, a kiosk played by `telekiosk-sim` with a software key whose certificate
//! (issued by the fleet CA with a shifted clock) has ten days left. Needs mosquitto installed.

mod common;

use common::{
    Device, cli, device_tls, enrol_token, enrolled_device, free_port, mqtt, spawn_fleetd, start,
    stop, wait_ready,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// A certificate for `device`'s key and id from the fleet CA in `dir`, as fleetd would have
/// issued it 355 days ago: ten days left.
fn near_expiry_cert(dir: &std::path::Path, device: &Device) -> String {
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "telekiosk");
    params.distinguished_name.push(DnType::CommonName, device.id.as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(355);
    params.not_after = now + Duration::days(10);
    params.signed_by(&device.key, &issuer).unwrap().pem()
}

fn identity(
    cert_pem: &str,
    key: &KeyPair,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    (chain, PrivateKeyDer::try_from(key.serialize_der()).unwrap())
}

/// (subject CN, SubjectPublicKeyInfo, notAfter) of a PEM certificate.
fn read_cert(pem: &str) -> (String, Vec<u8>, i64) {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
    (cn, cert.public_key().raw.to_vec(), cert.validity().not_after.timestamp())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_near_expiry_renews_over_mutual_tls_for_the_same_key_until_it_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let f = start(&dir).await;
    let mut device = enrolled_device(&f, "Room 1").await;
    device.cert_pem = near_expiry_cert(&dir, &device);
    let (old_cn, old_key, old_end) = read_cert(&device.cert_pem);
    let base = f.url("");
    let csr = telekiosk_sim::csr_for(&device.key).unwrap();

    // Without a client certificate: 401, nothing issued.
    let (status, body) = telekiosk_sim::renew(&base, &f.ca, None, &csr).await.unwrap();
    assert_eq!(status, 401, "{body}");

    // A CSR for another key, over the kiosk's own certificate: refused.
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other_csr = telekiosk_sim::csr_for(&other).unwrap();
    let mine = Some(identity(&device.cert_pem, &device.key));
    let (status, body) = telekiosk_sim::renew(&base, &f.ca, mine, &other_csr).await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("another key"), "{body}");

    // The same key: a new certificate, same subject and key, a later notAfter.
    let mine = Some(identity(&device.cert_pem, &device.key));
    let (status, body) = telekiosk_sim::renew(&base, &f.ca, mine, &csr).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let new_pem = body["certificate_pem"].as_str().unwrap().to_string();
    let (new_cn, new_key, new_end) = read_cert(&new_pem);
    assert_eq!((new_cn.as_str(), &new_key), (old_cn.as_str(), &old_key));
    assert_eq!(new_cn, device.id);
    assert!(new_end > old_end + 300 * 86_400, "{new_end} vs {old_end}");
    assert_eq!(body["expires_at"].as_i64(), Some(new_end));

    // The admin sees when the new certificate ends.
    let (ok, out, err) = cli(&dir, &["device", "list", "--json"]).await;
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let row = listed.iter().find(|d| d["id"] == device.id.as_str()).unwrap();
    assert_eq!(row["cert_expires_at"].as_i64(), Some(new_end), "{row}");

    // The kiosk's next connection uses it: the broker takes the renewed certificate.
    device.cert_pem = new_pem.clone();
    mqtt(&f, device_tls(&f, &device), &device.id).await.expect("MQTT with the renewed certificate");

    // Revoked: its certificate, still within its validity, renews nothing.
    let (ok, _, err) = cli(&dir, &["device", "revoke", &device.id]).await;
    assert!(ok, "{err}");
    let mine = Some(identity(&new_pem, &device.key));
    let (status, body) = telekiosk_sim::renew(&base, &f.ca, mine, &csr).await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("revoked"), "{body}");

    stop(f).await;
    let (ok, out, err) = cli(
        &dir,
        &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"],
    )
    .await;
    assert!(ok, "{err}");
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    let renewals: Vec<&Value> = records.iter().filter(|r| r["action"] == "device.renew").collect();
    let outcomes: Vec<&str> = renewals.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ok").count(), 1, "{renewals:#?}");
    assert_eq!(outcomes.len(), 3, "one success and two refusals by a device: {renewals:#?}");
    assert!(
        renewals.iter().all(|r| r["actor"] == format!("device:{}", device.id)),
        "{renewals:#?}"
    );
}

/// A CA of "the enterprise" and a certificate for `localhost` from it, written to `dir`:
/// (CA path, certificate path, key path).
fn enterprise_certificate(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "Enterprise CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.clone().self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into()]).unwrap();
    let cert_pem = cert.signed_by(&key, &issuer).unwrap().pem();
    let paths = ["enterprise-ca.pem", "web.pem", "web-key.pem"].map(|f| dir.join(f));
    for (path, text) in paths.iter().zip([ca_pem, cert_pem, key.serialize_pem()]) {
        std::fs::write(path, text).unwrap();
    }
    paths
}

async fn health(base: &str, ca: &std::path::Path) -> Result<u16, reqwest::Error> {
    let tls = telekiosk_sim::client_tls(ca, None).unwrap();
    let http = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    Ok(http.get(format!("{base}/api/health")).send().await?.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_the_operators_certificate_and_kiosks_the_fleet_ca_on_their_own_listener() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let [enterprise_ca, web_cert, web_key] = enterprise_certificate(tmp.path());
    let (web_port, mqtt_port, device_port) = (free_port(), free_port(), free_port());
    let mqtt_listen = format!("127.0.0.1:{mqtt_port}");
    let device_listen = format!("127.0.0.1:{device_port}");
    let args = [
        "--mqtt-listen",
        &mqtt_listen,
        "--device-listen",
        &device_listen,
        "--web-cert",
        web_cert.to_str().unwrap(),
        "--web-key",
        web_key.to_str().unwrap(),
    ];
    let child = spawn_fleetd(&dir, web_port, &args);
    let f = wait_ready(child, &dir, web_port, mqtt_port).await;
    let console = format!("https://localhost:{web_port}");
    let kiosks = format!("https://127.0.0.1:{device_port}");

    // Browsers trust the enterprise CA only: the console is theirs, not the fleet CA's.
    assert_eq!(health(&console, &enterprise_ca).await.unwrap(), 200);
    assert!(health(&console, &f.ca).await.is_err(), "the console still serves the fleet CA");
    // Kiosks pin the fleet CA: their listener serves fleetd's own certificate, and they enrol
    // and renew there.
    assert!(health(&kiosks, &enterprise_ca).await.is_err());
    assert_eq!(health(&kiosks, &f.ca).await.unwrap(), 200);
    let token = enrol_token(&dir, "Room 9", "1h").await.token;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(telekiosk_sim::client_tls(&f.ca, None).unwrap())
        .build()
        .unwrap();
    let approve = async |id: &str| {
        let (ok, _, err) = cli(&dir, &["device", "approve", id]).await;
        anyhow::ensure!(ok, "approve failed: {err}");
        Ok(())
    };
    let device = telekiosk_sim::enrol(&http, &kiosks, &token, approve).await.unwrap();
    let csr = telekiosk_sim::csr_for(&device.key).unwrap();
    let mine = Some(identity(&device.cert_pem, &device.key));
    let (status, body) = telekiosk_sim::renew(&kiosks, &f.ca, mine, &csr).await.unwrap();
    assert_eq!(status, 200, "{body}");
    stop(f).await;
}

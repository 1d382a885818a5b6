//! TPM identity figures against a swtpm this program starts: time to open the TPM and load (or
//! create) the device key, ECDSA signs per second, seal/unseal time, and full mutual-TLS
//! handshakes per second over loopback with the TPM client key (TCP_NODELAY set).
//! Figures only, no assertions. Run: `cargo run -p telekiosk --example tpm_bench [-- ROUNDS]`.

#[path = "../tests/support/swtpm.rs"]
mod swtpm;
#[path = "../tests/support/tls.rs"]
mod tls;

use std::time::{Duration, Instant};

use telekiosk::identity::{DeviceKey, SoftwareKey, Tpm};

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200);
    let swtpm = swtpm::Swtpm::start();
    let state = tempfile::tempdir()?;
    println!("swtpm at {} ({} rounds per figure)", swtpm.tcti(), rounds);

    let t = Instant::now();
    let tpm = Tpm::open(&swtpm.tcti())?;
    let opened = t.elapsed();
    let key = tpm.device_key(state.path())?;
    let first = t.elapsed();
    drop((key, tpm));
    line("first start: open TPM + create device key", first, None);
    line("  of which open", opened, None);

    let t = Instant::now();
    let tpm = Tpm::open(&swtpm.tcti())?;
    let key = tpm.device_key(state.path())?;
    line("later start: open TPM + load device key", t.elapsed(), None);
    println!("  vendor {:?}, key: {}", tpm.vendor()?, key.describe());

    let t = Instant::now();
    for i in 0..rounds {
        key.sign(&i.to_le_bytes())?;
    }
    let per = t.elapsed() / rounds as u32;
    line("ECDSA P-256 sign in the TPM", per, Some(per));

    let t = Instant::now();
    let blob = tpm.seal(&[7u8; 32], &[16])?;
    line("seal 32 bytes (PCR 16 policy)", t.elapsed(), None);
    let t = Instant::now();
    tpm.unseal(&blob)?;
    line("unseal (PCR 16 policy)", t.elapsed(), None);

    let ca = tls::TestCa::new("bench CA");
    for tls13 in [true, false] {
        let per = handshakes(&ca, &key, tls13, rounds)?;
        let name = format!("TLS 1.{} mutual handshake, TPM client key", if tls13 { 3 } else { 2 });
        line(&name, per, Some(per));
    }
    let (soft, _) = SoftwareKey::generate_for_development()?;
    let per = handshakes(&ca, &soft.into_device_key(), true, rounds)?;
    line("TLS 1.3 mutual handshake, software key (reference)", per, Some(per));
    Ok(())
}

/// Mean time of one full handshake + one round trip, sequential connections.
fn handshakes(
    ca: &tls::TestCa,
    key: &DeviceKey,
    tls13: bool,
    rounds: usize,
) -> anyhow::Result<Duration> {
    let cert = ca.issue_client(&key.csr_der("bench-kiosk")?);
    let (addr, server) = tls::spawn_server(tls::server_config(ca, tls13), rounds);
    let client = tls::client_config(ca, tls13, key.client_auth(vec![cert]));
    let t = Instant::now();
    for _ in 0..rounds {
        tls::connect(client.clone(), addr).map_err(anyhow::Error::msg)?;
    }
    let per = t.elapsed() / rounds as u32;
    for seen in server.join().map_err(|_| anyhow::anyhow!("server thread panicked"))? {
        seen.map_err(anyhow::Error::msg)?;
    }
    Ok(per)
}

fn line(what: &str, took: Duration, per_op: Option<Duration>) {
    let ms = took.as_secs_f64() * 1e3;
    match per_op {
        Some(per) => println!("{what:<52} {ms:8.2} ms  {:8.0} /s", 1.0 / per.as_secs_f64()),
        None => println!("{what:<52} {ms:8.2} ms"),
    }
}

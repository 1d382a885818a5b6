//! The device key across restarts, many open/close cycles, a stopped or hung TPM, and a swapped
//! disk — against a real swtpm.

mod support;

use std::time::{Duration, Instant};

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use support::swtpm::Swtpm;
use telekiosk::identity::{IdentityError, KeyOrigin, RECORD_FILE, Tpm};

#[test]
fn restarting_the_kiosk_and_swtpm_keeps_the_same_key_without_recreating_it() {
    let swtpm_state = tempfile::tempdir().unwrap();
    let mut swtpm = Swtpm::start_in(swtpm_state.path());
    let state = tempfile::tempdir().unwrap();

    let first = Tpm::open(&swtpm.tcti()).unwrap().device_key(state.path()).unwrap();
    assert_eq!(first.origin(), KeyOrigin::Created);
    let point = first.public_point().to_vec();
    drop(first);

    // Kiosk restart: same TPM, new process state.
    let again = Tpm::open(&swtpm.tcti()).unwrap().device_key(state.path()).unwrap();
    assert_eq!(again.origin(), KeyOrigin::Loaded);
    assert_eq!(again.public_point(), &point[..]);
    drop(again);

    // Power cycle of the TPM itself: swtpm restarted on its state directory.
    swtpm.restart();
    let after = Tpm::open(&swtpm.tcti()).unwrap().device_key(state.path()).unwrap();
    assert_eq!(after.origin(), KeyOrigin::Loaded);
    assert_eq!(after.public_point(), &point[..]);
    let sig = after.sign(b"still me").unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point).verify(b"still me", &sig).unwrap();
    drop(after);

    // State directory wiped (re-imaged disk, same TPM): the key in the TPM is adopted, not replaced.
    let wiped = tempfile::tempdir().unwrap();
    let adopted = Tpm::open(&swtpm.tcti()).unwrap().device_key(wiped.path()).unwrap();
    assert_eq!(adopted.origin(), KeyOrigin::Adopted);
    assert_eq!(adopted.public_point(), &point[..]);
}

#[test]
fn twenty_open_close_cycles_do_not_exhaust_the_tpm_object_slots() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let blob = Tpm::open(&swtpm.tcti()).unwrap().seal(b"spool key", &[]).unwrap();
    for cycle in 0..20 {
        let tpm = Tpm::open(&swtpm.tcti()).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let key = tpm.device_key(state.path()).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        key.sign(b"hello").unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        key.csr_der("kiosk").unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let secret = tpm.unseal(&blob).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        assert_eq!(&secret[..], b"spool key");
        tpm.seal(b"x", &[16]).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        tpm.nv_increment(0x0100_7E1D).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
    }
    // Nothing left loaded: no transient objects, no sessions.
    for kind in ["handles-transient", "handles-loaded-session", "handles-saved-session"] {
        let out = swtpm.tpm2("tpm2_getcap", &[kind]);
        assert!(out.trim().is_empty(), "{kind} left behind:\n{out}");
    }
}

#[test]
fn a_stopped_tpm_gives_plain_errors_without_panic_or_hang() {
    let mut swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let tcti = swtpm.tcti();
    swtpm.stop();

    let started = Instant::now();
    let err = key.sign(b"hello").unwrap_err();
    println!("sign with swtpm stopped: {err}");
    assert!(err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains("TPM") && err.to_string().contains(&tcti), "{err}");
    let err = tpm.seal(b"x", &[]).unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    let err = Tpm::open(&tcti).unwrap_err();
    println!("open with swtpm stopped: {err}");
    assert!(matches!(err, IdentityError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot reach the TPM"), "{err}");
    let err = Tpm::open("device:/dev/no-such-tpm").unwrap_err();
    println!("open without a TPM device: {err}");
    assert!(err.is_unreachable(), "{err:?}");
    let err = Tpm::open("no-such-tcti:x").unwrap_err();
    assert!(err.to_string().contains("not a TCTI"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn the_same_handle_works_again_once_the_tpm_is_back() {
    let mut swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    swtpm.restart();
    // The first call may meet the broken connection; the one after reconnects.
    let _ = key.sign(b"first");
    key.sign(b"second").expect("reconnected to the restarted TPM");
}

#[test]
fn a_hung_tpm_times_out_with_a_plain_reason() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open_with_timeout(&swtpm.tcti(), Duration::from_millis(1500)).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let pid = swtpm.pid();
    // SAFETY: kill(2) with SIGSTOP/SIGCONT on the swtpm child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = Instant::now();
    let err = key.sign(b"hello").unwrap_err();
    let waited = started.elapsed();
    println!("sign with swtpm hung: {err}");
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(matches!(err, IdentityError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[test]
fn a_key_that_differs_from_the_record_on_disk_is_refused() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    tpm.device_key(state.path()).unwrap();
    // Another kiosk's disk in this kiosk: its record names another public key.
    let path = state.path().join(RECORD_FILE);
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let point = record["public_point"].as_str().unwrap().to_owned();
    let last = if point.ends_with("00") { "01" } else { "00" };
    record["public_point"] = format!("{}{last}", &point[..point.len() - 2]).into();
    std::fs::write(&path, record.to_string()).unwrap();
    let err = tpm.device_key(state.path()).unwrap_err();
    println!("swapped disk: {err}");
    assert!(matches!(err, IdentityError::ForeignKey { .. }), "{err:?}");
    assert!(err.to_string().contains("re-provision"), "{err}");
}

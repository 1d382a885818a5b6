//! Sealed secrets and NV counters against a real swtpm.

mod support;

use support::proxy::Proxy;
use support::swtpm::Swtpm;
use telekiosk::identity::{IdentityError, MAX_SECRET_LEN, SealedBlob, Tpm};

#[test]
fn a_sealed_secret_round_trips_through_disk_bytes_without_pcr_policy() {
    let swtpm = Swtpm::start();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let secret = [0x5au8; 32];
    let blob = tpm.seal(&secret, &[]).unwrap();
    assert!(blob.pcrs().is_empty());
    let bytes = blob.to_bytes();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret), "secret in clear in the blob");
    drop(tpm);

    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let unsealed = tpm.unseal(&SealedBlob::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(&unsealed[..], &secret[..]);

    assert!(tpm.seal(&[], &[]).is_err());
    assert!(tpm.seal(&[1; MAX_SECRET_LEN + 1], &[]).is_err());
    let err = tpm.seal(b"x", &[24]).unwrap_err();
    assert!(matches!(err, IdentityError::Invalid { .. }), "{err:?}");
}

#[test]
fn a_pcr_bound_secret_unseals_until_pcr16_is_extended() {
    let swtpm = Swtpm::start();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let blob = tpm.seal(b"audit spool key", &[16]).unwrap();
    assert_eq!(blob.pcrs(), &[16]);
    assert_eq!(&tpm.unseal(&blob).unwrap()[..], b"audit spool key");
    assert_eq!(&tpm.unseal(&blob).unwrap()[..], b"audit spool key", "unseal twice");
    drop(tpm);

    // Something else got measured into the debug PCR.
    swtpm.tpm2("tpm2_pcrextend", &[&format!("16:sha256={}", "ab".repeat(32))]);

    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let err = tpm.unseal(&blob).unwrap_err();
    assert!(matches!(err, IdentityError::PolicyMismatch { ref pcrs } if pcrs == &[16]), "{err:?}");
    assert!(err.to_string().contains("changed"), "{err}");
    // A secret sealed now binds to the new value.
    let fresh = tpm.seal(b"new", &[16]).unwrap();
    assert_eq!(&tpm.unseal(&fresh).unwrap()[..], b"new");
}

#[test]
fn a_blob_sealed_by_one_tpm_does_not_unseal_on_another() {
    let first = Swtpm::start();
    let second = Swtpm::start();
    let blob = Tpm::open(&first.tcti()).unwrap().seal(b"mine", &[]).unwrap();
    let err = Tpm::open(&second.tcti()).unwrap().unseal(&blob).unwrap_err();
    assert!(matches!(err, IdentityError::Tpm { .. }), "{err:?}");
    assert!(err.to_string().contains("sealed secret"), "{err}");
}

#[test]
fn nv_counter_is_defined_on_first_use_only_goes_up_and_survives_reopen_and_restart() {
    const INDEX: u32 = 0x0100_7E1C;
    let swtpm_state = tempfile::tempdir().unwrap();
    let mut swtpm = Swtpm::start_in(swtpm_state.path());
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let start = tpm.nv_counter(INDEX).unwrap();
    assert_eq!(tpm.nv_counter(INDEX).unwrap(), start, "reading does not move it");
    assert_eq!(tpm.nv_increment(INDEX).unwrap(), start + 1);
    assert_eq!(tpm.nv_increment(INDEX).unwrap(), start + 2);
    drop(tpm);

    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    assert_eq!(tpm.nv_counter(INDEX).unwrap(), start + 2);
    drop(tpm);
    swtpm.restart();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    assert_eq!(tpm.nv_counter(INDEX).unwrap(), start + 2);
    assert_eq!(tpm.nv_increment(INDEX).unwrap(), start + 3);

    let err = tpm.nv_counter(0x8100_0001).unwrap_err();
    assert!(matches!(err, IdentityError::Invalid { .. }), "{err:?}");
}

#[test]
fn an_nv_index_that_is_not_a_counter_is_left_alone() {
    const INDEX: u32 = 0x0100_7E1B;
    let swtpm = Swtpm::start();
    swtpm.tpm2("tpm2_nvdefine", &[&format!("{INDEX:#x}"), "-C", "o", "-s", "8"]);
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let err = tpm.nv_increment(INDEX).unwrap_err();
    assert!(err.to_string().contains("not an owner-readable monotonic counter"), "{err}");
}

#[test]
fn a_secret_never_crosses_the_tpm_bus_in_clear() {
    let swtpm = Swtpm::start();
    let probe = Proxy::start(swtpm.port());
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&probe.tcti()).unwrap();
    let secret = b"0123456789abcdef-spool-key-32-b!";
    for pcrs in [&[][..], &[16][..]] {
        let blob = tpm.seal(secret, pcrs).unwrap();
        assert_eq!(&tpm.unseal(&blob).unwrap()[..], secret);
    }
    // Control: the probe does see traffic in clear (a digest to sign is not secret).
    let key = tpm.device_key(state.path()).unwrap();
    key.sign(b"visible").unwrap();
    drop((key, tpm));
    let seen = probe.captured();
    let digest = ring::digest::digest(&ring::digest::SHA256, b"visible");
    assert!(seen.windows(32).any(|w| w == digest.as_ref()), "the probe saw nothing");
    assert!(!seen.windows(secret.len()).any(|w| w == secret), "the secret crossed in clear");
}

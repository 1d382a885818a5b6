//! The TPM rollback guard of the stored config, against a real swtpm: an old copy of the file
//! (a restored or swapped disk) is refused even though fleetd really signed it, and so is an
//! old copy whose counter was edited to the current value.

mod support;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use support::swtpm::Swtpm;
use telekiosk::config::store::{
    ConfigStore, ROLLBACK_COUNTER_INDEX, StoreError, TpmGuard, VERSION_FLOOR_INDEX,
};
use telekiosk::identity::Tpm;
use telekiosk::signed::PinnedKey;
use telekiosk_protocol::config::{CONFIG_SCHEMA, ConfigBody, ConfigPayload, SignedConfig};

const ME: &str = "kiosk-rollback";

fn document(pair: &Ed25519KeyPair, version: u64) -> SignedConfig {
    let payload = ConfigPayload {
        schema: CONFIG_SCHEMA,
        device_id: ME.into(),
        group: "g".into(),
        version,
        issued_at: 1_760_000_000,
        body: ConfigBody { room_name: format!("Room {version}"), ..ConfigBody::default() },
    };
    let text = serde_json::to_string(&payload).unwrap();
    let signature = base64::engine::general_purpose::STANDARD.encode(pair.sign(text.as_bytes()));
    SignedConfig { payload: text, signature }
}

#[test]
fn an_old_copy_of_the_stored_config_is_refused_after_a_newer_one_was_accepted() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let pinned = PinnedKey::from_raw(pair.public_key().as_ref().try_into().unwrap());
    let store = ConfigStore::new(state.path(), Some(TpmGuard::new(tpm.clone(), key.clone())));

    assert!(store.load(&pinned, ME).unwrap().is_none(), "a new kiosk has nothing stored");
    store.save(&document(&pair, 3)).unwrap();
    assert_eq!(store.load(&pinned, ME).unwrap().unwrap().payload.version, 3);
    let old_copy = std::fs::read(store.path()).unwrap();
    let counter_then = tpm.nv_counter(ROLLBACK_COUNTER_INDEX).unwrap();

    store.save(&document(&pair, 4)).unwrap();
    assert_eq!(tpm.nv_counter(ROLLBACK_COUNTER_INDEX).unwrap(), counter_then + 1);
    let current = std::fs::read(store.path()).unwrap();
    assert_eq!(store.load(&pinned, ME).unwrap().unwrap().payload.version, 4);

    // The disk is rolled back to the old copy: fleetd's signature is fine, the TPM says no.
    std::fs::write(store.path(), &old_copy).unwrap();
    match store.load(&pinned, ME) {
        Err(e @ StoreError::RolledBack { stored, tpm: now }) => {
            assert_eq!((stored, now), (counter_then, counter_then + 1));
            assert!(e.to_string().contains("old copy"), "{e}");
        }
        other => {
            panic!("an old copy was not refused: {:?}", other.map(|a| a.map(|a| a.payload.version)))
        }
    }

    // Editing the old copy's counter to the current value does not help: the device key's
    // signature over it no longer matches.
    let edited = String::from_utf8(old_copy).unwrap().replace(
        &format!("\"counter\": {counter_then}"),
        &format!("\"counter\": {}", counter_then + 1),
    );
    assert!(edited.contains(&format!("\"counter\": {}", counter_then + 1)), "{edited}");
    std::fs::write(store.path(), edited).unwrap();
    assert!(matches!(store.load(&pinned, ME), Err(StoreError::NotBound { .. })));

    // A file written without the guard (e.g. by a development build) is refused on a TPM kiosk.
    ConfigStore::new(state.path(), None).save(&document(&pair, 5)).unwrap();
    assert!(matches!(store.load(&pinned, ME), Err(StoreError::NotBound { .. })));

    // The file is deleted (a wiped state partition): the counter says a config was accepted.
    std::fs::remove_file(store.path()).unwrap();
    match store.load(&pinned, ME) {
        Err(e @ StoreError::Missing { tpm: now }) => {
            assert!(now > counter_then);
            assert!(e.to_string().contains("wiped"), "{e}");
        }
        other => panic!("a deleted config was not reported: {:?}", other.map(|a| a.is_some())),
    }

    // The current file still loads, also after the TPM connection is reopened.
    std::fs::write(store.path(), &current).unwrap();
    drop(store);
    drop(key);
    drop(tpm);
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let store = ConfigStore::new(state.path(), Some(TpmGuard::new(tpm, key)));
    assert_eq!(store.load(&pinned, ME).unwrap().unwrap().payload.version, 4);
}

/// Review L6: the highest version accepted is kept in the TPM, so after the file is wiped an
/// older config fleetd really signed is refused, while the current one is taken again.
#[test]
fn after_the_file_is_wiped_an_older_config_is_refused_and_the_current_one_taken() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let key = tpm.device_key(state.path()).unwrap();
    let pair = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
    let pinned = PinnedKey::from_raw(pair.public_key().as_ref().try_into().unwrap());
    let store = ConfigStore::new(state.path(), Some(TpmGuard::new(tpm.clone(), key.clone())));
    assert!(store.load(&pinned, ME).unwrap().is_none());
    assert_eq!(store.version_floor(), 0, "a new kiosk takes any version");

    store.save(&document(&pair, 3)).unwrap();
    store.save(&document(&pair, 6)).unwrap();
    assert_eq!(tpm.nv_number(VERSION_FLOOR_INDEX).unwrap(), Some(6));
    assert_eq!(store.version_floor(), 6);

    // The state partition is wiped and the kiosk restarts: the floor comes from the TPM.
    std::fs::remove_file(store.path()).unwrap();
    drop(store);
    let store = ConfigStore::new(state.path(), Some(TpmGuard::new(tpm.clone(), key.clone())));
    assert!(matches!(store.load(&pinned, ME), Err(StoreError::Missing { .. })));
    assert_eq!(store.version_floor(), 6);
    let old = serde_json::to_vec(&document(&pair, 3)).unwrap();
    let received = telekiosk::config::receive(&old, &pinned, ME, None, store.version_floor());
    assert!(
        matches!(received, telekiosk::config::Received::Refused { version: 3, .. }),
        "an older signed config was taken after the wipe: {received:?}"
    );
    // Storing one anyway is refused too, and the floor never goes down.
    match store.save(&document(&pair, 3)) {
        Err(e @ StoreError::BelowFloor { version: 3, floor: 6 }) => {
            assert!(e.to_string().contains("never taken again"), "{e}")
        }
        other => panic!("an older config was stored: {other:?}"),
    }
    assert_eq!(tpm.nv_number(VERSION_FLOOR_INDEX).unwrap(), Some(6));
    // fleetd's current config (the floor's version) is taken again and loads at the next start.
    let current = serde_json::to_vec(&document(&pair, 6)).unwrap();
    let received = telekiosk::config::receive(&current, &pinned, ME, None, store.version_floor());
    assert!(matches!(received, telekiosk::config::Received::Accepted(_)), "{received:?}");
    store.save(&document(&pair, 6)).unwrap();
    assert_eq!(store.load(&pinned, ME).unwrap().unwrap().payload.version, 6);
}

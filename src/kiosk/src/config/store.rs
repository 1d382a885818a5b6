//! The last good config on disk (`state_dir/config.json`): the signed document exactly as
//! received, written atomically, verified again at every start, and guarded against rollback
//! by a TPM counter where there is a TPM.
//!
//! Owns: the file's format, and the rollback guard. Must never: let a file that fails
//! verification, or an old copy of it, become the config in force (the kiosk then runs on the
//! built-in defaults until fleetd's retained config arrives); write anything but whole files.
//!
//! # Rollback guard
//! Signatures alone cannot tell an old config from the current one: a disk restored from a
//! backup, or swapped with another kiosk's older disk, carries configs fleetd really signed. So
//! after accepting a config the kiosk increments the monotonic TPM NV counter at
//! [`ROLLBACK_COUNTER_INDEX`] and stores the new value beside the document, together with the
//! device key's signature (made in the TPM) over both. At start the TPM's counter must equal
//! the stored value: above it, the file is an old copy; the signature stops anyone from simply
//! writing the current value into an old copy. A crash between the increment and the write
//! leaves the counter one ahead: the stored config is then refused too, which is safe (defaults
//! until fleetd's retained config arrives).
//!
//! The counter says a config was accepted, not which: after the file is wiped, an older config
//! fleetd really signed (re-published by anyone who kept a copy) would verify. So the highest
//! version accepted is also kept in the TPM, at [`VERSION_FLOOR_INDEX`] (raised before the
//! counter moves, never lowered): [`ConfigStore::version_floor`] is the lowest version the kiosk
//! takes from then on, with or without a file (review L6).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde::{Deserialize, Serialize};
use telekiosk_protocol::config::SignedConfig;

use super::verify::{ConfigError, verify_signed};
use super::{Accepted, accept};
use crate::identity::{DeviceKey, IdentityError, Tpm};
use crate::signed::PinnedKey;

/// The file in the state directory.
pub const FILE: &str = "config.json";

/// The TPM NV counter of the rollback guard: owner range, in the 0x01007Exx block telekiosk
/// uses (0x01007E1B–0x01007E1D are taken by the identity tests).
pub const ROLLBACK_COUNTER_INDEX: u32 = 0x0100_7E01;

/// The highest config version this kiosk accepted (an 8-byte ordinary NV index, next to the
/// counter).
pub const VERSION_FLOOR_INDEX: u32 = 0x0100_7E02;

/// Version of the file's layout.
const FORMAT: u32 = 1;

/// What the device key signs: this domain, the payload's SHA-256 and the counter value.
const BINDING_DOMAIN: &[u8] = b"telekiosk config rollback guard v1\0";

/// Why the stored config could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write the config to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("cannot read the stored config {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("the stored config {path} is damaged ({reason}); using the built-in defaults")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the stored config is refused: {0}")]
    Refused(#[from] ConfigError),
    #[error(
        "the stored config is an old copy (the TPM's counter is at {tpm}, the file says \
         {stored}): the disk was restored or swapped; using the built-in defaults until fleetd \
         sends the current config"
    )]
    RolledBack { stored: u64, tpm: u64 },
    #[error(
        "the stored config is missing, though this kiosk accepted one before (the TPM's counter \
         is at {tpm}): its state was wiped or restored; using the built-in defaults until fleetd \
         sends the current config"
    )]
    Missing { tpm: u64 },
    #[error(
        "the stored config does not match the TPM's counter ({reason}); using the built-in \
         defaults until fleetd sends the current config"
    )]
    NotBound { reason: String },
    #[error(
        "the config's version {version} is below version {floor}, the highest this kiosk \
         accepted (kept in its TPM): an older config is never taken again"
    )]
    BelowFloor { version: u64, floor: u64 },
    #[error("the TPM could not guard the config against rollback: {0}")]
    Tpm(#[from] IdentityError),
}

/// The TPM half of the rollback guard: the counter and the device key (held in the same TPM).
#[derive(Clone)]
pub struct TpmGuard {
    tpm: Tpm,
    key: DeviceKey,
    index: u32,
}

impl TpmGuard {
    /// A guard with the counter at [`ROLLBACK_COUNTER_INDEX`].
    pub fn new(tpm: Tpm, key: DeviceKey) -> TpmGuard {
        TpmGuard { tpm, key, index: ROLLBACK_COUNTER_INDEX }
    }
}

/// Where the last good config is kept.
#[derive(Clone)]
pub struct ConfigStore {
    path: PathBuf,
    guard: Option<TpmGuard>,
    /// The TPM's version floor as last read or raised (0 without a TPM or before [`Self::load`]).
    floor: Arc<AtomicU64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredFile {
    format: u32,
    config: SignedConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollback: Option<Rollback>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    /// The TPM counter's value right after this config was accepted.
    counter: u64,
    /// Base64 DER ECDSA signature by the device key over [`binding`].
    device_signature: String,
}

impl ConfigStore {
    /// The store in `state_dir`; `guard` is `None` only without a TPM (development key).
    pub fn new(state_dir: &Path, guard: Option<TpmGuard>) -> ConfigStore {
        ConfigStore { path: state_dir.join(FILE), guard, floor: Arc::default() }
    }

    /// The lowest config version this kiosk may take (the highest it ever accepted, from the
    /// TPM; 0 without a TPM), as read by [`Self::load`] at start and raised by [`Self::save`].
    pub fn version_floor(&self) -> u64 {
        self.floor.load(Ordering::Acquire)
    }

    /// Reads the TPM's version floor into [`Self::version_floor`].
    fn read_floor(&self, g: &TpmGuard) -> Result<u64, StoreError> {
        let floor = g.tpm.nv_number(VERSION_FLOOR_INDEX)?.unwrap_or(0);
        self.floor.fetch_max(floor, Ordering::AcqRel);
        Ok(floor)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps an accepted document: moves the TPM counter on, binds the document to it, and
    /// replaces the file atomically. Blocks on the TPM and on fsync: call it off the async
    /// threads.
    pub fn save(&self, signed: &SignedConfig) -> Result<(), StoreError> {
        let rollback = match &self.guard {
            Some(g) => {
                let version = claimed_version(signed);
                let floor = self.read_floor(g)?;
                if version < floor {
                    return Err(StoreError::BelowFloor { version, floor });
                }
                let raised = g.tpm.nv_raise(VERSION_FLOOR_INDEX, version)?;
                self.floor.fetch_max(raised, Ordering::AcqRel);
                let counter = g.tpm.nv_increment(g.index)?;
                let signature = g.key.sign(&binding(signed, counter))?;
                let device_signature = base64::engine::general_purpose::STANDARD.encode(signature);
                Some(Rollback { counter, device_signature })
            }
            None => None,
        };
        let file = StoredFile { format: FORMAT, config: signed.clone(), rollback };
        let bytes = serde_json::to_vec_pretty(&file).expect("the stored config serialises");
        crate::durable::write_atomically(&self.path, &bytes)
            .map_err(|e| StoreError::Write { path: self.path.clone(), reason: e.to_string() })
    }

    /// The stored config, verified again (fleetd's signature, this device, version ≥ 1, ranges)
    /// and checked against the TPM's counter. `Ok(None)`: no config stored yet.
    pub fn load(
        &self,
        pinned: &PinnedKey,
        device_id: &str,
    ) -> Result<Option<Accepted>, StoreError> {
        let floor = match &self.guard {
            Some(g) => self.read_floor(g)?,
            None => 0,
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.nothing_stored(),
            Err(e) => {
                return Err(StoreError::Read { path: self.path.clone(), reason: e.to_string() });
            }
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: self.path.clone(), reason };
        let file: StoredFile =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT {
            return Err(corrupt(format!("unknown format {}", file.format)));
        }
        let payload = verify_signed(&file.config, pinned, device_id, 0)?;
        if let Some(g) = &self.guard {
            check_guard(g, &file)?;
        }
        if payload.version < floor {
            return Err(StoreError::BelowFloor { version: payload.version, floor });
        }
        Ok(Some(accept(file.config, payload)?))
    }
}

impl ConfigStore {
    /// No file: fine on a kiosk that never accepted a config, but the counter is defined by the
    /// first save only, so where it exists a config was accepted and its file removed: a
    /// rollback like an old copy (a wiped disk would otherwise go unnoticed).
    fn nothing_stored(&self) -> Result<Option<Accepted>, StoreError> {
        let Some(g) = &self.guard else { return Ok(None) };
        match g.tpm.nv_counter_if_defined(g.index)? {
            None => Ok(None),
            Some(tpm) => Err(StoreError::Missing { tpm }),
        }
    }
}

fn check_guard(g: &TpmGuard, file: &StoredFile) -> Result<(), StoreError> {
    let not_bound = |reason: &str| StoreError::NotBound { reason: reason.into() };
    let rollback = file.rollback.as_ref().ok_or_else(|| not_bound("the file has no counter"))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&rollback.device_signature)
        .map_err(|_| not_bound("its signature is not base64"))?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        g.key.public_point(),
    );
    if key.verify(&binding(&file.config, rollback.counter), &signature).is_err() {
        return Err(not_bound("its counter is not signed by this kiosk's key"));
    }
    let tpm = g.tpm.nv_counter(g.index)?;
    if tpm > rollback.counter {
        return Err(StoreError::RolledBack { stored: rollback.counter, tpm });
    }
    if tpm < rollback.counter {
        return Err(not_bound("the file's counter is ahead of the TPM's: another TPM's file"));
    }
    Ok(())
}

/// The version a document accepted by `config::receive` carries (0 if unreadable, which the
/// floor then refuses once any config was accepted).
fn claimed_version(signed: &SignedConfig) -> u64 {
    #[derive(Deserialize)]
    struct Version {
        version: u64,
    }
    serde_json::from_str::<Version>(&signed.payload).map_or(0, |v| v.version)
}

/// The message the device key signs for the rollback guard.
fn binding(signed: &SignedConfig, counter: u64) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, signed.payload.as_bytes());
    [BINDING_DOMAIN, digest.as_ref(), &counter.to_be_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{document, payload};
    use crate::signed::test_keys::fleet_key;

    const ME: &str = "kiosk-7f3a";

    #[test]
    fn a_stored_config_loads_again_and_a_damaged_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (fleet, pinned) = fleet_key();
        let store = ConfigStore::new(dir.path(), None);
        assert!(store.load(&pinned, ME).unwrap().is_none(), "nothing stored yet");

        let doc = document(&fleet, &serde_json::to_string(&payload(4)).unwrap());
        let signed = super::super::verify::decode_signed(&doc).unwrap();
        store.save(&signed).unwrap();
        let loaded = store.load(&pinned, ME).unwrap().unwrap();
        assert_eq!((loaded.payload.version, loaded.signed), (4, signed.clone()));

        // Another fleet's key, another device: verified again, refused.
        let (_, other) = fleet_key();
        assert!(matches!(
            store.load(&other, ME),
            Err(StoreError::Refused(ConfigError::BadSignature))
        ));
        assert!(matches!(
            store.load(&pinned, "kiosk-other"),
            Err(StoreError::Refused(ConfigError::WrongDevice { .. }))
        ));
        // Edited on disk: the signature no longer matches.
        let text = std::fs::read_to_string(store.path()).unwrap();
        std::fs::write(store.path(), text.replace("Room v4", "Room v5")).unwrap();
        assert!(matches!(
            store.load(&pinned, ME),
            Err(StoreError::Refused(ConfigError::BadSignature))
        ));
        // Torn or garbage: reported as damaged, never a panic.
        std::fs::write(store.path(), &text[..text.len() / 2]).unwrap();
        let err = store.load(&pinned, ME).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("built-in defaults"), "{err}");
    }
}

//! What the kiosk asks of its TPM: the device key, sealing, NV counters. Each method sends one job
//! to the TPM thread ([`super::worker`]) and waits for it with a deadline.
//!
//! Owns: the order of disk and TPM steps for the device key. Must never: touch the disk from the
//! TPM thread, or pass a secret anywhere but into `Zeroizing` storage and the TPM.

use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::error::IdentityError;
use super::key::{DeviceKey, TpmKey};
use super::seal::{self, SealedBlob};
use super::tpm_key::{self, DEVICE_KEY_HANDLE, KeyAttributes, KeyOrigin};
use super::worker::Tpm;
use super::{nv, nv_word};

impl Tpm {
    /// Loads this kiosk's key from [`DEVICE_KEY_HANDLE`], creating it on first start. `state_dir`
    /// keeps its public part (and handle) in [`tpm_key::RECORD_FILE`]; nothing there can sign.
    pub fn device_key(&self, state_dir: &Path) -> Result<DeviceKey, IdentityError> {
        self.device_key_at(state_dir, DEVICE_KEY_HANDLE)
    }

    /// [`Tpm::device_key`] at another persistent handle (0x81xxxxxx, owner range).
    pub fn device_key_at(&self, state_dir: &Path, handle: u32) -> Result<DeviceKey, IdentityError> {
        let recorded = tpm_key::read_record(state_dir, handle)?;
        let expected = recorded.clone();
        let (point, origin) = self.call("load the device key", move |w| {
            tpm_key::provision(w, handle, expected.as_deref())
        })?;
        if origin != KeyOrigin::Loaded {
            tpm_key::write_record(state_dir, handle, &point)?;
            tracing::info!(
                handle = format_args!("{handle:#010x}"),
                ?origin,
                "device key ready in the TPM"
            );
        }
        let key = TpmKey { tpm: self.clone(), handle, point };
        Ok(DeviceKey::new(Arc::new(key), origin))
    }

    /// The attributes of the key at persistent `handle`, as the TPM reports them.
    pub fn key_attributes(&self, handle: u32) -> Result<KeyAttributes, IdentityError> {
        self.call("read the device key", move |w| tpm_key::attributes(w, handle))
    }

    /// Seals `secret` (1..=128 bytes) to this TPM. `pcrs`: SHA-256 PCR indices whose current
    /// values the secret is bound to (empty: no PCR policy, any boot state can unseal).
    pub fn seal(&self, secret: &[u8], pcrs: &[u8]) -> Result<SealedBlob, IdentityError> {
        let secret = Zeroizing::new(secret.to_vec());
        let pcrs = pcrs.to_vec();
        self.call("seal a secret", move |w| seal::seal(w, &secret, &pcrs))
    }

    /// Unseals a blob made by [`Tpm::seal`] on this TPM. Fails with
    /// [`IdentityError::PolicyMismatch`] when its PCRs changed since.
    pub fn unseal(&self, blob: &SealedBlob) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
        let blob = blob.clone();
        self.call("unseal a secret", move |w| seal::unseal(w, &blob))
    }

    /// The monotonic counter at NV `index` (0x01xxxxxx), defined and initialised if missing.
    pub fn nv_counter(&self, index: u32) -> Result<u64, IdentityError> {
        self.call("read the NV counter", move |w| nv::read(w, index))
    }

    /// The counter at NV `index`, or `None` if no counter was ever defined there.
    pub fn nv_counter_if_defined(&self, index: u32) -> Result<Option<u64>, IdentityError> {
        self.call("read the NV counter", move |w| nv::read_if_defined(w, index))
    }

    /// Increments the counter at NV `index` (defining it if missing); returns the new value.
    pub fn nv_increment(&self, index: u32) -> Result<u64, IdentityError> {
        self.call("increment the NV counter", move |w| nv::increment(w, index))
    }

    /// The number at NV `index` (an 8-byte ordinary index), `None` if never written.
    pub fn nv_number(&self, index: u32) -> Result<Option<u64>, IdentityError> {
        self.call("read the NV number", move |w| nv_word::read_if_written(w, index))
    }

    /// Raises the number at NV `index` to `value` (never lowers it; defines the index if
    /// missing); returns the number now stored.
    pub fn nv_raise(&self, index: u32, value: u64) -> Result<u64, IdentityError> {
        self.call("write the NV number", move |w| nv_word::raise(w, index, value))
    }
}

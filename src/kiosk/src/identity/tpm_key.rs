//! The device key inside the TPM: created once under the owner storage primary, made persistent
//! at a fixed handle, and checked at every start against the public key recorded on disk.
//!
//! Owns: provisioning (create / load / adopt), the on-disk record (public key + handle only) and
//! TPM signing of a digest. Must never: write anything that can sign to disk, leave a transient
//! object loaded, or silently replace a key whose record says it should be another one.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashcheckTicket, Signature, SignatureScheme};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use super::error::{IdentityError, tss};
use super::templates;
use super::worker::Worker;

/// Where the device key lives: the first handle of the TCG owner persistent range for
/// applications (0x8100_0000..=0x8100_FFFF), chosen away from 0x8100_0001 (the conventional SRK)
/// so that tools provisioning an SRK never collide with it.
pub const DEVICE_KEY_HANDLE: u32 = 0x8100_7E1D;

/// File name of the record in the state directory.
pub const RECORD_FILE: &str = "tpm-device-key.json";

const RECORD_FORMAT: &str = "telekiosk-tpm-device-key/1";

/// How this process got its device key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Generated in the TPM during this call (first start, or the TPM was cleared): enrol again.
    Created,
    /// Found at its persistent handle, matching the record on disk.
    Loaded,
    /// Found at its persistent handle with no record on disk (state directory wiped); it has our
    /// template, so it was generated in this TPM. The record was rewritten.
    Adopted,
    /// A development-only software key ([`super::SoftwareKey`]): not hardware-protected.
    DevelopmentSoftware,
}

/// Attributes of the key at a persistent handle, as the TPM itself reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAttributes {
    /// The private part can never leave this TPM.
    pub fixed_tpm: bool,
    /// It cannot be re-parented (duplicated).
    pub fixed_parent: bool,
    /// The TPM generated the private part (it was not imported).
    pub sensitive_data_origin: bool,
    /// It signs.
    pub sign: bool,
    /// It decrypts (must be false for the device key).
    pub decrypt: bool,
    /// It signs only TPM-made digests (false: it can sign TLS transcripts and CSRs).
    pub restricted: bool,
}

impl KeyAttributes {
    /// True for a key that was born in this TPM, cannot leave it, and only signs.
    pub fn is_non_exportable_signing_key(&self) -> bool {
        self.fixed_tpm
            && self.fixed_parent
            && self.sensitive_data_origin
            && self.sign
            && !self.decrypt
    }
}

/// What is kept on disk: only public data. Comparing it with what the TPM holds at the handle
/// detects a swapped disk or TPM before the kiosk presents someone else's identity.
#[derive(Serialize, Deserialize)]
struct Record {
    format: String,
    handle: u32,
    /// Uncompressed SEC1 point of the public key, hex.
    public_point: String,
}

pub(crate) fn record_path(state_dir: &Path) -> PathBuf {
    state_dir.join(RECORD_FILE)
}

/// Reads the record's public point, `None` if there is no record yet.
pub(crate) fn read_record(state_dir: &Path, handle: u32) -> Result<Option<Vec<u8>>, IdentityError> {
    let path = record_path(state_dir);
    let state = |reason: String| IdentityError::State { path: path.clone(), reason };
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state(format!("cannot read it: {e}"))),
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        state(format!("is damaged ({e}); delete it to re-read the key from the TPM"))
    })?;
    if record.format != RECORD_FORMAT {
        return Err(state(format!("has unknown format {:?}", record.format)));
    }
    if record.handle != handle {
        return Err(state(format!(
            "names handle {:#010x}, expected {handle:#010x}",
            record.handle
        )));
    }
    let point = hex_decode(&record.public_point)
        .ok_or_else(|| state("holds a public key that is not hex".into()))?;
    Ok(Some(point))
}

/// Writes the record atomically (temp file, fsync, rename, fsync directory).
pub(crate) fn write_record(
    state_dir: &Path,
    handle: u32,
    point: &[u8],
) -> Result<(), IdentityError> {
    let path = record_path(state_dir);
    let state = |e: std::io::Error| IdentityError::State {
        path: path.clone(),
        reason: format!("cannot write it: {e}"),
    };
    let record = Record { format: RECORD_FORMAT.into(), handle, public_point: hex_encode(point) };
    let text = serde_json::to_string_pretty(&record).expect("record serialises");
    crate::durable::write_atomically(&path, text.as_bytes()).map_err(state)
}

/// Runs on the TPM thread: returns the device key's public point at `handle`, creating the key
/// if the handle is empty. `recorded` is the point from disk, if any.
pub(crate) fn provision(
    w: &mut Worker,
    handle: u32,
    recorded: Option<&[u8]>,
) -> Result<(Vec<u8>, KeyOrigin), IdentityError> {
    let tpm_handle = persistent(handle)?;
    if !w.handle_exists(handle)? {
        if recorded.is_some() {
            tracing::warn!(
                handle = format_args!("{handle:#010x}"),
                "device key missing from the TPM (cleared?); creating a new one: the kiosk must enrol again"
            );
        }
        return create(w, tpm_handle).map(|p| (p, KeyOrigin::Created));
    }
    let obj = w.esys_object("read the device key", TpmHandle::Persistent(tpm_handle))?;
    let (public, _, _) = w
        .ctx()?
        .execute_without_session(|c| c.read_public(KeyHandle::from(obj)))
        .map_err(tss("read the device key"))?;
    let point = templates::device_key_point(&public)
        .map_err(|detail| IdentityError::ForeignKey { handle, detail })?;
    match recorded {
        Some(r) if r == point.as_slice() => Ok((point, KeyOrigin::Loaded)),
        Some(_) => Err(IdentityError::ForeignKey {
            handle,
            detail: "its public key differs from the one recorded on disk".into(),
        }),
        None => Ok((point, KeyOrigin::Adopted)),
    }
}

/// Runs on the TPM thread: the attributes of the object at persistent `handle`.
pub(crate) fn attributes(w: &mut Worker, handle: u32) -> Result<KeyAttributes, IdentityError> {
    let obj = w.esys_object("read the device key", TpmHandle::Persistent(persistent(handle)?))?;
    let (public, _, _) = w
        .ctx()?
        .execute_without_session(|c| c.read_public(KeyHandle::from(obj)))
        .map_err(tss("read the device key"))?;
    let a = public.object_attributes();
    Ok(KeyAttributes {
        fixed_tpm: a.fixed_tpm(),
        fixed_parent: a.fixed_parent(),
        sensitive_data_origin: a.sensitive_data_origin(),
        sign: a.sign_encrypt(),
        decrypt: a.decrypt(),
        restricted: a.restricted(),
    })
}

/// Creates the key under a transient storage primary, persists it, and flushes both transient
/// objects whatever happens.
fn create(w: &mut Worker, handle: PersistentTpmHandle) -> Result<Vec<u8>, IdentityError> {
    let template = templates::device_key()?;
    let ctx = w.ctx()?;
    let primary = create_primary(ctx)?;
    let result = (|| {
        let created = ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create(primary, template, None, None, None, None)
            })
            .map_err(tss("create the device key"))?;
        let point = templates::device_key_point(&created.out_public)
            .map_err(|detail| IdentityError::ForeignKey { handle: handle.into(), detail })?;
        let loaded = ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.load(primary, created.out_private, created.out_public)
            })
            .map_err(tss("load the new device key"))?;
        let persisted = ctx.execute_with_session(Some(AuthSession::Password), |c| {
            c.evict_control(Provision::Owner, loaded.into(), Persistent::Persistent(handle))
        });
        flush(ctx, loaded.into());
        persisted.map_err(tss("store the device key in the TPM"))?;
        Ok(point)
    })();
    flush(ctx, primary.into());
    result
}

/// Creates the owner storage primary (transient). The caller must [`flush`] it.
pub(crate) fn create_primary(ctx: &mut tss_esapi::Context) -> Result<KeyHandle, IdentityError> {
    let template = templates::storage_primary()?;
    ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })
    .map(|r| r.key_handle)
    .map_err(tss("create the storage primary key"))
}

/// Flushes a transient object or session; a failure is logged, not fatal (the TPM may be gone).
pub(crate) fn flush(ctx: &mut tss_esapi::Context, handle: ObjectHandle) {
    if let Err(e) = ctx.flush_context(handle) {
        tracing::warn!("could not flush a transient TPM object: {e}");
    }
}

/// Runs on the TPM thread: signs a SHA-256 digest with the persistent key, returns (r, s).
pub(crate) fn sign_digest(
    w: &mut Worker,
    handle: u32,
    digest: [u8; 32],
) -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
    let obj =
        w.esys_object("sign with the device key", TpmHandle::Persistent(persistent(handle)?))?;
    // No hash ticket needed: the key is unrestricted, so the TPM signs any digest.
    let validation = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(tss("sign with the device key"))?;
    let digest = Digest::try_from(digest.to_vec()).map_err(tss("sign with the device key"))?;
    let signature = w
        .ctx()?
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.sign(KeyHandle::from(obj), digest, SignatureScheme::Null, validation)
        })
        .map_err(tss("sign with the device key"))?;
    match signature {
        Signature::EcDsa(sig) => {
            Ok((sig.signature_r().value().to_vec(), sig.signature_s().value().to_vec()))
        }
        other => Err(IdentityError::Tpm {
            action: "sign with the device key",
            reason: format!("unexpected signature type {:?}", other.algorithm()),
            code: None,
        }),
    }
}

fn persistent(handle: u32) -> Result<PersistentTpmHandle, IdentityError> {
    PersistentTpmHandle::new(handle).map_err(|_| {
        IdentityError::invalid("persistent handle", format!("{handle:#010x} is not in 0x81xxxxxx"))
    })
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_rejects_another_handle() {
        let dir = tempfile::tempdir().unwrap();
        let point: Vec<u8> = (0..65).collect();
        assert_eq!(read_record(dir.path(), DEVICE_KEY_HANDLE).unwrap(), None);
        write_record(dir.path(), DEVICE_KEY_HANDLE, &point).unwrap();
        assert_eq!(read_record(dir.path(), DEVICE_KEY_HANDLE).unwrap(), Some(point));
        let err = read_record(dir.path(), 0x8100_0002).unwrap_err();
        assert!(err.to_string().contains("expected 0x81000002"), "{err}");
    }

    #[test]
    fn damaged_record_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(record_path(dir.path()), "{not json").unwrap();
        let err = read_record(dir.path(), DEVICE_KEY_HANDLE).unwrap_err();
        assert!(err.to_string().contains("delete it"), "{err}");
    }
}

//! Monotonic NV counters in the TPM (TPM_NT_COUNTER), for refusing a rollback after a disk swap.
//!
//! Owns: defining a counter on first use, reading it, incrementing it. Must never: undefine or
//! redefine an index that exists with other attributes (it may belong to someone else).
//!
//! A counter can only go up by one per increment. When first defined, the TPM starts it at the
//! highest value any counter in this TPM ever held (not at 0), so deleting and recreating a
//! counter cannot move it backwards: compare values, never assume a starting point.

use tss_esapi::attributes::NvIndexAttributesBuilder;
use tss_esapi::constants::NvIndexType;
use tss_esapi::handles::{NvIndexHandle, NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::{NvAuth, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::NvPublicBuilder;

use super::error::{IdentityError, tss};
use super::worker::Worker;

/// The owner-writable NV index range (TPM_HT_NV_INDEX).
const NV_INDEX_TYPE: u32 = 0x01;

/// Runs on the TPM thread: the counter's value, defining and initialising it if missing.
pub(crate) fn read(w: &mut Worker, index: u32) -> Result<u64, IdentityError> {
    let handle = ensure(w, index)?;
    read_value(w, handle)
}

/// Runs on the TPM thread: increments the counter (defining it if missing), returns the new value.
pub(crate) fn increment(w: &mut Worker, index: u32) -> Result<u64, IdentityError> {
    let handle = ensure(w, index)?;
    w.ctx()?
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.nv_increment(NvAuth::Owner, handle)
        })
        .map_err(tss("increment the NV counter"))?;
    read_value(w, handle)
}

fn read_value(w: &mut Worker, handle: NvIndexHandle) -> Result<u64, IdentityError> {
    let data = w
        .ctx()?
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.nv_read(NvAuth::Owner, handle, 8, 0)
        })
        .map_err(tss("read the NV counter"))?;
    let bytes: [u8; 8] = data.value().try_into().map_err(|_| IdentityError::Tpm {
        action: "read the NV counter",
        reason: format!("the TPM returned {} bytes, not 8", data.value().len()),
        code: None,
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Runs on the TPM thread: the counter's value if the index exists, `None` if it was never
/// defined (and it is not defined by asking).
pub(crate) fn read_if_defined(w: &mut Worker, index: u32) -> Result<Option<u64>, IdentityError> {
    if !w.handle_exists(index)? {
        return Ok(None);
    }
    read(w, index).map(Some)
}

/// ESYS handle of a counter index that exists and has been written at least once.
fn ensure(w: &mut Worker, index: u32) -> Result<NvIndexHandle, IdentityError> {
    let tpm_handle = nv_handle(index)?;
    if !w.handle_exists(index)? {
        define(w, tpm_handle, NvIndexType::Counter, "define the NV counter")?;
    }
    let handle: NvIndexHandle =
        w.esys_object("open the NV counter", TpmHandle::NvIndex(tpm_handle))?.into();
    let (public, _) = w
        .ctx()?
        .execute_without_session(|c| c.nv_read_public(handle))
        .map_err(tss("read the NV counter's definition"))?;
    let attributes = public.attributes();
    let is_counter = matches!(attributes.index_type(), Ok(NvIndexType::Counter));
    if !is_counter || !attributes.owner_read() || !attributes.owner_write() {
        return Err(IdentityError::invalid(
            "NV index",
            format!("{index:#010x} exists but is not an owner-readable monotonic counter"),
        ));
    }
    if !attributes.written() {
        // A counter cannot be read before its first increment, which sets it to the TPM's
        // highest counter value so far.
        w.ctx()?
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.nv_increment(NvAuth::Owner, handle)
            })
            .map_err(tss("initialise the NV counter"))?;
        // The ESYS object caches the public area (with `written` clear): refresh it.
        w.forget(index);
        return Ok(w.esys_object("open the NV counter", TpmHandle::NvIndex(tpm_handle))?.into());
    }
    Ok(handle)
}

/// Defines an owner-readable, owner-writable 8-byte NV index of `kind` (a counter here, an
/// ordinary word in [`super::nv_word`]); `what` names it in errors.
pub(super) fn define(
    w: &mut Worker,
    tpm_handle: NvIndexTpmHandle,
    kind: NvIndexType,
    what: &'static str,
) -> Result<(), IdentityError> {
    let attributes = NvIndexAttributesBuilder::new()
        .with_nv_index_type(kind)
        .with_owner_write(true)
        .with_owner_read(true)
        .build()
        .map_err(tss(what))?;
    let public = NvPublicBuilder::new()
        .with_nv_index(tpm_handle)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(attributes)
        .with_data_area_size(8)
        .build()
        .map_err(tss(what))?;
    let defined = w
        .ctx()?
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.nv_define_space(Provision::Owner, None, public)
        })
        .map_err(tss(what))?;
    // Release this ESYS object; `ensure` opens the index through the worker's cache.
    let mut obj = defined.into();
    let _ = w.ctx()?.tr_close(&mut obj);
    Ok(())
}

/// The TPM handle of NV index `index`, refused unless it is one (0x01xxxxxx).
pub(super) fn nv_handle(index: u32) -> Result<NvIndexTpmHandle, IdentityError> {
    if index >> 24 != NV_INDEX_TYPE {
        return Err(IdentityError::invalid(
            "NV index",
            format!("{index:#010x} is not an NV index (0x01xxxxxx)"),
        ));
    }
    NvIndexTpmHandle::new(index)
        .map_err(|e| IdentityError::invalid("NV index", format!("{index:#010x}: {e}")))
}

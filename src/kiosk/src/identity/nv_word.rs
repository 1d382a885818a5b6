//! One number kept in the TPM: an 8-byte ordinary NV index that only ever goes up, for the
//! highest config version this kiosk accepted (review L6). It survives a wiped or swapped disk
//! like the rollback counter ([`super::nv`]) does.
//!
//! Owns: defining the index on first write, reading it, raising it. Must never: lower the value
//! (a write below the stored one is skipped), or undefine or redefine an index that exists with
//! other attributes (it may belong to someone else).

use tss_esapi::constants::NvIndexType;
use tss_esapi::handles::{NvIndexHandle, TpmHandle};
use tss_esapi::interface_types::resource_handles::NvAuth;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::MaxNvBuffer;

use super::error::{IdentityError, tss};
use super::nv::{define, nv_handle};
use super::worker::Worker;

/// Runs on the TPM thread: the stored number, or `None` if the index was never defined or
/// never written.
pub(crate) fn read_if_written(w: &mut Worker, index: u32) -> Result<Option<u64>, IdentityError> {
    let Some((handle, written)) = open(w, index)? else { return Ok(None) };
    if !written {
        return Ok(None);
    }
    let data = w
        .ctx()?
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.nv_read(NvAuth::Owner, handle, 8, 0)
        })
        .map_err(tss("read the NV number"))?;
    let bytes: [u8; 8] = data.value().try_into().map_err(|_| IdentityError::Tpm {
        action: "read the NV number",
        reason: format!("the TPM returned {} bytes, not 8", data.value().len()),
        code: None,
    })?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Runs on the TPM thread: raises the number to `value` (defining the index if missing); a
/// `value` not above the stored one changes nothing. Returns the number now stored.
pub(crate) fn raise(w: &mut Worker, index: u32, value: u64) -> Result<u64, IdentityError> {
    if let Some(stored) = read_if_written(w, index)?
        && stored >= value
    {
        return Ok(stored);
    }
    if !w.handle_exists(index)? {
        define(w, nv_handle(index)?, NvIndexType::Ordinary, "define the NV number")?;
    }
    let Some((handle, _)) = open(w, index)? else {
        return Err(IdentityError::invalid("NV index", format!("{index:#010x} vanished")));
    };
    let data =
        MaxNvBuffer::try_from(value.to_be_bytes().to_vec()).map_err(tss("write the NV number"))?;
    w.ctx()?
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.nv_write(NvAuth::Owner, handle, data, 0)
        })
        .map_err(tss("write the NV number"))?;
    // The ESYS object caches the public area (with `written` clear the first time): refresh it.
    w.forget(index);
    Ok(value)
}

/// The index's handle and whether it was written, `None` if it is not defined; an index of
/// another kind is an error.
fn open(w: &mut Worker, index: u32) -> Result<Option<(NvIndexHandle, bool)>, IdentityError> {
    let tpm_handle = nv_handle(index)?;
    if !w.handle_exists(index)? {
        return Ok(None);
    }
    let handle: NvIndexHandle =
        w.esys_object("open the NV number", TpmHandle::NvIndex(tpm_handle))?.into();
    let (public, _) = w
        .ctx()?
        .execute_without_session(|c| c.nv_read_public(handle))
        .map_err(tss("read the NV number's definition"))?;
    let attributes = public.attributes();
    let ordinary = matches!(attributes.index_type(), Ok(NvIndexType::Ordinary));
    if !ordinary || !attributes.owner_read() || !attributes.owner_write() || public.data_size() != 8
    {
        return Err(IdentityError::invalid(
            "NV index",
            format!("{index:#010x} exists but is not an owner-readable 8-byte ordinary index"),
        ));
    }
    Ok(Some((handle, attributes.written())))
}

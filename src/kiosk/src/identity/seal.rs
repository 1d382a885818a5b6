//! Sealing a small secret (e.g. the audit spool key) to this TPM, optionally to the current values
//! of some SHA-256 PCRs, and unsealing it.
//!
//! Owns: the [`SealedBlob`] format and the seal/unseal command sequences. Must never: write or log
//! the secret, keep it outside `Zeroizing`, or send it over the TPM bus in clear (salted sessions
//! encrypt the secret on its way in and out).

use serde::{Deserialize, Serialize};
use tss_esapi::Context;
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private, Public, SensitiveData,
    SymmetricDefinition,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use zeroize::Zeroizing;

use super::error::{IdentityError, from_tss, raw_code, tss};
use super::templates;
use super::tpm_key::{create_primary, flush};
use super::worker::Worker;

/// Largest secret the TPM seals (MAX_SYM_DATA).
pub const MAX_SECRET_LEN: usize = 128;

const BLOB_FORMAT: u32 = 1;

/// A secret sealed by this TPM. Safe to store on disk: its private part is encrypted under the
/// TPM's storage key and only this TPM (with the PCRs as they were, if any) can unseal it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBlob {
    format: u32,
    pcrs: Vec<u8>,
    private: Vec<u8>,
    public: Vec<u8>,
}

impl SealedBlob {
    /// The SHA-256 PCR indices this secret is bound to (empty: no PCR policy).
    pub fn pcrs(&self) -> &[u8] {
        &self.pcrs
    }

    /// Bytes to store on disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sealed blob serialises")
    }

    /// Parses bytes written by [`SealedBlob::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedBlob, IdentityError> {
        let blob: SealedBlob = serde_json::from_slice(bytes)
            .map_err(|e| IdentityError::invalid("sealed blob", e.to_string()))?;
        if blob.format != BLOB_FORMAT {
            return Err(IdentityError::invalid("sealed blob", format!("format {}", blob.format)));
        }
        pcr_selection(&blob.pcrs)?;
        Ok(blob)
    }
}

/// Checks and converts PCR indices; `None` for an empty list.
pub(crate) fn pcr_selection(pcrs: &[u8]) -> Result<Option<PcrSelectionList>, IdentityError> {
    if pcrs.is_empty() {
        return Ok(None);
    }
    let slots = pcrs
        .iter()
        .map(|&i| {
            // 24 PCRs per bank is what PC-client TPMs (and swtpm) have.
            let out_of_range =
                || IdentityError::invalid("PCR index", format!("{i} is not in 0..=23"));
            if i > 23 {
                return Err(out_of_range());
            }
            PcrSlot::try_from(1u32 << i).map_err(|_| out_of_range())
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map(Some)
        .map_err(|e| IdentityError::invalid("PCR selection", e.to_string()))
}

/// Runs on the TPM thread.
pub(crate) fn seal(
    w: &mut Worker,
    secret: &[u8],
    pcrs: &[u8],
) -> Result<SealedBlob, IdentityError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(IdentityError::invalid(
            "secret",
            format!("{} bytes; the TPM seals 1 to {MAX_SECRET_LEN}", secret.len()),
        ));
    }
    let selection = pcr_selection(pcrs)?;
    let sensitive =
        SensitiveData::try_from(secret.to_vec()).map_err(tss("seal a secret to the TPM"))?;
    let ctx = w.ctx()?;
    let primary = create_primary(ctx)?;
    let result = (|| {
        let policy = match &selection {
            Some(s) => Some(pcr_policy_digest(ctx, s.clone())?),
            None => None,
        };
        let template = templates::sealed_object(policy)?;
        // `decrypt`: the secret travels to the TPM encrypted under the salted session key.
        let session = salted_session(ctx, primary, SessionType::Hmac, true, false)?;
        let created = ctx.execute_with_session(Some(session), |c| {
            c.create(primary, template, None, Some(sensitive), None, None)
        });
        flush(ctx, session_object(session));
        let created = created.map_err(tss("seal a secret to the TPM"))?;
        let public = created.out_public.marshall().map_err(tss("seal a secret to the TPM"))?;
        Ok(SealedBlob {
            format: BLOB_FORMAT,
            pcrs: pcrs.to_vec(),
            private: created.out_private.value().to_vec(),
            public,
        })
    })();
    flush(ctx, primary.into());
    result
}

/// Runs on the TPM thread.
pub(crate) fn unseal(
    w: &mut Worker,
    blob: &SealedBlob,
) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    const ACTION: &str = "unseal a secret";
    let selection = pcr_selection(&blob.pcrs)?;
    let private = Private::try_from(blob.private.clone()).map_err(tss(ACTION))?;
    let public = Public::unmarshall(&blob.public).map_err(tss(ACTION))?;
    let ctx = w.ctx()?;
    let primary = create_primary(ctx)?;
    let loaded = ctx
        .execute_with_session(Some(AuthSession::Password), |c| c.load(primary, private, public))
        .map_err(tss("load a sealed secret (sealed by another TPM?)"));
    let kind = if selection.is_some() { SessionType::Policy } else { SessionType::Hmac };
    // `encrypt`: the secret comes back encrypted under the salted session key.
    let session = match &loaded {
        Ok(_) => salted_session(ctx, primary, kind, false, true).map(Some),
        Err(_) => Ok(None),
    };
    flush(ctx, primary.into());
    let loaded = loaded?;
    let result = (|| {
        let session = session?.ok_or_else(|| no_session(ACTION))?;
        let unsealed = (|| {
            if let Some(selection) = selection {
                let policy = PolicySession::try_from(session).map_err(tss(ACTION))?;
                ctx.execute_without_session(|c| c.policy_pcr(policy, Digest::default(), selection))
                    .map_err(|e| policy_error(e, &blob.pcrs))?;
            }
            ctx.execute_with_session(Some(session), |c| c.unseal(loaded.into()))
                .map_err(|e| policy_error(e, &blob.pcrs))
        })();
        flush(ctx, session_object(session));
        unsealed
    })();
    flush(ctx, loaded.into());
    Ok(Zeroizing::new(result?.value().to_vec()))
}

/// PolicyPCR digest over the PCRs' current values, computed by the TPM in a trial session.
fn pcr_policy_digest(
    ctx: &mut Context,
    selection: PcrSelectionList,
) -> Result<Digest, IdentityError> {
    const ACTION: &str = "compute the PCR policy";
    let trial = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(tss(ACTION))?
        .ok_or_else(|| no_session(ACTION))?;
    let digest = (|| {
        let policy = PolicySession::try_from(trial).map_err(tss(ACTION))?;
        ctx.policy_pcr(policy, Digest::default(), selection).map_err(tss(ACTION))?;
        ctx.policy_get_digest(policy).map_err(tss(ACTION))
    })();
    flush(ctx, session_object(trial));
    digest
}

/// A session salted with the storage primary (ECDH), so its key is unknown to a bus observer.
fn salted_session(
    ctx: &mut Context,
    primary: KeyHandle,
    kind: SessionType,
    decrypt: bool,
    encrypt: bool,
) -> Result<AuthSession, IdentityError> {
    const ACTION: &str = "start an encrypted TPM session";
    let session = ctx
        .start_auth_session(
            Some(primary),
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(tss(ACTION))?
        .ok_or_else(|| no_session(ACTION))?;
    let (attributes, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(decrypt)
        .with_encrypt(encrypt)
        .build();
    if let Err(e) = ctx.tr_sess_set_attributes(session, attributes, mask) {
        flush(ctx, session_object(session));
        return Err(from_tss(ACTION, e));
    }
    Ok(session)
}

fn session_object(session: AuthSession) -> tss_esapi::handles::ObjectHandle {
    tss_esapi::handles::SessionHandle::from(session).into()
}

fn no_session(action: &'static str) -> IdentityError {
    IdentityError::Tpm { action, reason: "the TPM returned no session".into(), code: None }
}

/// TPM_RC_POLICY_FAIL (any session number) or TPM_RC_PCR_CHANGED mean the PCRs moved.
fn policy_error(e: tss_esapi::Error, pcrs: &[u8]) -> IdentityError {
    match raw_code(&e) {
        Some(c) if !pcrs.is_empty() && (c & 0xbf == 0x9d || c & 0xfff == 0x928) => {
            IdentityError::PolicyMismatch { pcrs: pcrs.to_vec() }
        }
        _ => from_tss("unseal a secret", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_indices_outside_the_bank_are_refused() {
        assert!(pcr_selection(&[]).unwrap().is_none());
        assert!(pcr_selection(&[0, 7, 16, 23]).unwrap().is_some());
        let err = pcr_selection(&[24]).unwrap_err();
        assert!(err.to_string().contains("24 is not in 0..=23"), "{err}");
    }

    #[test]
    fn blob_bytes_round_trip_and_reject_garbage() {
        let blob = SealedBlob { format: 1, pcrs: vec![16], private: vec![1, 2], public: vec![3] };
        assert_eq!(SealedBlob::from_bytes(&blob.to_bytes()).unwrap(), blob);
        assert!(SealedBlob::from_bytes(b"nope").is_err());
    }
}

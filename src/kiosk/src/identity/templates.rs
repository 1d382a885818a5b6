//! TPM object templates: the owner-hierarchy primary (storage root), the device signing key and
//! sealed-data objects, plus the check that an object found in the TPM is one of our device keys.
//!
//! Owns: every attribute bit we ask the TPM for. Must never: create a key without fixedTPM,
//! fixedParent and sensitiveDataOrigin (that would make it exportable or importable).

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme,
    KeyedHashScheme, Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
    SymmetricDefinitionObject,
};

use super::error::{IdentityError, tss};

/// The storage primary key under the owner hierarchy: the TCG "ECC SRK" template (P-256,
/// AES-128-CFB, restricted decryption, zeroed 32-byte unique). Deterministic: the same owner seed
/// gives the same key, so it is recreated on demand and never persisted.
pub(crate) fn storage_primary() -> Result<Public, IdentityError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(tss("build the storage key template"))?;
    let params = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(tss("build the storage key template"))?;
    let zero = EccParameter::try_from(vec![0u8; 32]).map_err(tss("build the storage key"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::new(zero.clone(), zero))
        .build()
        .map_err(tss("build the storage key template"))
}

/// The device identity key: ECC P-256, ECDSA-SHA256 only, generated inside the TPM
/// (sensitiveDataOrigin), bound to this TPM and this parent (fixedTPM, fixedParent), unrestricted
/// so it can sign TLS handshakes and CSRs, never decrypt. Empty auth: possession of the TPM is the
/// credential; the key cannot leave it.
pub(crate) fn device_key() -> Result<Public, IdentityError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .with_decrypt(false)
        .with_restricted(false)
        .build()
        .map_err(tss("build the device key template"))?;
    let params = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
    .build()
    .map_err(tss("build the device key template"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(tss("build the device key template"))
}

/// A sealed-data object holding caller data. With `policy` (a PolicyPCR digest) only that policy
/// can unseal it; without, its empty auth value can. noDA: a PCR mismatch must not count towards
/// dictionary-attack lockout.
pub(crate) fn sealed_object(policy: Option<Digest>) -> Result<Public, IdentityError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_user_with_auth(policy.is_none())
        .build()
        .map_err(tss("build the sealed object template"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy.unwrap_or_default())
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(tss("build the sealed object template"))
}

/// Checks that `public` is a device key as [`device_key`] makes it, and returns its uncompressed
/// SEC1 point (`04 || X || Y`). A key with fixedTPM + sensitiveDataOrigin was generated inside
/// this TPM and cannot have been imported, so a match proves the private part never existed
/// outside it.
pub(crate) fn device_key_point(public: &Public) -> Result<Vec<u8>, String> {
    let Public::Ecc { object_attributes: a, parameters, unique, .. } = public else {
        return Err("not an ECC key".into());
    };
    let ok = a.fixed_tpm()
        && a.fixed_parent()
        && a.sensitive_data_origin()
        && a.sign_encrypt()
        && !a.decrypt()
        && !a.restricted();
    if !ok {
        return Err(format!(
            "its attributes are not those of a non-exportable signing key ({a:?})"
        ));
    }
    if parameters.ecc_curve() != EccCurve::NistP256 {
        return Err(format!("curve {:?}, not P-256", parameters.ecc_curve()));
    }
    if parameters.ecc_scheme() != EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)) {
        return Err(format!("scheme {:?}, not ECDSA-SHA256", parameters.ecc_scheme()));
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    for coordinate in [unique.x().value(), unique.y().value()] {
        if coordinate.len() > 32 {
            return Err("coordinate longer than 32 bytes".into());
        }
        point.extend(std::iter::repeat_n(0u8, 32 - coordinate.len()));
        point.extend_from_slice(coordinate);
    }
    Ok(point)
}

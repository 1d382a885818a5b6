//! The kiosk's half of a visit's end-to-end key agreement (the schedule itself is
//! `telekiosk-e2ee`): for each offer a fresh ephemeral P-256 key, signed by the TPM device key
//! together with the visit id and the offer's DTLS fingerprint; for each answer the ECDH, the
//! check of the console's key confirmation, and the frame keys for the pipeline.
//!
//! Owns the ephemeral secret of the offer in flight (dropped with the call). Must never log a
//! key or a shared secret, nor install keys whose confirmation did not match.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use telekiosk_e2ee::schedule::{CONSOLE_KID, KIOSK_KID, kiosk_key_transcript};
use telekiosk_e2ee::{EphemeralKey, VisitKeys};
use telekiosk_protocol::e2ee::{ConsoleKey, KioskKey, SecurityCheck};

use crate::identity::DeviceKey;
use crate::media::FrameKeys;

/// The kiosk's side of the offer in flight.
pub struct OfferKey {
    secret: EphemeralKey,
    visit_id: String,
    kiosk_fp: String,
}

/// What an answer that passed its checks gives.
pub struct Agreed {
    pub keys: FrameKeys,
    /// Our confirmation, for the console.
    pub confirm: String,
    /// The verification code both screens show.
    pub code: String,
}

/// The first `a=fingerprint:` value of an SDP (`sha-256 AB:CD:…`), exactly as the browser reads
/// it (webrtcbin and browsers use one certificate for every m-line).
pub fn dtls_fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim().strip_prefix("a=fingerprint:"))
        .map(|fp| fp.trim().to_string())
}

/// A fresh ephemeral key for `sdp`'s offer, signed by the device key (blocking: one TPM round
/// trip).
pub fn sign_offer(
    device: &DeviceKey,
    visit_id: &str,
    sdp: &str,
) -> Result<(OfferKey, KioskKey), String> {
    let kiosk_fp = dtls_fingerprint(sdp).ok_or("the offer has no DTLS fingerprint")?;
    let secret = EphemeralKey::generate().map_err(|e| e.to_string())?;
    let public = secret.public_key();
    let transcript = kiosk_key_transcript(visit_id, &public, &kiosk_fp);
    let der = device
        .sign(&transcript)
        .map_err(|e| format!("the device key could not sign the call's key: {e}"))?;
    let signature = p256::ecdsa::Signature::from_der(&der)
        .map_err(|e| format!("the device key's signature is not ECDSA P-256: {e}"))?;
    let key =
        KioskKey { public_key: B64.encode(&public), signature: B64.encode(signature.to_bytes()) };
    Ok((OfferKey { secret, visit_id: visit_id.to_string(), kiosk_fp }, key))
}

/// Agrees on the frame keys with the console's half for `answer_sdp`, refusing it if the
/// console's confirmation is not what this side derived.
pub fn agree(
    ours: &OfferKey,
    answer_sdp: &str,
    theirs: &ConsoleKey,
) -> Result<Agreed, SecurityCheck> {
    let console_fp = dtls_fingerprint(answer_sdp).ok_or(SecurityCheck::Fingerprint)?;
    let public = B64.decode(&theirs.public_key).map_err(|_| SecurityCheck::KeyConfirmation)?;
    let shared = ours.secret.shared_secret(&public).map_err(|_| SecurityCheck::KeyConfirmation)?;
    let keys = VisitKeys::derive(&shared, &ours.visit_id, &ours.kiosk_fp, &console_fp);
    let confirm = B64.decode(&theirs.confirm).map_err(|_| SecurityCheck::KeyConfirmation)?;
    // Not secret-dependent timing worth guarding: a wrong value ends the visit either way.
    if confirm != keys.console_confirm {
        return Err(SecurityCheck::KeyConfirmation);
    }
    Ok(Agreed {
        keys: FrameKeys {
            send_key: keys.kiosk_to_console,
            send_kid: KIOSK_KID,
            receive_key: keys.console_to_kiosk,
            receive_kid: CONSOLE_KID,
        },
        confirm: B64.encode(keys.kiosk_confirm),
        code: keys.code.clone(),
    })
}

/// The console's half answering `ours`, as a browser computes it (controller tests).
#[cfg(test)]
pub(crate) fn console_half_for_tests(ours: &OfferKey, answer_sdp: &str) -> ConsoleKey {
    let secret = EphemeralKey::generate().expect("randomness");
    let shared = secret.shared_secret(&ours.secret.public_key()).expect("a valid key");
    let console_fp = dtls_fingerprint(answer_sdp).unwrap_or_default();
    let keys = VisitKeys::derive(&shared, &ours.visit_id, &ours.kiosk_fp, &console_fp);
    ConsoleKey {
        public_key: B64.encode(secret.public_key()),
        confirm: B64.encode(keys.console_confirm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SoftwareKey;
    use p256::ecdsa::signature::Verifier as _;

    const OFFER: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 AA:BB\r\n";
    const ANSWER: &str = "v=0\r\na=fingerprint:sha-256 CC:DD\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n";

    /// The console's side, as the browser does it (e2ee-schedule.js).
    fn console_half(kiosk: &KioskKey, visit_id: &str) -> (ConsoleKey, VisitKeys) {
        let secret = EphemeralKey::generate().unwrap();
        let shared = secret.shared_secret(&B64.decode(&kiosk.public_key).unwrap()).unwrap();
        let keys = VisitKeys::derive(&shared, visit_id, "sha-256 AA:BB", "sha-256 CC:DD");
        let half = ConsoleKey {
            public_key: B64.encode(secret.public_key()),
            confirm: B64.encode(keys.console_confirm),
        };
        (half, keys)
    }

    #[test]
    fn the_offer_key_is_signed_by_the_device_key_with_the_visit_and_fingerprint() {
        let (device, _) = SoftwareKey::generate_for_development().unwrap();
        let device = device.into_device_key();
        let (_, key) = sign_offer(&device, "visit-1", OFFER).unwrap();
        let public = B64.decode(&key.public_key).unwrap();
        let transcript = kiosk_key_transcript("visit-1", &public, "sha-256 AA:BB");
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(device.public_point()).unwrap();
        let signature = p256::ecdsa::Signature::from_slice(&B64.decode(&key.signature).unwrap());
        assert!(verifying.verify(&transcript, &signature.unwrap()).is_ok());
        let other = kiosk_key_transcript("visit-2", &public, "sha-256 AA:BB");
        let signature = p256::ecdsa::Signature::from_slice(&B64.decode(&key.signature).unwrap());
        assert!(verifying.verify(&other, &signature.unwrap()).is_err(), "bound to the visit");
    }

    #[test]
    fn both_sides_agree_and_a_swapped_key_or_fingerprint_is_refused() {
        let (device, _) = SoftwareKey::generate_for_development().unwrap();
        let device = device.into_device_key();
        let (ours, key) = sign_offer(&device, "visit-1", OFFER).unwrap();
        let (theirs, console) = console_half(&key, "visit-1");
        let agreed = agree(&ours, ANSWER, &theirs).unwrap();
        assert_eq!(agreed.keys.send_key, console.kiosk_to_console);
        assert_eq!(agreed.keys.receive_key, console.console_to_kiosk);
        assert_eq!(agreed.code, console.code);
        assert_eq!(B64.decode(&agreed.confirm).unwrap(), console.kiosk_confirm);

        // A man in the middle answering with its own key cannot produce the confirmation.
        let (mitm, _) = console_half(&key, "visit-1");
        let swapped = ConsoleKey { public_key: mitm.public_key, confirm: theirs.confirm.clone() };
        assert_eq!(agree(&ours, ANSWER, &swapped).err(), Some(SecurityCheck::KeyConfirmation));
        // Nor can it swap the browser's DTLS certificate.
        let forged = ANSWER.replace("CC:DD", "EE:FF");
        assert_eq!(agree(&ours, &forged, &theirs).err(), Some(SecurityCheck::KeyConfirmation));
        assert_eq!(agree(&ours, "v=0\r\n", &theirs).err(), Some(SecurityCheck::Fingerprint));
    }
}

//! The short key fingerprint an admin compares before approving a kiosk (review M5): the first
//! 8 bytes of the SHA-256 of the device's public key as an uncompressed SEC1 point
//! (`04 || X || Y`, 65 bytes for P-256), in upper-case hex, grouped by four: `3F9A-21C4-0B7E-55D2`.
//! The kiosk shows it on its enrolment screen and fleetd in its pending-device lists; both call
//! this one function, so the two cannot drift apart.
//!
//! It owns that definition only; it must never be used to identify or authenticate a device
//! (64 bits is enough for a person to compare two screens, not to stand for the key).

use sha2::{Digest, Sha256};

/// Bytes of the SHA-256 shown.
pub const FINGERPRINT_BYTES: usize = 8;

/// The fingerprint of `sec1_point` (see the module documentation).
pub fn key_fingerprint(sec1_point: &[u8]) -> String {
    let digest = Sha256::digest(sec1_point);
    let hex: Vec<String> = digest[..FINGERPRINT_BYTES]
        .chunks(2)
        .map(|pair| pair.iter().map(|b| format!("{b:02X}")).collect())
        .collect();
    hex.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_first_8_bytes_of_sha256_grouped_by_four_hex_digits() {
        // SHA-256 of the empty string: e3b0c442 98fc1c14 9afbf4c8 996fb924 ...
        assert_eq!(key_fingerprint(b""), "E3B0-C442-98FC-1C14");
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ...
        assert_eq!(key_fingerprint(b"abc"), "BA78-16BF-8F01-CFEA");
    }

    #[test]
    fn a_fixed_device_key_has_a_fixed_fingerprint_and_another_key_another() {
        let mut point = vec![0x04];
        point.extend((1..=64).map(|b| b as u8));
        let fp = key_fingerprint(&point);
        assert_eq!(fp.len(), 19, "{fp}");
        assert!(fp.split('-').all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit())));
        assert_eq!(fp, key_fingerprint(&point), "not deterministic");
        point[64] ^= 1;
        assert_ne!(fp, key_fingerprint(&point), "a one-bit change kept the fingerprint");
    }
}

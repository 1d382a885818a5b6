//! Time-based one-time codes (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps) through the
//! `totp-rs` crate, and one-time recovery codes. Pure: the clock is passed in, and the caller
//! stores what these functions return. Owns the replay rule: a code is accepted only for a time
//! step later than the last one accepted for that user, so each code works once. Never logs a
//! secret or a code.

use totp_rs::{Algorithm, TOTP};

/// Length of one time step, in seconds.
pub const STEP_SECS: u64 = 30;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Steps either side of now that are still accepted (clocks drift; people type slowly).
const SKEW_STEPS: u64 = 1;
const ISSUER: &str = "telekiosk";

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeError {
    /// Not the code of any step near now.
    Wrong,
    /// The code of a step already used (replayed or typed twice).
    Used,
}

/// A new random 160-bit secret, base32 (what authenticator apps take when typed).
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)?;
    Ok(base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &bytes))
}

fn totp(secret_b32: &str) -> Option<TOTP> {
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_b32)?;
    TOTP::new(Algorithm::SHA1, 6, 0, STEP_SECS, bytes).ok()
}

/// The code for `secret_b32` at Unix time `now`.
#[cfg(test)]
pub fn code_at(secret_b32: &str, now: u64) -> Option<String> {
    totp(secret_b32).map(|t| t.generate(now))
}

/// Checks `code` at Unix time `now` for a user whose last accepted step is `last_step`
/// (-1 if none); returns the step to record as the new last one.
pub fn verify(secret_b32: &str, code: &str, now: u64, last_step: i64) -> Result<i64, CodeError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(totp) = totp(secret_b32) else { return Err(CodeError::Wrong) };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::Wrong);
    }
    let now_step = now / STEP_SECS;
    let steps = now_step.saturating_sub(SKEW_STEPS)..=now_step + SKEW_STEPS;
    // `check` compares in constant time; skew 0, so it matches exactly this step.
    let step = steps.into_iter().find(|s| totp.check(&code, s * STEP_SECS));
    match step {
        None => Err(CodeError::Wrong),
        Some(s) if (s as i64) <= last_step => Err(CodeError::Used),
        Some(s) => Ok(s as i64),
    }
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn uri(secret_b32: &str, username: &str) -> String {
    let account: String = username
        .chars()
        .map(|c| if c == '@' { "%40".to_string() } else { c.to_string() })
        .collect();
    format!(
        "otpauth://totp/{ISSUER}:{account}?secret={secret_b32}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_SECS}"
    )
}

/// `uri` as a QR code, an SVG document.
pub fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(qr) => qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build(),
        Err(_) => String::new(),
    }
}

/// [`RECOVERY_CODES`] new recovery codes, each 10 characters (50 bits) as `xxxxx-xxxxx`.
pub fn new_recovery_codes() -> Result<Vec<String>, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 10 * RECOVERY_CODES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes
        .chunks(10)
        .map(|c| {
            let s: String = c.iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
            format!("{}-{}", &s[..5], &s[5..])
        })
        .collect())
}

/// What the store keeps of a recovery code: the SHA-256 of its normal form (lower case, no
/// dash or spaces), hex. 50 random bits need no slow hash.
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let digest = ring::digest::digest(&ring::digest::SHA256, normal.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B's SHA-1 key, "12345678901234567890".
    const RFC_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        // The RFC's 8-digit values, last 6 digits.
        assert_eq!(code_at(RFC_KEY, 59).unwrap(), "287082");
        assert_eq!(code_at(RFC_KEY, 1_111_111_109).unwrap(), "081804");
        assert_eq!(code_at(RFC_KEY, 1_234_567_890).unwrap(), "005924");
    }

    #[test]
    fn a_current_code_is_accepted_once_and_a_wrong_one_never() {
        let now = 1_234_567_890;
        let code = code_at(RFC_KEY, now).unwrap();
        let step = verify(RFC_KEY, &code, now, -1).unwrap();
        assert_eq!(step, (now / 30) as i64);
        assert_eq!(verify(RFC_KEY, &code, now, step), Err(CodeError::Used));
        assert_eq!(verify(RFC_KEY, &code, now + 5, step), Err(CodeError::Used));
        assert_eq!(verify(RFC_KEY, "000000", now, -1), Err(CodeError::Wrong));
        assert_eq!(verify(RFC_KEY, "12345", now, -1), Err(CodeError::Wrong));
        assert_eq!(verify(RFC_KEY, "abcdef", now, -1), Err(CodeError::Wrong));
    }

    #[test]
    fn the_previous_and_next_steps_are_accepted_but_not_older_ones() {
        let now = 1_234_567_890;
        let previous = code_at(RFC_KEY, now - 30).unwrap();
        let next = code_at(RFC_KEY, now + 30).unwrap();
        let old = code_at(RFC_KEY, now - 90).unwrap();
        assert!(verify(RFC_KEY, &previous, now, -1).is_ok());
        assert!(verify(RFC_KEY, &next, now, -1).is_ok());
        assert_eq!(verify(RFC_KEY, &old, now, -1), Err(CodeError::Wrong));
        // A code of an earlier step than the last one used is a replay, even if near now.
        let next_step = verify(RFC_KEY, &next, now, -1).unwrap();
        assert_eq!(verify(RFC_KEY, &previous, now, next_step), Err(CodeError::Used));
    }

    #[test]
    fn new_secrets_differ_and_work() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let code = code_at(&a, 1000).unwrap();
        assert!(verify(&a, &code, 1000, -1).is_ok());
    }

    #[test]
    fn the_uri_names_the_issuer_and_account_and_the_qr_code_is_svg() {
        let uri = uri(RFC_KEY, "ada@north");
        assert!(uri.starts_with("otpauth://totp/telekiosk:ada%40north?secret="), "{uri}");
        assert!(qr_svg(&uri).contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_hash_the_same_however_typed() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), 10);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(recovery_hash(c), recovery_hash(&c.to_uppercase().replace('-', " ")));
        assert_ne!(recovery_hash(c), recovery_hash(&codes[1]));
    }
}

//! Enrolment tokens and device ids: how they are made, typed, hashed and timed. Pure apart
//! from the system random source.
//!
//! A token is 8 characters from a 32-symbol alphabet without 0/O and 1/I (40 bits), shown as
//! `XXXX-XXXX` so a technician can type it from a phone call. Only its SHA-256 is stored:
//! 40 bits would not resist an offline search, but the database sits beside the CA key in the
//! owner-only data directory, and whoever can read it can already issue certificates. Online,
//! a token is one of 2^40, valid for a day, and usable once.

use std::time::Duration;

/// The symbols of a token: digits 2-9 and the letters except I and O.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Symbols in a token.
pub const TOKEN_CHARS: usize = 8;
/// How long a token stays valid unless the admin says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// RFC 4648 base32, lowercase: the symbols of a device id after `dev-`.
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Random symbols in a device id (50 bits).
const ID_CHARS: usize = 10;

/// An enrolment token in canonical form (8 upper-case symbols, no dash).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)") // never in logs
    }
}

impl Token {
    /// A fresh random token.
    pub fn generate() -> Result<Self, getrandom::Error> {
        Ok(Self(random_symbols(ALPHABET, TOKEN_CHARS)?))
    }

    /// What a technician typed: case, dashes and spaces do not matter. `None` if it cannot be
    /// a token (wrong length or a symbol outside the alphabet).
    pub fn parse(typed: &str) -> Option<Self> {
        let canonical: String = typed
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let ok = canonical.len() == TOKEN_CHARS && canonical.bytes().all(|b| ALPHABET.contains(&b));
        ok.then_some(Self(canonical))
    }

    /// `XXXX-XXXX`, as shown to the admin.
    pub fn shown(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    /// SHA-256 of the canonical form: what the database keeps.
    pub fn hash(&self) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes()).as_ref().to_vec()
    }
}

/// A fresh pseudonymous device id: `dev-` and 10 lowercase base32 symbols.
pub fn new_device_id() -> Result<String, getrandom::Error> {
    Ok(format!("dev-{}", random_symbols(ID_ALPHABET, ID_CHARS)?))
}

/// Whether `expires_at` (Unix seconds) has passed at `now`.
pub fn expired(expires_at: i64, now: i64) -> bool {
    now >= expires_at
}

/// `n` symbols of a 32-symbol alphabet: 5 bits each, so no modulo bias.
fn random_symbols(alphabet: &[u8; 32], n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| alphabet[(b & 31) as usize] as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_eight_unambiguous_symbols_shown_as_two_groups_of_four() {
        for _ in 0..200 {
            let token = Token::generate().unwrap();
            let shown = token.shown();
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert!(!shown.contains(['0', '1', 'I', 'O']), "{shown}");
            assert_eq!(Token::parse(&shown), Some(token));
        }
    }

    #[test]
    fn a_token_is_read_whatever_its_case_dashes_or_spaces() {
        let token = Token::parse("K7QM-3XTF").unwrap();
        for typed in ["k7qm-3xtf", "K7QM3XTF", " k7qm 3xtf "] {
            assert_eq!(Token::parse(typed).as_ref(), Some(&token), "{typed}");
        }
    }

    #[test]
    fn text_that_cannot_be_a_token_is_not_one() {
        for typed in ["", "K7QM-3XT", "K7QM-3XTFF", "K7QM-3XT0", "K7QM-3XTI", "K7QM-3XT!"] {
            assert_eq!(Token::parse(typed), None, "{typed}");
        }
    }

    #[test]
    fn the_stored_hash_is_the_sha256_of_the_canonical_form_and_never_the_token() {
        let token = Token::parse("k7qm-3xtf").unwrap();
        let hash = token.hash();
        assert_eq!(hash.len(), 32);
        assert_eq!(hash, Token::parse("K7QM3XTF").unwrap().hash());
        assert_ne!(hash, Token::parse("K7QM3XTG").unwrap().hash());
        assert!(!format!("{token:?}").contains("K7QM"));
        // SHA-256("K7QM3XTF"), computed independently with `printf K7QM3XTF | sha256sum`.
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8d5e1ccd1f66325ffba0a73ba46a0a9a9e19206b103acb40cd74c256060568e6");
    }

    #[test]
    fn a_token_expires_at_its_expiry_time_not_a_second_later() {
        assert!(!expired(1_000, 999));
        assert!(expired(1_000, 1_000));
        assert!(expired(1_000, 1_001));
    }

    #[test]
    fn device_ids_are_dev_and_ten_lowercase_base32_symbols() {
        let id = new_device_id().unwrap();
        assert_eq!(id.len(), 14);
        assert!(id.starts_with("dev-"));
        assert!(id[4..].bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        assert_ne!(new_device_id().unwrap(), id);
    }
}

//! The password policy, pure: at least [`MIN_PASSWORD_CHARS`] characters for every role, at
//! most [`MAX_PASSWORD_BYTES`] bytes (bounds the hashing work), not the user name, and not in
//! the list of common passwords shipped in `common-passwords.txt`. Never logs a password.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

const COMMON: &str = include_str!("common-passwords.txt");

/// Why a new password is refused; the messages are for the person choosing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "the password is too short: use at least {MIN_PASSWORD_CHARS} characters (a few words make a good one)"
    )]
    TooShort,
    #[error("the password is too long: use at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the password is the user name: choose something else")]
    IsUsername,
    #[error("the password is one of the most common passwords: choose something less guessable")]
    Common,
}

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    })
}

/// Whether `password` may be set for `username`.
pub fn check(username: &str, password: &str) -> Result<(), PolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PolicyError::TooShort);
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() {
        return Err(PolicyError::IsUsername);
    }
    if common().contains(lower.trim()) {
        return Err(PolicyError::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_named_and_common_passwords_are_refused() {
        assert_eq!(check("ada", "elevenchars"), Err(PolicyError::TooShort));
        assert_eq!(check("ada", &"x".repeat(1025)), Err(PolicyError::TooLong));
        assert_eq!(check("ada.lovelace", "Ada.Lovelace"), Err(PolicyError::IsUsername));
        assert_eq!(check("ada", "Password1234"), Err(PolicyError::Common));
        assert_eq!(check("ada", "qwertyuiopasdf"), Err(PolicyError::Common));
        assert!(check("ada", "plum kettle orbit").is_ok());
        assert!(check("ada", "twelve chars").is_ok());
    }

    #[test]
    fn the_shipped_list_is_loaded_and_lower_case() {
        assert!(common().len() > 300, "{}", common().len());
        assert!(common().iter().all(|p| *p == p.to_lowercase()));
    }

    #[test]
    fn every_message_names_what_to_do() {
        assert!(PolicyError::TooShort.to_string().contains("at least 12"));
        assert!(PolicyError::Common.to_string().contains("common"));
    }
}

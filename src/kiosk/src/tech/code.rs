//! The maintenance code check: the typed code against the fleet config's Argon2 PHC hash.
//! Argon2 is slow on purpose, so [`check`] runs on a blocking thread; [`verify`] is the plain
//! function under it.
//!
//! Must never: log, keep or return the code or the hash (nothing here writes a line), or accept
//! a code when the hash cannot be read.

use argon2::password_hash::{PasswordHash, PasswordVerifier};

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Right,
    Wrong,
    /// The config's hash is not a readable Argon2 hash: no code can open the screen.
    BadHash,
}

/// Compares `code` with `hash` (Argon2 PHC string, `$argon2id$…`).
pub fn verify(hash: &str, code: &str) -> Verdict {
    let Ok(parsed) = PasswordHash::new(hash) else { return Verdict::BadHash };
    if !parsed.algorithm.as_str().starts_with("argon2") || parsed.hash.is_none() {
        return Verdict::BadHash;
    }
    match argon2::Argon2::default().verify_password(code.as_bytes(), &parsed) {
        Ok(()) => Verdict::Right,
        Err(argon2::password_hash::Error::Password) => Verdict::Wrong,
        Err(_) => Verdict::BadHash,
    }
}

/// [`verify`] on a thread of its own; `done` gets the verdict there.
pub fn check(hash: String, code: String, done: impl FnOnce(Verdict) + Send + 'static) {
    std::thread::spawn(move || {
        let code = zeroize::Zeroizing::new(code);
        done(verify(&hash, &code));
    });
}

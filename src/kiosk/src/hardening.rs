//! Start-up hardening: keeps visit media out of core dumps, swap and debuggers.
//!
//! Pictures and sound of a visit live only in this process's memory. A core dump would write
//! them to disk, swap could page them out, and a debugger attached by another user could read
//! them. So, before any media is handled: no core dumps (hard limit 0, not dumpable — which
//! also refuses ptrace by other users) and memory locked so it is never swapped. The first two
//! are required; locking memory needs CAP_IPC_LOCK or a high enough RLIMIT_MEMLOCK (the
//! systemd unit gives it) and is reported when it is not possible rather than stopping the kiosk.

use std::ffi::OsStr;

use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};

/// GStreamer's ORC compiles its SIMD kernels (colour conversion, scaling, audio conversion and
/// volume) at run time into a file it creates in `$XDG_RUNTIME_DIR`, `$HOME` or `/tmp`
/// (`orcexec.*`), mapped twice, writable and executable: the kiosk's only write outside its state
/// directory during a visit, a failed write (journal noise) under a read-only root, and W+X
/// memory that `MemoryDenyWriteExecute` forbids. `ORC_CODE=backup` makes ORC run the C versions
/// compiled into each plugin instead: no code file, no executable mapping, at a CPU cost the
/// no-media-at-rest test measures.
pub const ORC_CODE: &str = "backup";

/// The `ORC_CODE` the kiosk must set before GStreamer starts: `backup` unless the environment
/// already chose (a bench comparing the two).
pub fn orc_code(current: Option<&OsStr>) -> Option<&'static str> {
    match current {
        Some(v) if !v.is_empty() => None,
        _ => Some(ORC_CODE),
    }
}

/// A protection that could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("cannot turn core dumps off (setrlimit RLIMIT_CORE): {0}")]
    CoreLimit(nix::Error),
    #[error("cannot mark the process not dumpable (prctl PR_SET_DUMPABLE): {0}")]
    Dumpable(nix::Error),
}

/// What hardening achieved.
#[derive(Debug)]
pub struct Hardened {
    /// `Err` with the reason when memory could not be locked (it may then be swapped).
    pub memory_locked: Result<(), nix::Error>,
}

/// Applies every protection; fails if core dumps cannot be ruled out.
pub fn harden() -> Result<Hardened, HardeningError> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardeningError::CoreLimit)?;
    prctl::set_dumpable(false).map_err(HardeningError::Dumpable)?;
    // MCL_ONFAULT: lock pages as they are touched, so reserved-but-unused memory (thread
    // stacks, allocator arenas) is not filled in just to be locked.
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT);
    Ok(Hardened { memory_locked: mlockall(flags) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orc_runs_its_backups_unless_the_environment_chose() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, Some("backup")),
            (Some(""), Some("backup")),
            (Some("backup"), None),
            (Some("default"), None),
        ];
        for (current, expected) in cases {
            assert_eq!(orc_code(current.map(OsStr::new)), *expected, "{current:?}");
        }
    }
}

//! Start-up hardening: keeps visit media out of core dumps, swap and debuggers.
//!
//! Pictures and sound of a visit live only in this process's memory. A core dump would write
//! them to disk, swap could page them out, and a debugger attached by another user could read
//! them. So, before any media is handled: no core dumps (hard limit 0, not dumpable — which
//! also refuses ptrace by other users) and memory locked so it is never swapped. The first two
//! are required; locking memory needs CAP_IPC_LOCK or a high enough RLIMIT_MEMLOCK (the
//! systemd unit gives it) and is reported when it is not possible rather than stopping the kiosk.

use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};

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

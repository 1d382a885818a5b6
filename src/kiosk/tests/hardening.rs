//! Hardening, applied to this test process (its own binary, so nothing else is affected).

use nix::sys::resource::{Resource, getrlimit};

#[test]
fn after_hardening_no_core_dump_can_be_written_and_memory_is_locked() {
    let hardened = telekiosk::hardening::harden().expect("hardening applies");
    assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (0, 0), "core dumps still allowed");
    assert!(!nix::sys::prctl::get_dumpable().unwrap(), "process still dumpable");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmLck in /proc/self/status");
    match hardened.memory_locked {
        // Root (tests, CI, the kiosk's unit) may lock memory: it must then really be locked.
        Ok(()) => assert!(locked_kb > 0, "mlockall succeeded but VmLck is 0"),
        Err(e) => assert!(nix::unistd::geteuid().as_raw() != 0, "root could not lock memory: {e}"),
    }
}

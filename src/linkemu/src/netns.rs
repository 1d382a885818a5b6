//! Named network namespaces (the ones `ip netns` manages): create, delete, run code inside.
//!
//! Namespaces are made and configured with the `ip` tool (iproute2); code runs inside one on a
//! short-lived thread that joins it with setns(2). A socket or TUN device opened there stays in
//! that namespace for its whole life, whichever thread uses it afterwards.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::thread;

use nix::sched::{CloneFlags, setns};

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// Refuses names `ip netns` would refuse or that would escape [`NETNS_DIR`].
fn check_name(name: &str) -> io::Result<()> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.starts_with('.') || name.len() > 64 || !name.chars().all(valid_char)
    {
        let message = format!("bad network namespace name `{name}`: use letters, digits, - _ .");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    Ok(())
}

fn path(name: &str) -> io::Result<PathBuf> {
    check_name(name)?;
    Ok(PathBuf::from(NETNS_DIR).join(name))
}

/// Whether the namespace `name` exists.
pub fn exists(name: &str) -> bool {
    path(name).is_ok_and(|path| path.exists())
}

/// Creates the namespace `name` unless it exists; returns whether it was created.
pub fn ensure(name: &str) -> io::Result<bool> {
    if exists(name) {
        return Ok(false);
    }
    check_name(name)?;
    ip(&["netns", "add", name])?;
    Ok(true)
}

/// Deletes the namespace `name` (processes still inside keep it alive until they exit).
pub fn delete(name: &str) -> io::Result<()> {
    check_name(name)?;
    ip(&["netns", "delete", name])
}

/// Runs `f` on a new thread inside the namespace `name` and returns its result.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let namespace = File::open(path(name)?)
        .map_err(|e| io::Error::new(e.kind(), format!("network namespace `{name}`: {e}")))?;
    thread::scope(|scope| {
        let inside = scope.spawn(move || {
            setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                io::Error::other(format!("entering network namespace `{name}`: {errno}"))
            })?;
            f()
        });
        inside.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `ip ARGS…` and fails with its error output if it fails.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running `{command}` (iproute2): {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(io::Error::other(format!("`{command}` failed ({}): {}", output.status, stderr.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["clinic", "tk-test-a-123", "ns_1.b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "..", "../etc", "a/b", "a b", ".hidden"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}

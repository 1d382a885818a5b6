//! A real swtpm (TPM 2.0 simulator) on free loopback ports with its own state directory, started
//! by the test and stopped on drop. A missing `swtpm` binary is a test failure, never a skip.
//! Also used by `examples/tpm_bench.rs` through `#[path]`.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm. `port` is the TPM command port, `port + 1` the control port.
pub struct Swtpm {
    child: Option<Child>,
    port: u16,
    state_dir: PathBuf,
    _owned_dir: Option<tempfile::TempDir>,
}

impl Swtpm {
    /// Starts swtpm with a fresh temporary state directory.
    pub fn start() -> Swtpm {
        let dir = tempfile::tempdir().expect("temp dir for swtpm state");
        let mut tpm = Swtpm::start_in(dir.path());
        tpm._owned_dir = Some(dir);
        tpm
    }

    /// Starts swtpm on the state kept in `state_dir` (which must outlive it).
    pub fn start_in(state_dir: &Path) -> Swtpm {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port_pair();
            match spawn(port, state_dir) {
                Ok(child) => {
                    return Swtpm {
                        child: Some(child),
                        port,
                        state_dir: state_dir.to_path_buf(),
                        _owned_dir: None,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("swtpm did not start: {last_error}");
    }

    /// TCTI string for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the running swtpm (to SIGSTOP it in a hang test).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("swtpm is running").id() as i32
    }

    /// Stops swtpm (SIGTERM, then SIGKILL after 2 s); its state stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on the pid of a child we own and have not reaped yet.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same state directory and the same ports (a power cycle).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match spawn(self.port, &self.state_dir) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // The old socket may linger for a moment.
                Err(e) if Instant::now() > deadline => panic!("swtpm did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Runs a tpm2-tools command against this swtpm; returns stdout, panics with stderr on failure.
    pub fn tpm2(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool} (install tpm2-tools): {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(port: u16, state_dir: &Path) -> Result<Child, String> {
    // swtpm's own messages go to a file beside its state: a pipe nobody drains could block it.
    let log_path = state_dir.join("swtpm.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("cannot create {log_path:?}: {e}"))?;
    let mut child = Command::new("swtpm")
        .args(["socket", "--tpm2"])
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--tpmstate")
        .arg(format!("dir={}", state_dir.display()))
        .args(["--flags", "not-need-init,startup-clear"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!(
                    "the swtpm binary is missing: install the Debian packages swtpm and swtpm-tools"
                )
            }
            format!("cannot run swtpm: {e}")
        })?;
    // Ready when the control port accepts a connection (probing the command port would occupy
    // swtpm's single command connection).
    let ctrl = SocketAddr::from((Ipv4Addr::LOCALHOST, port + 1));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("swtpm exited ({status}): {}", err.trim()));
        }
        if TcpStream::connect_timeout(&ctrl, Duration::from_millis(100)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("swtpm did not listen on port {} within 5 s", port + 1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port P such that P and P+1 were both free a moment ago.
fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
        let port = a.local_addr().expect("local addr").port();
        if port < u16::MAX && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return port;
        }
    }
}

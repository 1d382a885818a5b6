//! The embedded MQTT broker: writes `mosquitto.conf` into the data directory, runs mosquitto as
//! a child process, forwards its log, restarts it with backoff when it dies, and stops it when
//! fleetd stops. The child dies with fleetd even on SIGKILL (PR_SET_PDEATHSIG). This module
//! never speaks MQTT itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pki::Pki;

/// The broker fleetd runs unless told to use another.
pub const DEFAULT_MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// A broker that ran this long before dying is restarted without delay.
const STABLE_RUN: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration file could not be written.
    #[error("cannot write {path}: {source}")]
    Config { path: PathBuf, source: std::io::Error },
    /// mosquitto could not be started at all.
    #[error(
        "cannot start {exe}: {source} (install the `mosquitto` package, or pass --mqtt-url to use \
         another broker)"
    )]
    Spawn { exe: PathBuf, source: std::io::Error },
    /// Something else already listens on the broker's port.
    #[error(
        "cannot listen on {addr} for MQTT: {source} (is another broker running? pick --mqtt-listen)"
    )]
    PortBusy { addr: SocketAddr, source: std::io::Error },
    /// mosquitto started but never said it was running.
    #[error("mosquitto was not running within {secs} s: see its log above")]
    NotListening { secs: u64 },
}

/// Writes the broker configuration for one TLS listener on `listen` and returns its path.
pub fn write_config(
    data_dir: &Path,
    listen: SocketAddr,
    pki: &Pki,
) -> Result<PathBuf, BrokerError> {
    let path = data_dir.join("mosquitto.conf");
    // mosquitto started as root drops to user `mosquitto`, which cannot read our 0600 key.
    let user = if nix::unistd::geteuid().is_root() { "user root\n" } else { "" };
    let conf = format!(
        "# Written by fleetd at every start: edits are lost.\n\
         persistence false\n\
         log_dest stderr\n\
         log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
         connection_messages true\n\
         {user}\
         listener {port} {host}\n\
         cafile {ca}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         tls_version tlsv1.2\n\
         max_packet_size 131072\n\
         # FOR NOW anyone who trusts the CA may connect, with no client certificate and no ACL.\n\
         # The next issue turns on mutual TLS with TPM-held kiosk keys: require_certificate true,\n\
         # use_identity_as_username true, an acl_file confining each device to\n\
         # telekiosk/v1/dev/%u/#, and a crlfile for revoked devices.\n\
         require_certificate false\n\
         allow_anonymous true\n",
        port = listen.port(),
        host = listen.ip(),
        ca = pki.ca_cert.display(),
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
    );
    std::fs::write(&path, conf)
        .map_err(|source| BrokerError::Config { path: path.clone(), source })?;
    Ok(path)
}

/// Fails early, with a clear message, if something already holds the broker's port.
pub fn check_port_free(addr: SocketAddr) -> Result<(), BrokerError> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| BrokerError::PortBusy { addr, source })
}

/// The supervised mosquitto child.
#[derive(Debug)]
pub struct Broker {
    stop: watch::Sender<bool>,
    running: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Broker {
    /// Starts `exe -c conf` and a task that restarts it whenever it dies. Fails if the first
    /// start fails (missing binary); later failures are logged and retried.
    pub fn start(exe: &Path, conf: &Path) -> Result<Self, BrokerError> {
        let (running_tx, running) = watch::channel(false);
        let child = spawn(exe, conf, &running_tx)?;
        let (stop, stopped) = watch::channel(false);
        let (exe, conf) = (exe.to_path_buf(), conf.to_path_buf());
        let task = tokio::spawn(supervise(exe, conf, child, running_tx, stopped));
        Ok(Self { stop, running, task })
    }

    /// Waits until mosquitto reports it is running (its listeners are open). Probing the port
    /// instead would make mosquitto log a failed TLS handshake at every start.
    pub async fn wait_running(&mut self, within: Duration) -> Result<(), BrokerError> {
        let running = tokio::time::timeout(within, self.running.wait_for(|r| *r)).await;
        match running {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::NotListening { secs: within.as_secs() }),
        }
    }

    /// Stops mosquitto (SIGTERM, then SIGKILL after two seconds) and its supervisor.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn supervise(
    exe: PathBuf,
    conf: PathBuf,
    mut child: Child,
    running: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                let ran = started.elapsed();
                match status {
                    Ok(s) => tracing::error!(target: "mosquitto", "mosquitto exited ({s}) after {ran:.1?}"),
                    Err(e) => tracing::error!(target: "mosquitto", "cannot wait for mosquitto: {e}"),
                }
                if ran >= STABLE_RUN {
                    backoff = Duration::from_secs(1);
                }
            }
            _ = stopped(&mut stop) => return terminate(child).await,
        }
        // Restart after a backoff, unless told to stop meanwhile.
        loop {
            tracing::info!(target: "mosquitto", "restarting mosquitto in {backoff:?}");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match spawn(&exe, &conf, &running) {
                Ok(c) => break child = c,
                Err(e) => tracing::error!(target: "mosquitto", "{e}"),
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn spawn(exe: &Path, conf: &Path, running: &watch::Sender<bool>) -> Result<Child, BrokerError> {
    let parent = nix::unistd::getpid();
    let mut cmd = Command::new(exe);
    cmd.arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C in the terminal is fleetd's to handle, not mosquitto's.
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            // Die with fleetd, even if fleetd is SIGKILLed. The signal follows the thread that
            // forked; tokio's worker threads (and main) live as long as fleetd.
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("fleetd exited while starting mosquitto"));
            }
            Ok(())
        });
    }
    let mut child =
        cmd.spawn().map_err(|source| BrokerError::Spawn { exe: exe.to_path_buf(), source })?;
    tracing::info!(target: "mosquitto", pid = child.id(), conf = %conf.display(), "mosquitto started");
    if let Some(stderr) = child.stderr.take() {
        let running = running.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // "1700000000: mosquitto version 2.0.11 running", once its listeners are open.
                if line.contains("mosquitto version") && line.ends_with(" running") {
                    running.send_replace(true);
                }
                tracing::info!(target: "mosquitto", "{line}");
            }
        });
    }
    Ok(child)
}

async fn terminate(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
            tracing::info!(target: "mosquitto", "mosquitto stopped ({status})");
            return;
        }
    }
    let _ = child.kill().await;
    tracing::warn!(target: "mosquitto", "mosquitto killed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_has_one_tls_listener_with_fleetds_certificates_and_no_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::paths(dir.path());
        let path = write_config(dir.path(), "127.0.0.1:18883".parse().unwrap(), &pki).unwrap();
        let conf = std::fs::read_to_string(path).unwrap();
        assert_eq!(conf.matches("\nlistener ").count(), 1);
        for line in [
            "listener 18883 127.0.0.1",
            &format!("cafile {}", pki.ca_cert.display()),
            &format!("keyfile {}", pki.server_key.display()),
            "persistence false",
            "log_dest stderr",
        ] {
            assert!(conf.lines().any(|l| l == line), "missing {line:?} in\n{conf}");
        }
        let runs_as_root = nix::unistd::geteuid().is_root();
        assert_eq!(conf.lines().any(|l| l == "user root"), runs_as_root);
    }
}

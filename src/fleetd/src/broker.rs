//! The embedded MQTT broker: writes `mosquitto.conf` and `mosquitto.acl` into the data
//! directory, runs mosquitto as a child process, forwards its log, restarts it with backoff
//! when it dies, restarts or reloads it on request, and stops it when fleetd stops. The child
//! dies with fleetd even on SIGKILL (PR_SET_PDEATHSIG). This module never speaks MQTT itself.
//!
//! Access: mutual TLS only. A client must present a certificate from fleetd's CA that is not on
//! the CRL; its CN becomes its MQTT user name and also its client id (whatever id the client
//! asked for), so one device cannot knock another off by connecting under its client id. The
//! ACL gives user `fleetd` all of `telekiosk/#` and a device (`dev-…`) exactly its own topics,
//! each in the one direction the protocol uses: it reads `config`, `cmd` and `visit/in` (which
//! only fleetd writes) and writes `state`, `visit/out` and `cmd/result` (which only fleetd
//! reads); any other topic, its own or not, is neither delivered to it nor accepted from it.
//! So a device holds at most three retained messages, cannot replace its own retained config,
//! and cannot send itself commands. A packet larger than [`MAX_PACKET_BYTES`] (the limit of
//! fleetd's own client too) makes the broker drop the client that sent it, so nothing the
//! broker passes on can be too large for fleetd; queues and connections are bounded (see
//! [`write_config`]). Retained messages stay available to everyone: mosquitto 2.0.11's
//! `retain_available` is global, and fleetd (config) and kiosks (state) both need them; the
//! ACL is what bounds them.
//!
//! Measured with mosquitto 2.0.11: SIGHUP re-reads `crlfile`, so a revoked certificate is
//! refused from the next handshake on, but connections already open stay open; so a
//! revocation restarts the broker ([`BrokerControl::restart`]) and every client reconnects.
//! Also, `acl_file` never refuses a SUBSCRIBE (the SUBACK grants it); what it refuses is
//! delivery: a device subscribed to another's topics receives nothing from them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use crate::mqtt::MAX_PACKET_BYTES;
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

/// The ACL: each device only its own topics, each one way; fleetd everywhere under
/// `telekiosk/`. The topics are `telekiosk_protocol::topics`' (tested below).
pub const ACL: &str = "# Written by fleetd at every start: edits are lost.\n\
    # The user name is the client certificate's CN (use_identity_as_username).\n\
    user fleetd\n\
    topic readwrite telekiosk/#\n\
    \n\
    # An operator's tool (a certificate the CA holder made with CN fleetd-operator): fleetd's\n\
    # rights without taking fleetd's client id (the client id is the user name).\n\
    user fleetd-operator\n\
    topic readwrite telekiosk/#\n\
    \n\
    # A device (%u = its id) reads what fleetd sends it and writes what fleetd reads; nothing else.\n\
    pattern read telekiosk/v1/dev/%u/config\n\
    pattern read telekiosk/v1/dev/%u/cmd\n\
    pattern read telekiosk/v1/dev/%u/visit/in\n\
    pattern write telekiosk/v1/dev/%u/state\n\
    pattern write telekiosk/v1/dev/%u/visit/out\n\
    pattern write telekiosk/v1/dev/%u/cmd/result\n";

/// QoS 1 messages the broker holds for one client beyond those in flight, and their bytes.
/// fleetd's own client is the busiest: every kiosk's retained state arrives when it subscribes,
/// and a fleet of thousands sends bursts. A kiosk receives only what fleetd sends it. Beyond
/// these the broker drops (and logs) rather than grow without bound.
const MAX_QUEUED_MESSAGES: usize = 20_000;
/// Queued bytes per client: a full queue of fleetd's at about 3 KiB a message.
const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;
/// Unacknowledged QoS 1 messages in flight to one client (mosquitto's default is 20): enough
/// for fleetd to keep up with the fleet without one round trip per message.
const MAX_INFLIGHT_MESSAGES: usize = 100;
/// Connections on the listener: a fleet of thousands of kiosks and fleetd, with room for
/// reconnections racing the old connection's time-out. Beyond it a flood of connections
/// (each a TLS handshake and buffers) is refused rather than exhausting memory or file
/// descriptors (mosquitto needs one per connection: raise `LimitNOFILE` to match).
const MAX_CONNECTIONS: usize = 10_000;

/// Writes the broker configuration `path` for one TLS listener on `listen` requiring client
/// certificates checked against `crl`, and its ACL file `acl` (both in the data directory).
pub fn write_config(
    path: &Path,
    acl: &Path,
    listen: SocketAddr,
    pki: &Pki,
    crl: &Path,
) -> Result<(), BrokerError> {
    let (path, acl) = (path.to_path_buf(), acl.to_path_buf());
    std::fs::write(&acl, ACL)
        .map_err(|source| BrokerError::Config { path: acl.clone(), source })?;
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
         max_connections {MAX_CONNECTIONS}\n\
         # A client that sends a larger packet is dropped: fleetd's own client takes no more.\n\
         max_packet_size {MAX_PACKET_BYTES}\n\
         max_queued_messages {MAX_QUEUED_MESSAGES}\n\
         max_queued_bytes {MAX_QUEUED_BYTES}\n\
         max_inflight_messages {MAX_INFLIGHT_MESSAGES}\n\
         # Mutual TLS only: the certificate's CN is the user name the ACL is keyed on, and the\n\
         # client id, so no client can take over another's session.\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         use_username_as_clientid true\n\
         allow_anonymous false\n\
         crlfile {crl}\n\
         acl_file {acl}\n",
        port = listen.port(),
        host = listen.ip(),
        ca = pki.ca_cert.display(),
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        crl = crl.display(),
        acl = acl.display(),
    );
    std::fs::write(&path, conf)
        .map_err(|source| BrokerError::Config { path: path.clone(), source })?;
    Ok(())
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
    control: BrokerControl,
    task: JoinHandle<()>,
}

/// What the supervisor can be asked to do while mosquitto runs.
#[derive(Debug, Clone, Copy)]
enum Control {
    /// SIGHUP: re-read the CRL and ACL; open connections stay.
    Reload,
    /// Stop and start again at once: every connection is closed and must be made again.
    Restart,
}

/// A cheap handle for asking the running broker to reload or restart.
#[derive(Debug, Clone)]
pub struct BrokerControl(mpsc::UnboundedSender<Control>);

impl BrokerControl {
    /// Re-reads the CRL and ACL files (SIGHUP): new connections see them.
    pub fn reload(&self) {
        let _ = self.0.send(Control::Reload);
    }

    /// Restarts mosquitto at once, closing every open connection (clients reconnect with their
    /// backoff). The only way mosquitto 2.0 drops a client whose certificate was just revoked.
    pub fn restart(&self) {
        let _ = self.0.send(Control::Restart);
    }
}

impl Broker {
    /// Starts `exe -c conf` and a task that restarts it whenever it dies. Fails if the first
    /// start fails (missing binary); later failures are logged and retried.
    pub fn start(exe: &Path, conf: &Path) -> Result<Self, BrokerError> {
        let (running_tx, running) = watch::channel(false);
        let child = spawn(exe, conf, &running_tx)?;
        let (stop, stopped) = watch::channel(false);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (exe, conf) = (exe.to_path_buf(), conf.to_path_buf());
        let task = tokio::spawn(supervise(exe, conf, child, running_tx, stopped, control_rx));
        Ok(Self { stop, running, control: BrokerControl(control_tx), task })
    }

    /// A handle for reloading or restarting the broker.
    pub fn control(&self) -> BrokerControl {
        self.control.clone()
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
        // A finished task may already have been awaited by the supervisor: never poll it again.
        if !self.task.is_finished() {
            let _ = self.task.await;
        }
    }

    /// The supervisor task, for fleetd's own supervisor to watch (see `supervise`).
    pub fn task_mut(&mut self) -> &mut JoinHandle<()> {
        &mut self.task
    }
}

async fn supervise(
    exe: PathBuf,
    conf: PathBuf,
    mut child: Child,
    running: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let mut delay = backoff;
        loop {
            tokio::select! {
                status = child.wait() => {
                    let ran = started.elapsed();
                    match status {
                        Ok(s) => tracing::error!(target: "mosquitto", "mosquitto exited ({s}) after {ran:.1?}"),
                        Err(e) => tracing::error!(target: "mosquitto", "cannot wait for mosquitto: {e}"),
                    }
                    if ran >= STABLE_RUN {
                        backoff = Duration::from_secs(1);
                        delay = backoff;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    break;
                }
                Some(cmd) = control.recv() => match cmd {
                    Control::Reload => {
                        if let Some(pid) = child.id() {
                            tracing::info!(target: "mosquitto", "reloading mosquitto (SIGHUP)");
                            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGHUP);
                        }
                    }
                    Control::Restart => {
                        tracing::info!(target: "mosquitto", "restarting mosquitto to close revoked connections");
                        running.send_replace(false);
                        terminate(child).await;
                        delay = Duration::ZERO;
                        // A child that will not start is retried with the usual backoff.
                        match spawn(&exe, &conf, &running) {
                            Ok(c) => {
                                child = c;
                                continue;
                            }
                            Err(e) => tracing::error!(target: "mosquitto", "{e}"),
                        }
                        break;
                    }
                },
                _ = stopped(&mut stop) => return terminate(child).await,
            }
        }
        // Start again after a delay, unless told to stop meanwhile.
        loop {
            tracing::info!(target: "mosquitto", "restarting mosquitto in {delay:?}");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut stop) => return,
            }
            match spawn(&exe, &conf, &running) {
                Ok(c) => break child = c,
                Err(e) => tracing::error!(target: "mosquitto", "{e}"),
            }
            delay = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
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
    use crate::data_dir::DataDir;

    #[test]
    fn the_config_has_one_mutual_tls_listener_with_a_crl_an_acl_and_no_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let files = DataDir::of(&dir);
        let (pki, crl) = (files.pki(), files.crl());
        let listen = "127.0.0.1:18883".parse().unwrap();
        let (path, acl) = (files.broker_config(), files.broker_acl());
        write_config(&path, &acl, listen, &pki, &crl).unwrap();
        let conf = std::fs::read_to_string(&path);
        let conf = conf.unwrap();
        assert_eq!(conf.matches("\nlistener ").count(), 1);
        for line in [
            "listener 18883 127.0.0.1",
            &format!("cafile {}", pki.ca_cert.display()),
            &format!("keyfile {}", pki.server_key.display()),
            &format!("crlfile {}", crl.display()),
            &format!("acl_file {}", acl.display()),
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            "allow_anonymous false",
            &format!("max_packet_size {MAX_PACKET_BYTES}"),
            "max_connections 10000",
            "max_queued_messages 20000",
            "max_inflight_messages 100",
            "persistence false",
            "log_dest stderr",
        ] {
            assert!(conf.lines().any(|l| l == line), "missing {line:?} in\n{conf}");
        }
        assert!(!conf.contains("anonymous true") && !conf.contains("require_certificate false"));
        let runs_as_root = nix::unistd::geteuid().is_root();
        assert_eq!(conf.lines().any(|l| l == "user root"), runs_as_root);
    }

    #[test]
    fn the_acl_gives_each_device_its_own_topics_one_way_and_fleetd_all_of_telekiosk() {
        let dir = tempfile::tempdir().unwrap();
        let files = DataDir::of(&dir);
        let (acl, conf) = (files.broker_acl(), files.broker_config());
        let listen = "127.0.0.1:18883".parse().unwrap();
        write_config(&conf, &acl, listen, &files.pki(), &files.crl()).unwrap();
        let acl = std::fs::read_to_string(acl).unwrap();
        let rules: Vec<&str> =
            acl.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        use telekiosk_protocol::topics;
        let pattern = |access: &str, topic: String| format!("pattern {access} {topic}");
        assert_eq!(
            rules,
            [
                "user fleetd".to_string(),
                "topic readwrite telekiosk/#".to_string(),
                "user fleetd-operator".to_string(),
                "topic readwrite telekiosk/#".to_string(),
                pattern("read", topics::config("%u")),
                pattern("read", topics::cmd("%u")),
                pattern("read", topics::visit_in("%u")),
                pattern("write", topics::state("%u")),
                pattern("write", topics::visit_out("%u")),
                pattern("write", topics::cmd_result("%u")),
            ]
        );
    }
}

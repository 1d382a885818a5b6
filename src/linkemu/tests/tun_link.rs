//! The `linkemu tun` binary between two fresh network namespaces: readiness, delay both ways,
//! a runtime change on stdin, the summary on SIGTERM and the logs. Needs root, like the bench
//! that uses it; without it the test fails and says why.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use linkemu::netns;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Kills the link and deletes the namespaces and logs, however the test ends.
struct Cleanup {
    namespaces: [String; 2],
    child: Option<Child>,
    log_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            if netns::exists(ns) {
                let _ = netns::delete(ns);
            }
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// The next JSON line on the link's stdout with `"event": event`, within `timeout`.
fn wait_for_event(lines: &Receiver<String>, event: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!("no `{event}` event from linkemu within {timeout:?} (its stderr is above)")
        });
        let value: Value = serde_json::from_str(&line).expect("linkemu prints JSON lines");
        if value["event"] == event {
            return value;
        }
        assert_ne!(value["event"], "error", "linkemu refused a command: {line}");
    }
}

/// One UDP round trip from `client` (in A) to `server` (in B) and back.
fn round_trip(client: &UdpSocket, server: &UdpSocket) -> Duration {
    let started = Instant::now();
    client.send_to(b"ping", server.local_addr().unwrap()).unwrap();
    let mut buf = [0; 16];
    let (len, from) = server.recv_from(&mut buf).expect("B received nothing through the link");
    server.send_to(&buf[..len], from).unwrap();
    client.recv_from(&mut buf).expect("A received no reply through the link");
    started.elapsed()
}

/// A UDP socket bound to `addr` inside `ns`.
fn socket_in(ns: &str, addr: SocketAddr) -> UdpSocket {
    let socket = netns::run_in(ns, || UdpSocket::bind(addr)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket
}

fn send_line(stdin: &mut ChildStdin, line: &str) {
    writeln!(stdin, "{line}").expect("writing to linkemu's stdin");
}

#[test]
fn tun_link_delays_both_ways_and_takes_changes() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to create network namespaces and TUN devices (the bench and CI run \
         as root); run `cargo test` as root"
    );
    assert!(Path::new("/dev/net/tun").exists(), "/dev/net/tun is missing: no TUN support");

    // Unique names and a unique /24 per test process.
    let pid = std::process::id();
    let namespaces = [format!("tk-test-a-{pid}"), format!("tk-test-b-{pid}")];
    let subnet = (pid % 250 + 1) as u8;
    let (addr_a, addr_b) = (Ipv4Addr::new(10, 77, subnet, 1), Ipv4Addr::new(10, 77, subnet, 2));
    let log_dir = std::env::temp_dir().join(format!("linkemu-tun-logs-{pid}"));
    let mut cleanup = Cleanup { namespaces: namespaces.clone(), child: None, log_dir };
    for ns in &namespaces {
        if netns::exists(ns) {
            netns::delete(ns).unwrap(); // left over by a crashed run with the same pid
        }
    }

    let child = Command::new(env!("CARGO_BIN_EXE_linkemu"))
        .args(["tun", "--ns-a", &namespaces[0], "--ns-b", &namespaces[1]])
        .args(["--addr-a", &addr_a.to_string(), "--addr-b", &addr_b.to_string()])
        .args(["--a-to-b", "delay=100ms", "--b-to-a", "delay=100ms", "--seed", "1"])
        .arg("--log-dir")
        .arg(&cleanup.log_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting linkemu");
    let child = cleanup.child.insert(child);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines_tx, lines) = mpsc::channel();
    thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|l| lines_tx.send(l)));
    wait_for_event(&lines, "ready", Duration::from_secs(20));

    let server = socket_in(&namespaces[1], SocketAddr::from((addr_b, 7000)));
    let client = socket_in(&namespaces[0], SocketAddr::from((addr_a, 0)));
    for i in 0..3 {
        let rtt = round_trip(&client, &server);
        assert!(rtt >= Duration::from_millis(200), "round trip {i}: {rtt:?}, expected ≥ 200 ms");
        assert!(rtt < Duration::from_millis(600), "round trip {i}: {rtt:?}, expected ~200 ms");
    }

    send_line(&mut stdin, "both delay=0ms");
    let applied = wait_for_event(&lines, "applied", Duration::from_secs(5));
    assert_eq!(applied["a_to_b"], "rate=unlimited,delay=0ms,jitter=0ms,loss=0,queue=200ms");
    let rtt = round_trip(&client, &server);
    assert!(rtt < Duration::from_millis(100), "round trip after `both delay=0ms`: {rtt:?}");

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let summary = wait_for_event(&lines, "summary", Duration::from_secs(5));
    for direction in ["a_to_b", "b_to_a"] {
        let delivered = summary[direction]["packets_delivered"].as_u64().unwrap();
        assert!(delivered >= 4, "{direction}: {delivered} packets delivered: {summary}");
        assert_eq!(summary[direction]["dropped_random"], 0, "{summary}");
    }
    assert!(child.wait().unwrap().success(), "linkemu exited with an error");
    for file in ["a-to-b.csv", "b-to-a.csv", "summary.json"] {
        assert!(cleanup.log_dir.join(file).exists(), "{file} not written");
    }
}

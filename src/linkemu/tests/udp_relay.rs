//! The UDP relay between two plain sockets on loopback: delay, loss, rate, unknown senders.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use linkemu::{LinkProfile, UdpRelay};

const MS: Duration = Duration::from_millis(1);

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    socket
}

fn addr(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().unwrap()
}

/// A datagram of `size` bytes carrying the time it was sent, since `epoch`.
fn stamped(epoch: Instant, size: usize) -> Vec<u8> {
    let mut datagram = vec![0; size];
    datagram[..16].copy_from_slice(&epoch.elapsed().as_nanos().to_le_bytes());
    datagram
}

/// How long ago (relative to `epoch`) a datagram made by [`stamped`] was sent.
fn age(epoch: Instant, datagram: &[u8]) -> Duration {
    let sent = u128::from_le_bytes(datagram[..16].try_into().unwrap());
    epoch.elapsed() - Duration::from_nanos(sent as u64)
}

/// Receives on `socket` until it times out after `done` is set; returns each datagram's age
/// on arrival and its size, and checks every sender is `expected_from`.
fn receive_until_quiet(
    socket: UdpSocket,
    epoch: Instant,
    done: Arc<AtomicBool>,
    expected_from: SocketAddr,
    echo: bool,
) -> thread::JoinHandle<Vec<(Instant, Duration, usize)>> {
    thread::spawn(move || {
        let mut received = Vec::new();
        let mut buf = [0; 2048];
        loop {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    assert_eq!(from, expected_from, "datagram from an unexpected address");
                    received.push((Instant::now(), age(epoch, &buf[..len]), len));
                    if echo {
                        socket.send_to(&buf[..len], from).unwrap();
                    }
                }
                Err(_) if done.load(Ordering::SeqCst) => return received,
                Err(_) => {}
            }
        }
    })
}

#[test]
fn delay_and_loss_both_ways() {
    let (a, b) = (socket(), socket());
    let profile: LinkProfile = "delay=50ms,loss=10%".parse().unwrap();
    let relay = UdpRelay::start(addr(&a), addr(&b), profile.clone(), profile, 7).unwrap();
    let (a_sees_b, b_sees_a) = (relay.a_sees_b(), relay.b_sees_a());
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let b_side = receive_until_quiet(b, epoch, done.clone(), b_sees_a, true);
    let a_side = receive_until_quiet(a.try_clone().unwrap(), epoch, done.clone(), a_sees_b, false);

    for _ in 0..1000 {
        a.send_to(&stamped(epoch, 200), a_sees_b).unwrap();
        thread::sleep(MS);
    }
    done.store(true, Ordering::SeqCst);
    let one_way = b_side.join().unwrap();
    let round_trips = a_side.join().unwrap();

    let lost_a_to_b = 1000 - one_way.len();
    assert!((60..=140).contains(&lost_a_to_b), "A→B lost {lost_a_to_b} of 1000, expected ~100");
    let lost_b_to_a = one_way.len() - round_trips.len();
    let expected = one_way.len() / 10;
    assert!(lost_b_to_a.abs_diff(expected) <= 40, "B→A lost {lost_b_to_a}, expected ~{expected}");
    let (min, max) = min_max(one_way.iter().map(|r| r.1));
    assert!(min >= 50 * MS && max < 150 * MS, "one way {min:?}..{max:?}, expected ≥ 50 ms");
    let (min, max) = min_max(round_trips.iter().map(|r| r.1));
    assert!(min >= 100 * MS && max < 300 * MS, "round trip {min:?}..{max:?}, expected ≥ 100 ms");

    let (a_to_b, b_to_a) = relay.link().summary();
    assert_eq!(a_to_b.packets_in, 1000);
    assert_eq!(a_to_b.dropped_random as usize, lost_a_to_b);
    assert_eq!(b_to_a.packets_in as usize, one_way.len());
    assert_eq!(a_to_b.bytes_delivered, a_to_b.packets_delivered * (200 + 28), "IP+UDP counted");
}

#[test]
fn a_rate_limited_relay_delivers_no_faster_than_its_rate() {
    let (a, b) = (socket(), socket());
    let rate = 200_000;
    let profile = LinkProfile { rate_bps: Some(rate), ..LinkProfile::clean() };
    let relay = UdpRelay::start(addr(&a), addr(&b), profile.clone(), profile, 1).unwrap();
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let b_side = receive_until_quiet(b, epoch, done.clone(), relay.b_sees_a(), false);

    // 1000-byte datagrams every 20 ms: 400 kb/s for 3 s, twice the link's rate.
    for _ in 0..150 {
        a.send_to(&stamped(epoch, 1000), relay.a_sees_b()).unwrap();
        thread::sleep(20 * MS);
    }
    done.store(true, Ordering::SeqCst);
    let received = b_side.join().unwrap();

    let (first, last) = (received.first().unwrap().0, received.last().unwrap().0);
    let bits: usize = received[1..].iter().map(|r| r.2 * 8).sum();
    let bps = bits as f64 / (last - first).as_secs_f64();
    assert!(bps <= rate as f64, "received {bps:.0} b/s on a {rate} b/s link");
    assert!(bps > rate as f64 * 0.8, "received only {bps:.0} b/s on a {rate} b/s link");

    let (a_to_b, _) = relay.link().summary();
    assert!(a_to_b.dropped_queue_full > 0, "no overflow at twice the rate: {a_to_b:?}");
    for (i, bps) in a_to_b.delivered_bps.iter().enumerate() {
        assert!(*bps <= rate + 8 * 1028, "window {i}: {bps} b/s");
    }
    assert!(a_to_b.queue_delay_p95_ms <= 200.0, "{a_to_b:?}");
    assert!(a_to_b.longest_offered_above(rate) >= 3, "offered {:?}", a_to_b.offered_bps);
}

#[test]
fn unknown_senders_are_dropped_and_drop_is_prompt() {
    let (a, b, stranger) = (socket(), socket(), socket());
    let relay =
        UdpRelay::start(addr(&a), addr(&b), LinkProfile::clean(), LinkProfile::clean(), 1).unwrap();
    stranger.send_to(b"let me in", relay.a_sees_b()).unwrap();
    stranger.send_to(b"me too", relay.b_sees_a()).unwrap();
    a.send_to(b"hello", relay.a_sees_b()).unwrap();
    let mut buf = [0; 64];
    let (len, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..len], from), (&b"hello"[..], relay.b_sees_a()));
    assert!(b.recv_from(&mut buf).is_err(), "B received a stranger's datagram");
    assert!(a.recv_from(&mut buf).is_err(), "A received a stranger's datagram");
    let (a_to_b, b_to_a) = relay.link().summary();
    assert_eq!((a_to_b.packets_in, b_to_a.packets_in), (1, 0));

    let dir = std::env::temp_dir().join(format!("linkemu-udp-logs-{}", std::process::id()));
    relay.link().write_logs(&dir).unwrap();
    let csv = std::fs::read_to_string(dir.join("a-to-b.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    std::fs::remove_dir_all(&dir).unwrap();

    let started = Instant::now();
    drop(relay);
    assert!(started.elapsed() < Duration::from_millis(500), "drop took {:?}", started.elapsed());
}

fn min_max(values: impl Iterator<Item = Duration>) -> (Duration, Duration) {
    values.fold((Duration::MAX, Duration::ZERO), |(min, max), v| (min.min(v), max.max(v)))
}

//! A UDP relay between two peers on this machine, for WebRTC tests in one process.
//!
//! The relay has two sockets on loopback. `sa` is "B as A sees it": datagrams arriving on it
//! from A go through the A→B model and leave from `sb` to B. `sb` is "A as B sees it": datagrams
//! arriving on it from B go through B→A and leave from `sa` to A. Datagrams from any other
//! sender are dropped. To put the relay between two ICE agents, give each the other's candidate
//! rewritten with [`rewrite_candidate`] to [`UdpRelay::a_sees_b`] / [`UdpRelay::b_sees_a`].
//!
//! Sizes counted against the rate include the IP and UDP headers (28 bytes on IPv4, 48 on
//! IPv6), as a real link's rate does and as the TUN adapter's packets do.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use crate::engine::{Engine, POLL, Route, Sink, Source};
use crate::model::LinkProfile;

/// A running relay; dropping it stops its threads within about 50 ms.
pub struct UdpRelay {
    engine: Engine,
    a_sees_b: SocketAddr,
    b_sees_a: SocketAddr,
}

impl UdpRelay {
    /// Starts a relay between `a` and `b`, the real addresses of the two peers (from their ICE
    /// host candidates). A→B random choices draw from `seed`, B→A from a seed derived from it.
    pub fn start(
        a: SocketAddr,
        b: SocketAddr,
        a_to_b: LinkProfile,
        b_to_a: LinkProfile,
        seed: u64,
    ) -> io::Result<Self> {
        let sa = bind_loopback_like(a)?;
        let sb = bind_loopback_like(b)?;
        let (a_sees_b, b_sees_a) = (sa.local_addr()?, sb.local_addr()?);
        let routes = [
            Route {
                source: Box::new(PeerSource { socket: sa.try_clone()?, peer: a }),
                sink: Box::new(PeerSink { socket: sb.try_clone()?, peer: b }),
                overhead: header_bytes(b),
            },
            Route {
                source: Box::new(PeerSource { socket: sb, peer: b }),
                sink: Box::new(PeerSink { socket: sa, peer: a }),
                overhead: header_bytes(a),
            },
        ];
        let engine = Engine::start([a_to_b, b_to_a], seed, routes)?;
        Ok(Self { engine, a_sees_b, b_sees_a })
    }

    /// The address A must use for B.
    pub fn a_sees_b(&self) -> SocketAddr {
        self.a_sees_b
    }

    /// The address B must use for A.
    pub fn b_sees_a(&self) -> SocketAddr {
        self.b_sees_a
    }

    /// The link itself: change its profiles live, read its per-packet log and summary.
    pub fn link(&self) -> &Engine {
        &self.engine
    }
}

/// A socket on the loopback address of `peer`'s family, with a read timeout.
fn bind_loopback_like(peer: SocketAddr) -> io::Result<UdpSocket> {
    let ip = match peer {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let socket = UdpSocket::bind((ip, 0))?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// IP and UDP header bytes of a datagram sent to `to`.
fn header_bytes(to: SocketAddr) -> usize {
    if to.is_ipv4() { 20 + 8 } else { 40 + 8 }
}

/// Datagrams from one peer; anything else is ignored.
struct PeerSource {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl Source for PeerSource {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.socket.recv_from(buf) {
            Ok((len, from)) if from == self.peer => Ok(Some(len)),
            Ok(_) => Ok(None),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Ok(None)
            }
            // An ICMP error from an earlier send (peer gone): not this socket's problem.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Datagrams to one peer.
struct PeerSink {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl Sink for PeerSink {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.socket.send_to(packet, self.peer).map(drop)
    }
}

/// Fields of an ICE candidate line (`candidate:1 1 UDP 2015363327 127.0.0.1 40321 typ host`,
/// with or without a leading `a=`): foundation, component, transport, priority, address, port,
/// `typ`, type, then extensions.
fn candidate_fields(candidate: &str) -> Option<Vec<&str>> {
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    let is_candidate = fields.first()?.trim_start_matches("a=").starts_with("candidate:");
    let is_udp = fields.get(2)?.eq_ignore_ascii_case("udp");
    (is_candidate && is_udp && fields.len() >= 8 && fields[6] == "typ").then_some(fields)
}

/// The address of a UDP ICE candidate; `None` for TCP candidates, unparsable lines and
/// candidates whose address is not an IP (mDNS `.local` names).
pub fn candidate_addr(candidate: &str) -> Option<SocketAddr> {
    let fields = candidate_fields(candidate)?;
    Some(SocketAddr::new(fields[4].parse().ok()?, fields[5].parse().ok()?))
}

/// The UDP host candidate `candidate` with its address and port replaced by `to`; `None` for
/// other candidates (TCP, server- or peer-reflexive, relayed) and unparsable lines. Fields are
/// re-joined with single spaces.
pub fn rewrite_candidate(candidate: &str, to: SocketAddr) -> Option<String> {
    let mut fields = candidate_fields(candidate)?;
    if fields[7] != "host" {
        return None;
    }
    let (ip, port) = (to.ip().to_string(), to.port().to_string());
    fields[4] = &ip;
    fields[5] = &port;
    Some(fields.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1 1 UDP 2015363327 127.0.0.1 40321 typ host";

    #[test]
    fn candidate_addresses() {
        let cases = [
            (HOST, Some("127.0.0.1:40321")),
            ("a=candidate:2 1 udp 2015363327 ::1 5000 typ host\r\n", Some("[::1]:5000")),
            (
                "candidate:3 1 UDP 1677722111 203.0.113.9 6000 typ srflx raddr 0.0.0.0 rport 0",
                Some("203.0.113.9:6000"),
            ),
            ("candidate:4 1 TCP 1010827775 127.0.0.1 9 typ host tcptype active", None),
            ("candidate:5 1 UDP 2015363327 4f2a.local 40321 typ host", None),
            ("candidate:6 1 UDP 2015363327 127.0.0.1", None),
            ("a=ice-ufrag:abcd", None),
        ];
        for (candidate, expected) in cases {
            let expected = expected.map(|a| a.parse::<SocketAddr>().unwrap());
            assert_eq!(candidate_addr(candidate), expected, "{candidate}");
        }
    }

    #[test]
    fn only_udp_host_candidates_are_rewritten() {
        let to: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let rewritten = rewrite_candidate(&format!("{HOST} generation 0 ufrag x"), to);
        let expected = "candidate:1 1 UDP 2015363327 127.0.0.1 5555 typ host generation 0 ufrag x";
        assert_eq!(rewritten.as_deref(), Some(expected));
        let srflx = "candidate:3 1 UDP 1677722111 203.0.113.9 6000 typ srflx raddr 0.0.0.0 rport 0";
        assert_eq!(rewrite_candidate(srflx, to), None);
        let tcp = "candidate:4 1 TCP 1010827775 127.0.0.1 9 typ host tcptype active";
        assert_eq!(rewrite_candidate(tcp, to), None);
        assert_eq!(
            rewrite_candidate("a=candidate:1 1 udp 1 ::1 7 typ host", to).unwrap(),
            "a=candidate:1 1 udp 1 127.0.0.1 5555 typ host"
        );
    }
}

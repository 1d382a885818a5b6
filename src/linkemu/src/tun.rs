//! Two network namespaces joined through the link model by TUN devices (the mahimahi design),
//! for browser benches. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
//!
//! Each namespace gets a point-to-point TUN device (`tk0` by default) with its own address and
//! the other side's as peer (`/32`), plus loopback up. This process reads IP packets from one
//! device, passes them through that direction's model and writes them to the other. The devices
//! disappear when the [`TunLink`] is dropped; the namespaces stay (see [`crate::netns`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::engine::{Engine, POLL, Route, Sink, Source};
use crate::model::LinkProfile;
use crate::netns;

/// What to build: two namespaces, their addresses, the device and both profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct TunConfig {
    /// Namespace of side A (created if missing).
    pub ns_a: String,
    /// Namespace of side B (created if missing).
    pub ns_b: String,
    /// A's address on its device.
    pub addr_a: Ipv4Addr,
    /// B's address on its device.
    pub addr_b: Ipv4Addr,
    /// Device name in both namespaces.
    pub device: String,
    /// Device MTU.
    pub mtu: u32,
    /// Profile from A to B.
    pub a_to_b: LinkProfile,
    /// Profile from B to A.
    pub b_to_a: LinkProfile,
    /// Seed of A→B; B→A uses a seed derived from it.
    pub seed: u64,
}

impl TunConfig {
    /// A clean link between `ns_a` and `ns_b` on device `tk0`, MTU 1500, seed 1.
    pub fn new(ns_a: &str, ns_b: &str, addr_a: Ipv4Addr, addr_b: Ipv4Addr) -> Self {
        Self {
            ns_a: ns_a.to_owned(),
            ns_b: ns_b.to_owned(),
            addr_a,
            addr_b,
            device: "tk0".to_owned(),
            mtu: 1500,
            a_to_b: LinkProfile::clean(),
            b_to_a: LinkProfile::clean(),
            seed: 1,
        }
    }
}

/// A running TUN link; dropping it stops forwarding and removes both devices.
pub struct TunLink {
    engine: Engine,
    config: TunConfig,
}

impl TunLink {
    /// Creates the namespaces if missing, creates and configures the devices, and starts
    /// forwarding. Fails if a device of that name is already open (another link running).
    pub fn start(config: TunConfig) -> io::Result<Self> {
        let TunConfig { ns_a, ns_b, addr_a, addr_b, device, .. } = &config;
        let mut devices = Vec::new();
        for (ns, local, peer) in [(ns_a, addr_a, addr_b), (ns_b, addr_b, addr_a)] {
            netns::ensure(ns)?;
            let tun = netns::run_in(ns, || open_tun(device))
                .map_err(|e| io::Error::new(e.kind(), format!("{device} in `{ns}`: {e}")))?;
            configure(ns, device, config.mtu, *local, *peer)?;
            devices.push(Arc::new(tun));
        }
        let (a, b) = (devices[0].clone(), devices[1].clone());
        let route = |from: &Arc<File>, to: &Arc<File>| Route {
            source: Box::new(TunSource(from.clone())),
            sink: Box::new(TunSink(to.clone())),
            overhead: 0, // TUN packets are whole IP packets already
        };
        let routes = [route(&a, &b), route(&b, &a)];
        let profiles = [config.a_to_b.clone(), config.b_to_a.clone()];
        let engine = Engine::start(profiles, config.seed, routes)?;
        Ok(Self { engine, config })
    }

    /// The configuration the link was started with (profiles as at start).
    pub fn config(&self) -> &TunConfig {
        &self.config
    }

    /// The link itself: change its profiles live, read its per-packet log and summary.
    pub fn link(&self) -> &Engine {
        &self.engine
    }
}

/// `struct ifreq` as TUNSETIFF reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

const _: () = assert!(size_of::<IfReq>() >= size_of::<libc::ifreq>());

/// Opens a new TUN device `name` (IP packets, no packet-info header) in the calling thread's
/// network namespace.
fn open_tun(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        let message = format!("device name `{name}` must be 1 to 15 bytes");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("opening /dev/net/tun: {e}")))?;
    let mut request = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _rest: [0; 22],
    };
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the descriptor is open, and TUNSETIFF reads and writes at most
    // `size_of::<libc::ifreq>()` bytes, which `request` (laid out like ifreq) covers.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request as *mut IfReq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("TUNSETIFF: {e}")));
    }
    Ok(file)
}

/// Gives `device` in `ns` its address and peer, MTU, and brings it and loopback up.
fn configure(ns: &str, device: &str, mtu: u32, local: Ipv4Addr, peer: Ipv4Addr) -> io::Result<()> {
    let (mtu, local, peer) = (mtu.to_string(), local.to_string(), format!("{peer}/32"));
    netns::ip(&["-n", ns, "link", "set", "dev", device, "mtu", &mtu])?;
    netns::ip(&["-n", ns, "addr", "replace", &local, "peer", &peer, "dev", device])?;
    netns::ip(&["-n", ns, "link", "set", "dev", device, "up"])?;
    netns::ip(&["-n", ns, "link", "set", "dev", "lo", "up"])
}

/// Packets read from a TUN device, waiting at most [`POLL`] for each.
struct TunSource(Arc<File>);

impl Source for TunSource {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let timeout = PollTimeout::try_from(POLL).expect("POLL fits a poll timeout");
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(None),
            Ok(_) => {}
            Err(errno) => return Err(errno.into()),
        }
        (&*self.0).read(buf).map(Some)
    }
}

/// Packets written to a TUN device.
struct TunSink(Arc<File>);

impl Sink for TunSink {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        (&*self.0).write(packet).map(drop)
    }
}

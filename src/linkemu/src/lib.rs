//! Link emulator for media tests and benches: delay, jitter, loss and rate per direction,
//! seeded and reproducible, in user space (this project's kernels have no `netem`).
//!
//! - [`model`]: the pure model of one direction ([`Direction`]), driven by a [`LinkProfile`]
//!   (presets and `key=value` specs, see [`spec`]); it logs every packet ([`PacketRecord`]) and
//!   summarises the log ([`Summary`]).
//! - [`udp`]: [`UdpRelay`], a relay between two UDP peers on loopback (two GStreamer webrtcbins
//!   in one test process), with helpers to rewrite ICE candidates to point at it.
//! - [`tun`]: [`TunLink`], two network namespaces joined by TUN devices through the model, for
//!   browser benches (root only); driven by the `linkemu` binary.
//! - [`control`]: runtime changes (`a-to-b rate=300k`) and timed schedules of them.

pub mod control;
mod engine;
pub mod model;
pub mod netns;
pub mod record;
pub mod spec;
pub mod tun;
pub mod udp;

pub use control::{Change, Target};
pub use engine::Engine;
pub use model::{DEFAULT_QUEUE, Direction, LinkProfile, Loss, PRESETS};
pub use record::{DropReason, PacketRecord, Summary, Verdict};
pub use spec::SpecError;
pub use tun::{TunConfig, TunLink};
pub use udp::{UdpRelay, candidate_addr, rewrite_candidate};

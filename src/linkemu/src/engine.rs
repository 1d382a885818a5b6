//! The threads that move packets through the two [`Direction`]s of a link, shared by the UDP
//! and TUN adapters.
//!
//! Each direction has a receiver thread (reads a packet, asks the model, queues it with its
//! delivery time) and a delivery thread (sleeps on a condition variable until the head of the
//! queue is due, then sends it). The model never reorders, so a FIFO queue is enough. Sources
//! time out every [`POLL`], so dropping the [`Engine`] stops every thread within about that.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::control::Change;
use crate::model::{Direction, LinkProfile};
use crate::record::Verdict;
use crate::record::{PacketRecord, Summary, write_csv};
use crate::spec::SpecError;

/// Longest a source may block, and so the longest a thread takes to notice a stop.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// Largest packet read: a whole UDP datagram or IP packet.
const MAX_PACKET: usize = 65_536;

/// Names of the two directions, as used in file names and messages.
pub(crate) const NAMES: [&str; 2] = ["a-to-b", "b-to-a"];

/// Where a direction's packets come from.
pub(crate) trait Source: Send + 'static {
    /// Waits up to about [`POLL`] for a packet and returns its length, or `None` if there was
    /// none (or it is to be ignored, e.g. from an unknown sender).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
}

/// Where a direction's packets go.
pub(crate) trait Sink: Send + 'static {
    /// Sends one packet.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
}

/// One direction's end points and the per-packet bytes its wire adds to what the source reads.
pub(crate) struct Route {
    pub source: Box<dyn Source>,
    pub sink: Box<dyn Sink>,
    pub overhead: usize,
}

/// A running two-direction link, as the UDP relay and the TUN link run it: its profiles can be
/// changed live and its per-packet log read. Dropping it stops its threads; queued packets are
/// discarded.
pub struct Engine {
    lanes: [Arc<Lane>; 2],
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

struct Lane {
    state: Mutex<LaneState>,
    due: Condvar,
}

struct LaneState {
    model: Direction,
    /// Accepted packets and their delivery times, in delivery order.
    queue: VecDeque<(Instant, Vec<u8>)>,
}

fn lock(lane: &Lane) -> MutexGuard<'_, LaneState> {
    lane.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Engine {
    /// Starts the threads of both directions. A→B draws from `seed`, B→A from a seed derived
    /// from it.
    pub(crate) fn start(
        profiles: [LinkProfile; 2],
        seed: u64,
        routes: [Route; 2],
    ) -> io::Result<Self> {
        let epoch = Instant::now();
        let seeds = [seed, seed ^ 0x9e37_79b9_7f4a_7c15];
        let stop = Arc::new(AtomicBool::new(false));
        let mut engine = Engine {
            lanes: [0, 1].map(|i| {
                let model = Direction::new(profiles[i].clone(), seeds[i]);
                let state = Mutex::new(LaneState { model, queue: VecDeque::new() });
                Arc::new(Lane { state, due: Condvar::new() })
            }),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        // On a spawn error the engine is dropped, which stops the threads already started.
        for (i, route) in routes.into_iter().enumerate() {
            let Route { source, sink, overhead } = route;
            let (lane, stopped) = (engine.lanes[i].clone(), stop.clone());
            engine.spawn(i, "rx", move || receive(&lane, epoch, &stopped, source, overhead, i))?;
            let (lane, stopped) = (engine.lanes[i].clone(), stop.clone());
            engine.spawn(i, "tx", move || deliver(&lane, &stopped, sink, i))?;
        }
        Ok(engine)
    }

    fn spawn(
        &mut self,
        index: usize,
        role: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        let name = format!("linkemu-{}-{role}", NAMES[index]);
        self.threads.push(thread::Builder::new().name(name).spawn(body)?);
        Ok(())
    }

    /// The current profiles, A→B then B→A.
    pub fn profiles(&self) -> (LinkProfile, LinkProfile) {
        let [a, b] = self.lanes.each_ref().map(|lane| lock(lane).model.profile().clone());
        (a, b)
    }

    /// Replaces both profiles.
    pub fn set_profiles(&self, a_to_b: LinkProfile, b_to_a: LinkProfile) {
        lock(&self.lanes[0]).model.set_profile(a_to_b);
        lock(&self.lanes[1]).model.set_profile(b_to_a);
    }

    /// Applies `change` to the current profile of each direction it names.
    pub fn apply(&self, change: &Change) -> Result<(), SpecError> {
        for &i in change.target.directions() {
            let mut state = lock(&self.lanes[i]);
            let mut profile = state.model.profile().clone();
            change.apply_to(&mut profile)?;
            state.model.set_profile(profile);
        }
        Ok(())
    }

    /// Summaries of both directions so far, A→B then B→A.
    pub fn summary(&self) -> (Summary, Summary) {
        let [a, b] = self.lanes.each_ref().map(|lane| lock(lane).model.summary());
        (a, b)
    }

    /// Writes `a-to-b.csv` and `b-to-a.csv` (see [`write_csv`]) and `summary.json` into `dir`,
    /// creating it if needed.
    pub fn write_logs(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        for (lane, name) in self.lanes.iter().zip(NAMES) {
            let records: Vec<PacketRecord> = lock(lane).model.log().to_vec();
            let file = io::BufWriter::new(fs::File::create(dir.join(format!("{name}.csv")))?);
            write_csv(&records, file)?;
        }
        let (a_to_b, b_to_a) = self.summary();
        let json = serde_json::json!({ "a_to_b": a_to_b, "b_to_a": b_to_a });
        fs::write(dir.join("summary.json"), format!("{json:#}\n"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for lane in &self.lanes {
            let _guard = lock(lane); // so a deliverer between its check and its wait sees it
            lane.due.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Receiver thread: offers every packet to the model and queues the delivered ones.
fn receive(
    lane: &Lane,
    epoch: Instant,
    stop: &AtomicBool,
    mut source: Box<dyn Source>,
    overhead: usize,
    index: usize,
) {
    let mut buf = vec![0; MAX_PACKET];
    let mut reported = false;
    while !stop.load(Ordering::Relaxed) {
        let len = match source.recv(&mut buf) {
            Ok(Some(len)) => len,
            Ok(None) => continue,
            Err(error) => {
                if !std::mem::replace(&mut reported, true) {
                    eprintln!("linkemu: {}: receive failed (reported once): {error}", NAMES[index]);
                }
                thread::sleep(POLL);
                continue;
            }
        };
        let now = Instant::now();
        let mut state = lock(lane);
        let verdict = state.model.offer(now - epoch, len + overhead);
        // A delivery time beyond what an Instant can hold (absurd delays) is never reached.
        if let Verdict::Deliver { at } = verdict
            && let Some(due) = epoch.checked_add(at)
        {
            let was_idle = state.queue.is_empty();
            state.queue.push_back((due, buf[..len].to_vec()));
            if was_idle {
                lane.due.notify_one();
            }
        }
    }
}

/// Delivery thread: sends each queued packet when it is due.
fn deliver(lane: &Lane, stop: &AtomicBool, mut sink: Box<dyn Sink>, index: usize) {
    let mut reported = false;
    let mut state = lock(lane);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = match state.queue.front().map(|(at, _)| *at) {
            Some(at) if at <= now => {
                let (_, packet) = state.queue.pop_front().expect("the queue has a head");
                drop(state);
                if let Err(error) = sink.send(&packet)
                    && !std::mem::replace(&mut reported, true)
                {
                    eprintln!("linkemu: {}: send failed (reported once): {error}", NAMES[index]);
                }
                state = lock(lane);
                continue;
            }
            Some(at) => at - now,
            None => POLL,
        };
        state = lane.due.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
    }
}

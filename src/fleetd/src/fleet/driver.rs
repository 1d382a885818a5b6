//! Runs fleet administration inside `fleetd serve`: stores what kiosks report (in batches),
//! notices changes made by the CLI (the registry generation, polled) or the API (a poke), and
//! then steps live rollouts, sends queued commands, sends a newly approved device its group's
//! current config, and, after every new broker connection, re-sends each device's retained
//! config and every command sent but not answered yet (and a device's unanswered commands
//! when it reports its state, at most every `RESEND_AFTER_SECS`). The database work runs on
//! blocking threads ([`crate::fleet::step`]); this module only schedules it and hands publishes
//! to MQTT.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use telekiosk_protocol::device::Presence;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::fleet::step::RESEND_AFTER_SECS;
use crate::fleet::{Fleet, FleetError};
use crate::fleet::{FromKiosk, Publish};
use crate::pki::signing::Signer;
use crate::store::unix_now;

/// How often the generation is read (how soon a CLI change is picked up).
const POLL: Duration = Duration::from_millis(250);
/// Live rollouts are stepped at least this often (their time-outs need it).
const STEP: Duration = Duration::from_secs(1);
/// After a poke, how long to wait for more reports before stepping.
const COALESCE: Duration = Duration::from_millis(20);
/// Reports stored in one transaction at most.
const BATCH: usize = 2000;

/// A handle to wake the driver after an API change.
#[derive(Debug, Clone)]
pub struct Driver {
    poke: Arc<Notify>,
}

impl Driver {
    /// Steps rollouts and sends commands now rather than at the next poll.
    pub fn poke(&self) {
        self.poke.notify_one();
    }
}

/// Starts the driver's two tasks: storing kiosk reports from `inbox`, and stepping.
pub fn spawn(
    fleet: Arc<Fleet>,
    signer: Arc<Signer>,
    inbox: mpsc::Receiver<FromKiosk>,
    publish: mpsc::Sender<Publish>,
    connected: watch::Receiver<u64>,
) -> (Driver, [JoinHandle<()>; 2]) {
    let poke = Arc::new(Notify::new());
    let resend = (signer.clone(), publish.clone());
    let ingest = tokio::spawn(ingest(fleet.clone(), inbox, poke.clone(), resend));
    let run = tokio::spawn(run(fleet, signer, publish, connected, poke.clone()));
    (Driver { poke }, [ingest, run])
}

async fn ingest(
    fleet: Arc<Fleet>,
    mut inbox: mpsc::Receiver<FromKiosk>,
    poke: Arc<Notify>,
    (signer, publish): (Arc<Signer>, mpsc::Sender<Publish>),
) {
    // When each device was last looked at for unanswered commands.
    let mut looked: HashMap<String, Instant> = HashMap::new();
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match inbox.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        // Devices that say they are online are connected and subscribed: a command they
        // missed can reach them now. Each is looked at once per RESEND_AFTER_SECS at most.
        let now = Instant::now();
        let every = Duration::from_secs(RESEND_AFTER_SECS as u64);
        looked.retain(|_, at| now.duration_since(*at) < every);
        let mut online = HashSet::new();
        for msg in &batch {
            if let FromKiosk::State { device_id, state: Ok(s) } = msg
                && s.presence == Presence::Online
                && !looked.contains_key(device_id)
            {
                looked.insert(device_id.clone(), now);
                online.insert(device_id.clone());
            }
        }
        let (fleet, signer) = (fleet.clone(), signer.clone());
        let work = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            let changed = fleet.ingest(batch, now)?;
            let resend = if online.is_empty() {
                Vec::new()
            } else {
                fleet.resend_commands_to(&online, &signer, now)?
            };
            Ok::<_, FleetError>((changed, resend))
        });
        match work.await {
            Ok(Ok((changed, resend))) => {
                if changed {
                    poke.notify_one();
                }
                for p in resend {
                    if publish.send(p).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(e)) => tracing::error!("cannot store kiosk reports: {e}"),
            Err(e) => tracing::error!("the task storing kiosk reports failed: {e}"),
        }
    }
}

async fn run(
    fleet: Arc<Fleet>,
    signer: Arc<Signer>,
    publish: mpsc::Sender<Publish>,
    mut connected: watch::Receiver<u64>,
    poke: Arc<Notify>,
) {
    let mut generation = None;
    let mut last_step = Instant::now();
    let mut live = usize::MAX;
    let mut republished = 0;
    loop {
        let poked = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            _ = poke.notified() => true,
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
        };
        if poked {
            // Acknowledgements come in bursts: take them in one step.
            tokio::time::sleep(COALESCE).await;
        }
        let connection = *connected.borrow_and_update();
        let republish = connection != republished;
        let now_generation = fleet.store().read(crate::store::devices::generation).ok();
        let changed = now_generation != generation;
        let due = republish
            || poked
            || changed
            || (live > 0 && last_step.elapsed() >= STEP)
            || last_step.elapsed() >= STEP * 10;
        if !due {
            continue;
        }
        generation = now_generation;
        last_step = Instant::now();
        let (f, s) = (fleet.clone(), signer.clone());
        let was_live = live;
        let work =
            tokio::task::spawn_blocking(move || step(&f, &s, republish, changed, was_live)).await;
        let out = match work {
            Ok(Ok((out, still_live))) => {
                live = still_live;
                if republish {
                    republished = connection;
                }
                out
            }
            Ok(Err(e)) => {
                tracing::error!("fleet step failed: {e}; retrying");
                continue;
            }
            Err(e) => {
                tracing::error!("the fleet step task failed: {e}; retrying");
                continue;
            }
        };
        for p in out {
            if publish.send(p).await.is_err() {
                return;
            }
        }
    }
}

/// One round of work: what to publish, and how many rollouts are still live. Devices that
/// joined late are looked for only when the registry changed or a rollout ended.
fn step(
    fleet: &Fleet,
    signer: &Signer,
    republish: bool,
    changed: bool,
    was_live: usize,
) -> Result<(Vec<Publish>, usize), FleetError> {
    let (now, started) = (unix_now(), Instant::now());
    let mut out = if republish {
        let mut all = fleet.republish_all()?;
        tracing::info!(devices = all.len(), "re-sending every device's retained config");
        all.extend(fleet.resend_commands(signer, now)?);
        all
    } else {
        Vec::new()
    };
    // Update rollouts queue their install commands; send_commands signs and sends them.
    fleet.step_updates(now)?;
    out.extend(fleet.send_commands(signer, now)?);
    out.extend(fleet.step_rollouts(signer, now)?);
    let live = fleet.live_rollouts()? + fleet.live_updates()?;
    if changed || republish || live < was_live {
        out.extend(fleet.catch_up(signer, now)?);
    }
    tracing::debug!(took = ?started.elapsed(), publishes = out.len(), live, "fleet step");
    Ok((out, live))
}

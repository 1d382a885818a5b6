//! The hub: one task that owns the signalling [`Router`], feeds it what the MQTT and WebSocket
//! adapters receive, and delivers its outputs (to kiosks via MQTT, to consoles via their
//! WebSocket task, notes to the log and the audit trail). Nothing else touches the router, so
//! it needs no lock. The router only says what happened ([`Note`]); the hub records it, and
//! rate-limits refusals per sender so a flood of bad messages cannot flood either.
//! Before a kiosk's `Waiting` or `InVisit` reaches the router, the hub replaces its clinic and
//! room by those of the device's enrolment record ([`Places`], read on the blocking pool).
//! A `Waiting` with a visit code is checked here too, against the store on the blocking pool
//! and the back-off of [`Tries`] ([`take_up_code`]): refused, the kiosk hears why and the
//! router never sees it; taken up, the router gets [`Input::CodeWaiting`]. The digits are
//! never logged nor audited.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use telekiosk_protocol::console::ServerToConsole;
use telekiosk_protocol::visit::{KioskToServer, KioskToServer as K, ServerToKiosk};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::access::Scope;
use crate::audit::{self, Entry};
use crate::signalling::{
    ConnId, Input, Note, NoteLevel, Output, RefusalLimit, Router, Verdict, place_from_registry,
};
use crate::store;
use crate::turn::IceConfig;
use crate::visit_codes::VisitCodes;
use crate::visit_codes::rules::Tries;

mod codes;
use codes::{CodeAsk, take_up_code};

/// Messages a console's WebSocket task may have queued before it is cut off as too slow.
pub const CONSOLE_QUEUE: usize = 256;
/// A message for a kiosk: its device id and what to publish on its `visit/in`.
pub type KioskMessage = (String, ServerToKiosk);

/// What the adapters tell the hub.
#[derive(Debug)]
pub enum HubMsg {
    /// Something for the router.
    Input(Input),
    /// A console connection opened: where to send its messages, then `ConsoleConnected`.
    ConsoleAttached { conn: ConnId, user: String, scope: Scope, tx: mpsc::Sender<ServerToConsole> },
}

/// Where a device is, by its enrolment record: `(clinic, room)`, or `None` if the registry does
/// not know it. Blocking (SQLite): the hub calls it on the blocking pool.
pub type Places = Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

/// A device's enrolled public key (SEC1), or `None` if the registry does not know it. Blocking
/// (SQLite): the hub calls it on the blocking pool, for offers only.
pub type DeviceKeys = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// The adapters' side of the hub: cheap to clone.
#[derive(Debug, Clone)]
pub struct HubHandle {
    tx: mpsc::Sender<HubMsg>,
    next_conn: Arc<AtomicU64>,
}

impl HubHandle {
    /// A fresh id for a console connection.
    pub fn next_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Hands a message to the hub; waits if the hub is busy. Fails only once the hub has stopped.
    pub async fn send(&self, msg: HubMsg) -> Result<(), HubStopped> {
        self.tx.send(msg).await.map_err(|_| HubStopped)
    }
}

/// The hub task has stopped (fleetd is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the signalling hub has stopped")]
pub struct HubStopped;

/// Starts the hub task. Messages for kiosks go to `to_kiosk`; the task ends when every
/// [`HubHandle`] is dropped.
/// Audit-worthy notes go to `to_trail`.
pub fn spawn(
    to_kiosk: mpsc::Sender<KioskMessage>,
    ice: IceConfig,
    places: Places,
    keys: DeviceKeys,
    codes: Arc<VisitCodes>,
    to_trail: mpsc::Sender<Entry>,
) -> (HubHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let handle = HubHandle { tx, next_conn: Arc::new(AtomicU64::new(1)) };
    let notes = Notes { trail: to_trail, refusals: RefusalLimit::default() };
    let stores = Stores { places, keys, codes, tries: Tries::default() };
    (handle, tokio::spawn(run(rx, to_kiosk, ice, stores, notes)))
}

/// What the hub reads before the router sees a kiosk's message: places, visit codes, and the
/// back-off after wrong codes.
struct Stores {
    places: Places,
    keys: DeviceKeys,
    codes: Arc<VisitCodes>,
    tries: Tries,
}

async fn run(
    mut rx: mpsc::Receiver<HubMsg>,
    to_kiosk: mpsc::Sender<KioskMessage>,
    ice: IceConfig,
    mut stores: Stores,
    mut notes: Notes,
) {
    let mut router = Router::new();
    let mut consoles: HashMap<ConnId, mpsc::Sender<ServerToConsole>> = HashMap::new();
    // Visits whose console or kiosk went away are ended when their grace runs out.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = tick.tick() => {
                crate::supervise::injected_panic("signalling hub");
                Some(HubMsg::Input(Input::Tick))
            }
        };
        let Some(msg) = msg else { break };
        let input = match msg {
            HubMsg::ConsoleAttached { conn, user, scope, tx } => {
                consoles.insert(conn, tx);
                Input::ConsoleConnected { conn, user, scope }
            }
            HubMsg::Input(Input::FromKiosk { device_id, msg: Ok(msg) }) => {
                match placed(&stores.places, &device_id, msg).await {
                    Ok(K::Waiting { visit_id, clinic, room, language, visit_code: Some(code) }) => {
                        let ask = CodeAsk { device_id, visit_id, clinic, room, language, code };
                        match take_up_code(&mut stores, &mut notes, ask).await {
                            Ok(input) => input,
                            Err(refusal) => {
                                deliver(refusal, &mut consoles, &to_kiosk, &mut notes, &stores);
                                continue;
                            }
                        }
                    }
                    Ok(K::Help { visit_id }) => {
                        let place = place_of(&stores.places, &device_id).await;
                        Input::KioskHelp { device_id, visit_id, place }
                    }
                    msg => Input::FromKiosk { device_id, msg },
                }
            }
            HubMsg::Input(input) => input,
        };
        let gone = match &input {
            Input::ConsoleDisconnected { conn } => Some(*conn),
            _ => None,
        };
        let device_key = match &input {
            Input::FromKiosk { device_id, msg: Ok(K::Offer { .. }) } => {
                key_of(&stores.keys, device_id).await
            }
            _ => None,
        };
        for output in router.handle(input, Instant::now()) {
            let output = with_device_key(with_ice(output, &ice), device_key.as_deref());
            deliver(output, &mut consoles, &to_kiosk, &mut notes, &stores);
        }
        if let Some(conn) = gone {
            consoles.remove(&conn);
        }
    }
}

/// The kiosk's message with the clinic and room of its enrolment record (see
/// [`place_from_registry`]); the registry is read only for the messages that name a place.
async fn placed(
    places: &Places,
    device_id: &str,
    msg: KioskToServer,
) -> Result<KioskToServer, telekiosk_protocol::DecodeError> {
    if !matches!(msg, K::Waiting { .. } | K::InVisit { .. }) {
        return Ok(msg);
    }
    place_from_registry(msg, place_of(places, device_id).await)
}

/// The device's `(clinic, room)` by its enrolment record, read on the blocking pool.
async fn place_of(places: &Places, device_id: &str) -> Option<(String, String)> {
    let (places, id) = (places.clone(), device_id.to_string());
    tokio::task::spawn_blocking(move || places(&id)).await.ok().flatten()
}

/// The device's enrolled key, base64url, read on the blocking pool.
async fn key_of(keys: &DeviceKeys, device_id: &str) -> Option<String> {
    use base64::Engine as _;
    let (keys, id) = (keys.clone(), device_id.to_string());
    let key = tokio::task::spawn_blocking(move || keys(&id)).await.ok().flatten()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key))
}

/// Adds the kiosk's enrolled key to the offer the router relays, so the console can check the
/// kiosk's signature (the router decides who is told; only the hub reads the registry).
fn with_device_key(output: Output, key: Option<&str>) -> Output {
    match (output, key) {
        (
            Output::ToConsole { conn, msg: ServerToConsole::Offer { visit_id, sdp, e2ee, .. } },
            Some(key),
        ) => {
            let msg = ServerToConsole::Offer { visit_id, sdp, e2ee, device_key: key.to_string() };
            Output::ToConsole { conn, msg }
        }
        (other, _) => other,
    }
}

/// Adds the ICE servers, with TURN credentials minted for this visit and side, to the messages
/// that carry them (the router decides who is told; only the hub holds the TURN secret).
fn with_ice(output: Output, ice: &IceConfig) -> Output {
    let now = store::unix_now();
    match output {
        Output::ToKiosk { device_id, msg: ServerToKiosk::Queued { visit_id, .. } } => {
            let ice = ice.settings(&format!("{visit_id}-kiosk"), now);
            Output::ToKiosk { device_id, msg: ServerToKiosk::Queued { visit_id, ice } }
        }
        Output::ToConsole { conn, msg: ServerToConsole::Joined { visit_id, clinic, room, .. } } => {
            let ice = ice.settings(&format!("{visit_id}-console"), now);
            Output::ToConsole { conn, msg: ServerToConsole::Joined { visit_id, clinic, room, ice } }
        }
        other => other,
    }
}

fn deliver(
    output: Output,
    consoles: &mut HashMap<ConnId, mpsc::Sender<ServerToConsole>>,
    to_kiosk: &mpsc::Sender<KioskMessage>,
    notes: &mut Notes,
    stores: &Stores,
) {
    match output {
        Output::ToKiosk { device_id, msg } => {
            if let Err(e) = to_kiosk.try_send((device_id, msg)) {
                let (device_id, msg) = e.into_inner();
                tracing::warn!(device = %device_id, visit = %msg.visit_id(), "MQTT outbox full: message to kiosk dropped");
            }
        }
        Output::ToConsole { conn, msg } => {
            let Some(tx) = consoles.get(&conn) else { return };
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg) {
                // Dropping its sender closes the socket; the router then hears it disconnect.
                tracing::warn!(conn = conn.0, "console too slow to keep up: disconnecting it");
                consoles.remove(&conn);
            }
        }
        Output::Note(note) => notes.take(&note, Instant::now()),
        Output::ReleaseCode { code_id, visit_id } => {
            let codes = stores.codes.clone();
            tokio::task::spawn_blocking(move || match codes.give_back(&code_id, &visit_id) {
                Ok(true) => {
                    let why = "visit code given back: the visit ended before a clinician joined";
                    tracing::info!(code = %code_id, visit = %visit_id, "{why}");
                }
                Ok(false) => {}
                Err(e) => tracing::error!(code = %code_id, "cannot give a visit code back: {e}"),
            });
        }
    }
}

/// Where the router's notes go: the log, and the audit trail for the audit-worthy ones.
struct Notes {
    trail: mpsc::Sender<Entry>,
    refusals: RefusalLimit,
}

impl Notes {
    /// Queues `entry` for the trail without waiting; a refusal counts against its actor's
    /// budget ([`RefusalLimit`]) like a refused message does. A full queue loses it, loudly.
    fn record(&mut self, entry: Entry, now: Instant) {
        let refused = entry.outcome != audit::chain::Outcome::Ok;
        if refused && self.refusals.check(&entry.actor, now) == Verdict::Drop {
            return;
        }
        if let Err(e) = self.trail.try_send(entry) {
            tracing::error!(target: "fleetd::audit", "AUDIT RECORD LOST: {e}");
        }
    }

    fn take(&mut self, n: &Note, now: Instant) {
        if n.level == NoteLevel::Warn {
            let sender =
                n.user.as_deref().map(audit::user).or(n.device_id.as_deref().map(audit::device));
            match self.refusals.check(sender.as_deref().unwrap_or("-"), now) {
                Verdict::Drop => return,
                Verdict::Log { suppressed: 0 } => {}
                Verdict::Log { suppressed } => {
                    tracing::warn!(target: "fleetd::audit", sender = sender.as_deref().unwrap_or("-"), suppressed, "refusals not logged (over the limit)");
                }
            }
        }
        if n.level == NoteLevel::Debug {
            return log(n);
        }
        // The trail logs a line per record, rendered from it.
        if let Err(e) = self.trail.try_send(entry_of(n)) {
            tracing::error!(target: "fleetd::audit", "AUDIT RECORD LOST: {e}");
        }
    }
}

/// The audit record of a router note: who (the clinician, else the kiosk), what, which visit.
pub fn entry_of(n: &Note) -> Entry {
    let actor = match (&n.user, &n.device_id) {
        (Some(user), _) => audit::user(user),
        (None, Some(device)) => audit::device(device),
        (None, None) => "system".into(),
    };
    let place = match (&n.user, &n.device_id) {
        (Some(_), _) => "console".to_string(),
        (None, Some(device)) => device.clone(),
        (None, None) => "fleetd".into(),
    };
    let action = match n.what.as_str() {
        "kiosk is waiting" => audit::VISIT_QUEUED,
        "clinician joined" => audit::VISIT_JOINED,
        w if w.starts_with("visit over:") => audit::VISIT_ENDED,
        w if w.starts_with("kiosk asked for staff help") => audit::HELP_REQUESTED,
        w if w.starts_with("staff answered a call for help") => audit::HELP_ANSWERED,
        _ => audit::VISIT_EVENT,
    };
    let object = n.visit_id.as_deref().map_or_else(|| "-".to_string(), |v| format!("visit {v}"));
    let mut entry = Entry::new(&actor, action, &object, &place);
    if let (Some(_), Some(device)) = (&n.user, &n.device_id) {
        entry.object =
            audit::chain::escape(&format!("{object} kiosk {device}"), audit::chain::MAX_FIELD);
    }
    let entry = entry.detail(&n.what);
    match n.level {
        NoteLevel::Warn => entry.refused("refused"),
        _ => entry,
    }
}

/// Per-candidate chatter: debug lines only (not audit records).
fn log(n: &Note) {
    let field = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
    let (user, visit, device) = (field(&n.user), field(&n.visit_id), field(&n.device_id));
    tracing::debug!(target: "fleetd::signalling", %user, %visit, %device, "{}", n.what);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signalling::Note;

    fn note(level: NoteLevel, what: &str, user: Option<&str>, device: Option<&str>) -> Note {
        Note {
            level,
            what: what.into(),
            user: user.map(Into::into),
            visit_id: Some("v1".into()),
            device_id: device.map(Into::into),
        }
    }

    #[test]
    fn a_visit_note_becomes_a_record_of_who_what_and_which_visit() {
        let joined =
            entry_of(&note(NoteLevel::Audit, "clinician joined", Some("alice"), Some("dev-a")));
        assert_eq!((joined.actor.as_str(), joined.action), ("user:alice", audit::VISIT_JOINED));
        assert_eq!(joined.object, "visit v1 kiosk dev-a");
        let queued = entry_of(&note(NoteLevel::Audit, "kiosk is waiting", None, Some("dev-a")));
        assert_eq!((queued.actor.as_str(), queued.place.as_str()), ("device:dev-a", "dev-a"));
        assert_eq!(queued.action, audit::VISIT_QUEUED);
        let over = entry_of(&note(
            NoteLevel::Audit,
            "visit over: 42 s since it was queued",
            Some("alice"),
            Some("dev-a"),
        ));
        assert_eq!(
            (over.action, over.detail.as_str()),
            (audit::VISIT_ENDED, "visit over: 42 s since it was queued")
        );
        let refused = entry_of(&note(
            NoteLevel::Warn,
            "refused kiosk message: wrong type",
            None,
            Some("dev-a"),
        ));
        assert_eq!(refused.outcome, audit::chain::Outcome::Refused("refused".into()));
    }
}

//! The `signalling/` folder: the pure router (this file, with [`note`], [`kiosk`], what kiosks
//! say, and [`console`], what consoles ask) and the [`hub`] task
//! that runs it. Visit signalling: the queue of waiting kiosks, which console owns which visit, and the relay
//! of SDP/ICE between a kiosk and the one console that owns its visit.
//!
//! Pure: no I/O, no clock, no logging. [`Router::handle`] turns one [`Input`] into the
//! [`Output`]s the adapters deliver (MQTT to kiosks, WebSocket to consoles, log lines). It never
//! sends a message of one device's visit to another device, and never puts SDP or candidate
//! contents into a [`Note`]: only ids and sizes.
//!
//! Scope ([`crate::access`]): a console only sees the waiting visits of its user's clinics and
//! joins only those; a role that may not join visits (fleet admin, auditor) gets no queue.
//! Emergency access (`EmergencyJoin`, with a reason) lets a clinician join a visit of another
//! clinic, noted loudly in one place ([`emergency_note`]). The clinic and room of a visit are
//! the device's enrolment record's ([`place_from_registry`], applied by the hub), never the
//! kiosk's own words.
//!
//! A visit may come with a visit code ([`Input::CodeWaiting`]: the hub checked the code): it
//! waits for the clinician who made the code, and only their console lists it; if it ends
//! before anyone joined, the code is given back ([`Output::ReleaseCode`]). Waiting kiosks are
//! told their place ([`position`]); calls for help from kiosks go to the consoles of their
//! clinic's staff ([`help`]).

use std::time::{Duration, Instant};

use telekiosk_protocol::DecodeError;
use telekiosk_protocol::config::Language;
use telekiosk_protocol::console::{ConsoleToServer, ServerToConsole, WaitingVisit};
use telekiosk_protocol::device::{DeviceState, Presence};
use telekiosk_protocol::e2ee::SecurityCheck;
use telekiosk_protocol::visit::{EndReason, IceSettings, KioskToServer, ServerToKiosk};

use crate::access::{Permission, Scope};

mod console;
mod help;
pub mod hub;
mod kiosk;
mod note;
mod position;

use note::note;
pub use note::{Note, NoteLevel, RefusalLimit, Verdict, redact};

/// Identifies one console WebSocket connection for as long as it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Everything the router reacts to.
#[derive(Debug)]
pub enum Input {
    /// A message on a kiosk's `visit/out` topic, already decoded (or refused by the decoder).
    FromKiosk { device_id: String, msg: Result<KioskToServer, DecodeError> },
    /// A kiosk's retained state; `Offline` is its last will.
    KioskPresence { device_id: String, state: Result<DeviceState, DecodeError> },
    /// A signed-in user opened a console connection; `scope`: their role and clinics.
    ConsoleConnected { conn: ConnId, user: String, scope: Scope },
    /// A message from a console, already decoded (or refused by the decoder).
    FromConsole { conn: ConnId, msg: Result<ConsoleToServer, DecodeError> },
    /// A console connection closed.
    ConsoleDisconnected { conn: ConnId },
    /// A kiosk's `Waiting` whose visit code the hub took up: the visit waits for `clinician`
    /// (who made code `code_id`). Clinic and room are the registry's.
    CodeWaiting {
        device_id: String,
        visit_id: String,
        clinic: String,
        room: String,
        language: Option<Language>,
        code_id: String,
        clinician: String,
    },
    /// A kiosk's call for help, with its place from the registry (`None`: unknown there; the
    /// place of its visit is used if it has one).
    KioskHelp { device_id: String, visit_id: String, place: Option<(String, String)> },
    /// Time passes (a few times a minute): visits whose console or kiosk stayed away too long
    /// end.
    Tick,
}

/// Everything the router asks the adapters to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Publish on the kiosk's `visit/in` topic.
    ToKiosk { device_id: String, msg: ServerToKiosk },
    /// Send on the console's WebSocket.
    ToConsole { conn: ConnId, msg: ServerToConsole },
    /// Write a log line.
    Note(Note),
    /// Give visit code `code_id` back from `visit_id`: the visit ended before a clinician
    /// joined, so the patient may use it again until it expires.
    ReleaseCode { code_id: String, visit_id: String },
}

/// Shown when a console names a visit that is gone.
pub const NO_LONGER_WAITING: &str = "That visit is no longer waiting.";
/// Shown when a console acts on a visit it does not own.
pub const NOT_YOUR_VISIT: &str = "You are not in that visit.";
/// Shown when a console already in a visit tries to join another one.
pub const ALREADY_IN_A_VISIT: &str = "End your current visit before joining another.";
/// Shown when a clinician asks to join a visit of a clinic not assigned to them.
pub const NOT_YOUR_CLINIC: &str = "That visit is not in one of your clinics. To join it \
    anyway, use emergency access and give a reason.";
/// Shown to a console whose user's role does not join visits (fleet admin, auditor).
pub const MAY_NOT_JOIN: &str = "Your role may not see the waiting queue or join visits.";
/// Shown to a clinician who tries to join a visit that waits for another clinician's code.
pub const WAITS_FOR_ANOTHER: &str = "That patient came with a visit code and waits for the \
    clinician who gave it.";
/// Why the registry has no place for a kiosk that says it is waiting.
pub const NOT_ENROLLED: &str = "the device is not in the registry";

/// A visit whose clinician's console, or whose kiosk, lost its connection to fleetd is kept this
/// long for it to come back (media is peer to peer and may well still flow); then it ends.
pub const RESUME_GRACE: Duration = Duration::from_secs(60);

/// Candidates relayed per visit in each direction (kiosk → console, console → kiosk), review
/// L10: a visit needs a few dozen (host, reflexive and relay candidates, again after a resume);
/// a flood of them would make the other side probe arbitrary addresses. The rest are dropped,
/// with one warning per visit and direction.
pub const MAX_ICE_PER_VISIT: u32 = 100;

/// One visit fleetd knows of: waiting (no owner) or in progress (owned by one console).
#[derive(Debug)]
struct Visit {
    visit_id: String,
    device_id: String,
    clinic: String,
    room: String,
    since: Instant,
    /// The console in the visit now, if it is connected.
    owner: Option<ConnId>,
    /// Who joined the visit (`None`: still waiting). Only they may resume it.
    clinician: Option<String>,
    /// Since when the clinician's console, or the kiosk, has been away (the visit is kept for
    /// [`RESUME_GRACE`]).
    console_away: Option<Instant>,
    kiosk_away: Option<Instant>,
    /// Candidates relayed so far: from the kiosk, from the console ([`MAX_ICE_PER_VISIT`]).
    ice_relayed: [u32; 2],
    /// The language the patient chose on the kiosk.
    language: Option<Language>,
    /// The visit code the patient came with, and whom it waits for.
    code: Option<CodeHold>,
    /// The place in the queue the kiosk was last told ([`position`]).
    told_ahead: Option<u32>,
}

/// A visit code a waiting visit holds: its id and the clinician who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CodeHold {
    id: String,
    clinician: String,
}

/// Which way a candidate goes (an index into [`Visit::ice_relayed`]).
#[derive(Debug, Clone, Copy)]
enum IceFrom {
    Kiosk = 0,
    Console = 1,
}

impl Visit {
    /// Counts one more candidate from `from`; false once past [`MAX_ICE_PER_VISIT`] (the
    /// caller drops it), and `warn` is true for the first one dropped.
    fn count_ice(&mut self, from: IceFrom) -> (bool, bool) {
        let n = &mut self.ice_relayed[from as usize];
        *n = n.saturating_add(1);
        (*n <= MAX_ICE_PER_VISIT, *n == MAX_ICE_PER_VISIT + 1)
    }
}

impl Visit {
    fn new(
        visit_id: String,
        device_id: String,
        clinic: String,
        room: String,
        now: Instant,
    ) -> Self {
        let (owner, clinician, console_away, kiosk_away) = (None, None, None, None);
        Self {
            visit_id,
            device_id,
            clinic,
            room,
            since: now,
            owner,
            clinician,
            console_away,
            kiosk_away,
            ice_relayed: [0, 0],
            language: None,
            code: None,
            told_ahead: None,
        }
    }
}

/// A console that asked to resume a visit fleetd does not know (yet): fleetd restarted and the
/// kiosk has not said again that it is in it. Kept for [`RESUME_GRACE`].
#[derive(Debug)]
struct Claim {
    conn: ConnId,
    visit_id: String,
    since: Instant,
}

/// The signalling state: visits in arrival order and the consoles that are connected.
#[derive(Debug, Default)]
pub struct Router {
    visits: Vec<Visit>,
    consoles: Vec<(ConnId, String, Scope)>,
    claims: Vec<Claim>,
    /// Open calls for help, oldest first.
    alerts: Vec<help::Alert>,
    /// The time of the input being handled (how long an ending visit lasted).
    now: Option<Instant>,
}

impl Router {
    /// A router with no visits and no consoles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one input at time `now` and returns what to send and log, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        self.now = Some(now);
        let before: Vec<_> = self
            .consoles
            .iter()
            .map(|(c, user, scope)| (*c, self.queue_shape(user, scope), self.help_shape(scope)))
            .collect();
        let mut out = Vec::new();
        match input {
            Input::FromKiosk { device_id, msg: Ok(msg) } => {
                self.on_kiosk(device_id, msg, now, &mut out)
            }
            Input::FromKiosk { device_id, msg: Err(e) } => {
                self.kiosk_refused(&device_id, &e, &mut out)
            }
            Input::KioskPresence { device_id, state } => {
                self.presence(&device_id, state, now, &mut out)
            }
            Input::ConsoleConnected { conn, user, scope } => {
                let what = format!("console connected ({})", scope.role.as_str());
                out.push(note(NoteLevel::Audit, what).user(&user).into());
                let msg = if scope.may(Permission::JoinVisits) {
                    self.queue(&user, &scope, now)
                } else {
                    ServerToConsole::Error { message: MAY_NOT_JOIN.into() }
                };
                out.push(Output::ToConsole { conn, msg });
                if !self.help_shape(&scope).is_empty() {
                    out.push(Output::ToConsole { conn, msg: self.help_for(&scope, now) });
                }
                self.consoles.push((conn, user, scope));
            }
            Input::CodeWaiting {
                device_id,
                visit_id,
                clinic,
                room,
                language,
                code_id,
                clinician,
            } => {
                let mut v = Visit::new(visit_id, device_id, clinic, room, now);
                v.language = language;
                v.code = Some(CodeHold { id: code_id, clinician });
                self.waiting(v, &mut out)
            }
            Input::KioskHelp { device_id, visit_id, place } => {
                self.help(device_id, visit_id, place, now, &mut out)
            }
            Input::FromConsole { conn, msg } => self.on_console(conn, msg, now, &mut out),
            Input::ConsoleDisconnected { conn } => {
                let user = self.user(conn);
                if let Some(i) = self.visits.iter().position(|v| v.owner == Some(conn)) {
                    // Media is peer to peer: the call may well go on. Keep the visit for the
                    // console to come back.
                    let what = "clinician's console disconnected: visit kept for it to resume";
                    let v = &mut self.visits[i];
                    (v.owner, v.console_away) = (None, Some(now));
                    out.push(note(NoteLevel::Audit, what).user(&user).visit(v).into());
                }
                self.claims.retain(|c| c.conn != conn);
                out.push(note(NoteLevel::Audit, "console disconnected").user(&user).into());
                self.consoles.retain(|(c, ..)| *c != conn);
            }
            Input::Tick => {
                self.expire(now, &mut out);
                self.expire_help(now, &mut out);
            }
        }
        // Each console that was connected before this input hears of a change to its own queue
        // and to the calls for help it sees.
        for (conn, shape, help) in before {
            let Some((_, user, scope)) = self.consoles.iter().find(|(c, ..)| *c == conn) else {
                continue;
            };
            if scope.may(Permission::JoinVisits) && self.queue_shape(user, scope) != shape {
                out.push(Output::ToConsole { conn, msg: self.queue(user, scope, now) });
            }
            if self.help_shape(scope) != help {
                out.push(Output::ToConsole { conn, msg: self.help_for(scope, now) });
            }
        }
        self.tell_positions(&mut out);
        out
    }
    /// Ends the visits whose console or kiosk stayed away longer than [`RESUME_GRACE`], and
    /// forgets claims no kiosk answered.
    fn expire(&mut self, now: Instant, out: &mut Vec<Output>) {
        let late = |t: Option<Instant>| {
            t.is_some_and(|t| now.saturating_duration_since(t) >= RESUME_GRACE)
        };
        while let Some(i) =
            self.visits.iter().position(|v| late(v.console_away) || late(v.kiosk_away))
        {
            let v = &self.visits[i];
            if late(v.console_away) {
                let what = "clinician's console did not come back: visit ended";
                out.push(note(NoteLevel::Audit, what).visit(v).into());
                self.end(i, Some(EndReason::ClinicianLeft), None, out);
            } else {
                let what = "kiosk did not come back: visit ended";
                out.push(note(NoteLevel::Audit, what).visit(v).into());
                self.end(i, None, Some(EndReason::ConnectionLost), out);
            }
        }
        let (kept, stale): (Vec<Claim>, Vec<Claim>) = std::mem::take(&mut self.claims)
            .into_iter()
            .partition(|c| now.saturating_duration_since(c.since) < RESUME_GRACE);
        self.claims = kept;
        for c in stale {
            let what = "resume refused: the kiosk never said it was still in the visit";
            out.push(
                note(NoteLevel::Audit, what).user(&self.user(c.conn)).visit_id(&c.visit_id).into(),
            );
            let msg =
                ServerToConsole::Ended { visit_id: c.visit_id, reason: EndReason::ConnectionLost };
            out.push(Output::ToConsole { conn: c.conn, msg });
        }
    }

    /// Removes visit `i`, telling the kiosk and the owning console why, each if given a reason.
    fn end(
        &mut self,
        i: usize,
        to_kiosk: Option<EndReason>,
        to_console: Option<EndReason>,
        out: &mut Vec<Output>,
    ) {
        let v = &self.visits[i];
        let secs = self.now.map_or(0, |now| now.saturating_duration_since(v.since).as_secs());
        let over = note(NoteLevel::Audit, format!("visit over: {secs} s since it was queued"));
        let over = over.visit(v);
        out.push(match &v.clinician {
            Some(clinician) => over.user(clinician).into(),
            None => over.into(),
        });
        if let Some(reason) = to_kiosk {
            let v = &self.visits[i];
            let msg = ServerToKiosk::End { visit_id: v.visit_id.clone(), reason };
            out.push(Output::ToKiosk { device_id: v.device_id.clone(), msg });
        }
        if let Some(reason) = to_console {
            self.end_for_console(i, reason, out);
        }
        out.extend(release_code(&self.visits[i]));
        self.visits.remove(i);
    }

    fn end_for_console(&mut self, i: usize, reason: EndReason, out: &mut Vec<Output>) {
        let v = &self.visits[i];
        if let Some(conn) = v.owner {
            let msg = ServerToConsole::Ended { visit_id: v.visit_id.clone(), reason };
            out.push(Output::ToConsole { conn, msg });
        }
    }

    fn to_owner(
        &self,
        i: Option<usize>,
        msg: ServerToConsole,
        what: String,
        out: &mut Vec<Output>,
    ) {
        let v = &self.visits[i.expect("caller checked the visit")];
        match v.owner {
            Some(conn) => {
                let level = if matches!(msg, ServerToConsole::Ice { .. }) {
                    NoteLevel::Debug
                } else {
                    NoteLevel::Audit
                };
                out.push(note(level, what).user(&self.user(conn)).visit(v).into());
                out.push(Output::ToConsole { conn, msg });
            }
            None => out
                .push(note(NoteLevel::Warn, "no console owns this visit: dropped").visit(v).into()),
        }
    }

    fn user(&self, conn: ConnId) -> String {
        let found = self.consoles.iter().find(|(c, ..)| *c == conn);
        found.map_or_else(|| format!("unknown-console-{}", conn.0), |(_, u, _)| u.clone())
    }

    /// The role and clinics of a console's user; none for an unknown console.
    fn scope(&self, conn: ConnId) -> Scope {
        let found = self.consoles.iter().find(|(c, ..)| *c == conn);
        found.map_or_else(|| Scope::new(crate::access::Role::Auditor, [""; 0]), |(.., s)| s.clone())
    }

    /// The waiting visits the console of `user` (of `scope`) sees: those of its clinics, but
    /// not those that came with another clinician's visit code.
    fn waiting_for<'a>(
        &'a self,
        user: &'a str,
        scope: &'a Scope,
    ) -> impl Iterator<Item = &'a Visit> + 'a {
        self.visits.iter().filter(move |v| {
            v.clinician.is_none()
                && scope.reaches(&v.clinic)
                && v.code.as_ref().is_none_or(|c| c.clinician == user)
        })
    }

    /// What the console of `user` sees of the queue, to detect when it changed.
    fn queue_shape(&self, user: &str, scope: &Scope) -> Vec<(String, String, Option<Language>)> {
        let waiting = self.waiting_for(user, scope);
        waiting
            .map(|v| (v.visit_id.clone(), format!("{}\n{}", v.clinic, v.room), v.language))
            .collect()
    }

    fn queue(&self, user: &str, scope: &Scope, now: Instant) -> ServerToConsole {
        let waiting = self.waiting_for(user, scope).map(|v| WaitingVisit {
            visit_id: v.visit_id.clone(),
            device_id: v.device_id.clone(),
            clinic: v.clinic.clone(),
            room: v.room.clone(),
            waiting_secs: now.saturating_duration_since(v.since).as_secs(),
            language: v.language,
            // Only its clinician sees a visit with a code.
            for_you: v.code.is_some(),
        });
        ServerToConsole::Queue { waiting: waiting.collect() }
    }
}

/// Tells the kiosk its visit is queued; the hub adds the ICE servers and this visit's TURN
/// credentials on the way out (the router never holds a secret).
fn queued(v: &Visit) -> Output {
    let msg = ServerToKiosk::Queued { visit_id: v.visit_id.clone(), ice: IceSettings::default() };
    Output::ToKiosk { device_id: v.device_id.clone(), msg }
}

/// Gives back the visit code `v` holds, if no clinician joined it yet (once one did, the code
/// is spent).
fn release_code(v: &Visit) -> Option<Output> {
    let code = v.code.as_ref().filter(|_| v.clinician.is_none())?;
    Some(Output::ReleaseCode { code_id: code.id.clone(), visit_id: v.visit_id.clone() })
}

/// The one note of emergency access: a warning under `fleetd::audit`, with who, which visit
/// and device, and the reason given (validated printable text, at most 500 bytes).
fn emergency_note(user: &str, v: &Visit, reason: &str) -> Note {
    let whose = match &v.code {
        Some(code) if code.clinician != user => "that waits for another clinician's visit code",
        _ => "outside their clinics",
    };
    let what = format!(
        "EMERGENCY ACCESS: clinician joined a visit of {:?}, {whose}; reason: {:?}",
        v.clinic, reason
    );
    note(NoteLevel::Warn, what).user(user).visit(v)
}

/// The kiosk's `Waiting` or `InVisit` with the clinic and room of its enrolment record
/// (`place`, from the registry) in place of the ones it sent; other messages unchanged. A kiosk
/// the registry does not know is refused.
pub fn place_from_registry(
    msg: KioskToServer,
    place: Option<(String, String)>,
) -> Result<KioskToServer, DecodeError> {
    let needs_place = matches!(msg, KioskToServer::Waiting { .. } | KioskToServer::InVisit { .. });
    match (msg, place) {
        (msg, _) if !needs_place => Ok(msg),
        (_, None) => Err(DecodeError::Malformed(NOT_ENROLLED.into())),
        (KioskToServer::Waiting { visit_id, language, visit_code, .. }, Some((clinic, room))) => {
            Ok(KioskToServer::Waiting { visit_id, clinic, room, language, visit_code })
        }
        (KioskToServer::InVisit { visit_id, clinician, .. }, Some((clinic, room))) => {
            Ok(KioskToServer::InVisit { visit_id, clinic, room, clinician })
        }
        (msg, Some(_)) => Ok(msg),
    }
}

fn error_to(conn: ConnId, message: &str) -> Output {
    Output::ToConsole { conn, msg: ServerToConsole::Error { message: message.to_string() } }
}

fn visit_id_of(msg: &ConsoleToServer) -> &str {
    match msg {
        ConsoleToServer::Join { visit_id }
        | ConsoleToServer::EmergencyJoin { visit_id, .. }
        | ConsoleToServer::Answer { visit_id, .. }
        | ConsoleToServer::Ice { visit_id, .. }
        | ConsoleToServer::End { visit_id }
        | ConsoleToServer::Resume { visit_id }
        | ConsoleToServer::AnswerHelp { visit_id }
        | ConsoleToServer::SecurityRefused { visit_id, .. } => visit_id,
    }
}

/// A failed end-to-end check, as the audit trail says it.
fn check_name(check: SecurityCheck) -> &'static str {
    match check {
        SecurityCheck::KioskSignature => "the kiosk's key is not signed by its enrolled device key",
        SecurityCheck::Fingerprint => {
            "the offer's DTLS fingerprint is not the one the kiosk signed"
        }
        SecurityCheck::KeyConfirmation => "the two sides derived different keys",
        SecurityCheck::UnknownDevice => "fleetd does not know the kiosk's enrolled key",
    }
}

impl Note {
    fn visit(self, v: &Visit) -> Self {
        self.visit_id(&v.visit_id).device(&v.device_id)
    }
}

impl From<Note> for Output {
    fn from(note: Note) -> Self {
        Output::Note(note)
    }
}

#[cfg(test)]
mod tests;

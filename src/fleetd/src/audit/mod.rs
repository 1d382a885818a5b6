//! The audit trail: who did what, to what, when, from where, and whether it was done. Records
//! are hash-chained ([`chain`], the pure core) and kept in fleetd's database, append-only
//! ([`crate::store::audit`]); the chain head is also written to a file of its own
//! (`audit-head` in the data directory) and to the log, so a rewritten database is caught.
//! [`export`] renders records as CSV or JSON.
//!
//! [`Audit`] is the one handle every part records through, cheap to clone. Each append is one
//! IMMEDIATE transaction that reads the head and adds the next record, so appends from the
//! server and the CLI at once still form one chain. It never records passwords, TOTP codes,
//! tokens, keys, config contents or patient data: callers hand it ids and classes only.

pub mod chain;
pub mod export;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::data_dir::DataDir;
use crate::store::{self, Store, StoreError};
pub use chain::{Broken, Entry, Head, Record};

/// A console user signed in (or was refused).
pub const SIGN_IN: &str = "session.sign_in";
/// A console user signed out.
pub const SIGN_OUT: &str = "session.sign_out";
/// A console account was added or changed (role, clinics, disabled, password, sessions, lock,
/// two-step sign-in).
pub const ACCOUNT: &str = "account.change";
/// Two-step sign-in set up (started, confirmed or refused).
pub const MFA_ENROL: &str = "session.mfa_enrol";
/// A signed-in user asked for something their role does not allow.
pub const ACCESS_REFUSED: &str = "access.refused";
/// An enrolment code was made.
pub const ENROL_TOKEN: &str = "device.enrol_token";
/// A kiosk asked to enrol.
pub const ENROL: &str = "device.enrol";
/// A device was approved.
pub const APPROVE: &str = "device.approve";
/// A device was revoked.
pub const REVOKE: &str = "device.revoke";
/// A kiosk renewed its certificate over mutual TLS (or was refused).
pub const RENEW: &str = "device.renew";
/// A command was queued for a device.
pub const COMMAND: &str = "device.command";
/// A group's config was set.
pub const CONFIG_GROUP: &str = "config.group_set";
/// A device's config override was set or removed.
pub const CONFIG_DEVICE: &str = "config.device_set";
/// A rollout was started.
pub const ROLLOUT_START: &str = "rollout.start";
/// A group was rolled back.
pub const ROLLBACK: &str = "rollout.rollback";
/// A rollout was paused.
pub const ROLLOUT_PAUSE: &str = "rollout.pause";
/// A rollout was resumed.
pub const ROLLOUT_RESUME: &str = "rollout.resume";
/// A rollout was aborted.
pub const ROLLOUT_ABORT: &str = "rollout.abort";
/// An admin resumed a halted rollout, forgiving its failures so far.
pub const ROLLOUT_OVERRIDE_HALT: &str = "rollout.override_halt";
/// A kiosk waits for a clinician.
pub const VISIT_QUEUED: &str = "visit.queued";
/// A clinician joined a visit.
pub const VISIT_JOINED: &str = "visit.joined";
/// A visit ended.
pub const VISIT_ENDED: &str = "visit.ended";
/// Anything else the signalling router reports about a visit or a console.
pub const VISIT_EVENT: &str = "visit.event";
/// fleetd signed and sent a queued command, or expired unanswered ones.
pub const COMMAND_SENT: &str = "device.command_sent";
/// A kiosk answered a command (or could not read it).
pub const COMMAND_ANSWERED: &str = "device.command_answered";
/// A rollout sent a wave, timed out, halted or completed; or a late joiner got its config.
pub const ROLLOUT_STEP: &str = "rollout.step";
/// A kiosk's request for an OS bundle was refused.
pub const BUNDLE_FETCH: &str = "device.bundle_fetch";
/// An OS bundle was added for updates.
pub const BUNDLE_ADD: &str = "update.bundle_add";
/// An OS update rollout was started.
pub const UPDATE_START: &str = "update.start";
/// An OS update rollout was paused, resumed, aborted or resumed past its halt.
pub const UPDATE_CHANGE: &str = "update.change";
/// An admin read fleet, device or config data (once per [`READ_EVERY`] per thing).
pub const READ: &str = "data.read";
/// Records were exported.
pub const EXPORT: &str = "audit.export";
/// Records past retention were pruned.
pub const PRUNE: &str = "audit.prune";
/// A clinician made a visit code (never the digits: its short id and clinic).
pub const VISIT_CODE_CREATED: &str = "visit_code.created";
/// A clinician revoked one of their visit codes.
pub const VISIT_CODE_REVOKED: &str = "visit_code.revoked";
/// A kiosk's patient came with a visit code that let them in.
pub const VISIT_CODE_REDEEMED: &str = "visit_code.redeemed";
/// A kiosk's visit code was refused (unknown, expired, used, another clinic, too many tries).
pub const VISIT_CODE_REFUSED: &str = "visit_code.refused";
/// A patient pressed "Get help from staff" on a kiosk.
pub const HELP_REQUESTED: &str = "kiosk.help_requested";
/// A staff member answered a kiosk's call for help.
pub const HELP_ANSWERED: &str = "kiosk.help_answered";

/// Why the trail does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A record was changed, removed or moved.
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The head file could not be read.
    #[error("cannot read the audit head file {path}: {reason}")]
    HeadFile { path: PathBuf, reason: String },
}

/// What `verify` found on an intact trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: usize,
    /// The last one.
    pub head: Head,
}

/// The handle every part records through.
#[derive(Debug, Clone)]
pub struct Audit(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    head_file: PathBuf,
    reads: Mutex<ReadLog>,
}

/// The same read by the same actor is recorded at most once in this long (consoles poll).
pub const READ_EVERY: Duration = Duration::from_secs(15 * 60);

/// When each (actor, action, object) read was last recorded.
#[derive(Debug, Default)]
struct ReadLog {
    last: HashMap<String, Instant>,
}

impl ReadLog {
    /// Whether a read of `key` at `now` is recorded; if so, remembers it.
    fn due(&mut self, key: String, now: Instant) -> bool {
        if self.last.len() > 10_000 {
            self.last.retain(|_, t| now.saturating_duration_since(*t) < READ_EVERY);
        }
        match self.last.get(&key) {
            Some(t) if now.saturating_duration_since(*t) < READ_EVERY => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }
}

impl Audit {
    /// The trail of a data directory (its own connection to the database).
    pub fn open(dir: &DataDir) -> Result<Self, StoreError> {
        let store = Store::open(&dir.db())?;
        let reads = Mutex::default();
        Ok(Self(Arc::new(Inner { store, head_file: dir.audit_head(), reads })))
    }

    /// Appends `entry` now; blocks (SQLite). One log line per record, rendered from it.
    pub fn append(&self, entry: Entry) -> Result<Record, StoreError> {
        self.0.store.write(|c| Ok::<_, StoreError>(append_in(c, entry)?))
    }

    /// Appends `entry` from blocking code (the CLI, the blocking pool); a failure is logged.
    pub fn record_blocking(&self, entry: Entry) {
        if let Err(e) = self.append(entry) {
            tracing::error!(target: "fleetd::audit", "AUDIT RECORD LOST: {e}");
        }
    }

    /// Appends `entry` from async code, on the blocking pool, and waits until it is stored; a
    /// failure is logged.
    pub async fn record(&self, entry: Entry) {
        let audit = self.clone();
        if tokio::task::spawn_blocking(move || audit.record_blocking(entry)).await.is_err() {
            tracing::error!(target: "fleetd::audit", "AUDIT RECORD LOST: the writer panicked");
        }
    }

    /// Records a read, unless the same actor's same read was recorded in the last
    /// [`READ_EVERY`] (a console that polls is one reader, not hundreds).
    pub async fn record_read(&self, entry: Entry) {
        let key = format!("{}|{}|{}", entry.actor, entry.action, entry.object);
        let due =
            self.0.reads.lock().unwrap_or_else(PoisonError::into_inner).due(key, Instant::now());
        if due {
            self.record(entry).await;
        }
    }

    /// The records written in `[from_ms, to_ms)`; blocks.
    pub fn between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Record>, StoreError> {
        self.0.store.read(|c| store::audit::between(c, from_ms, to_ms))
    }

    /// The head of the stored chain; blocks.
    pub fn head(&self) -> Result<Head, StoreError> {
        self.0.store.read(store::audit::head)
    }

    /// Writes the current head to the head file (never moving it back: another process may
    /// have written a later one) and to the log. Blocks.
    pub fn write_head(&self) -> anyhow::Result<Head> {
        let head = self.head()?;
        let path = &self.0.head_file;
        let written = read_head(path).map_err(anyhow::Error::msg)?;
        if written.as_ref().is_some_and(|w| w.seq > head.seq) {
            return Ok(head);
        }
        // Atomic and durable (fsync of the file and of the directory after the rename), as the
        // PKI's files are: a power cut leaves the old head or the new one, never neither.
        crate::pki::write(path, &format!("{} {}\n", head.seq, head.hash), 0o600)
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(target: "fleetd::audit", seq = head.seq, hash = %head.hash, "audit chain head");
        Ok(head)
    }

    /// Checks the whole stored chain, then the head file against it. Blocks.
    pub fn verify(&self) -> Result<Verified, VerifyError> {
        let (anchor, records) =
            self.0.store.read(|c| Ok((store::audit::anchor(c)?, store::audit::all(c)?)))?;
        let head = chain::verify(&anchor, &records)?;
        let path = &self.0.head_file;
        let written = read_head(path)
            .map_err(|reason| VerifyError::HeadFile { path: path.clone(), reason })?;
        if let Some(written) = written {
            chain::check_against(&anchor, &records, &written)?;
        }
        Ok(Verified { records: records.len(), head })
    }

    /// Drops records written before `before_ms` (the anchor keeps the chain verifiable) and
    /// records that it did. Blocks.
    pub fn prune(&self, before_ms: i64) -> Result<Option<i64>, StoreError> {
        let pruned =
            self.0.store.write(|c| Ok::<_, StoreError>(store::audit::prune(c, before_ms)?))?;
        if let Some(next) = pruned {
            let detail = format!("records before seq {next} pruned (retention)");
            self.append(Entry::new("system", PRUNE, "audit", "fleetd").detail(&detail))?;
        }
        Ok(pruned)
    }
}

/// Appends `entry` inside the caller's write transaction (`c`), so the record commits or rolls
/// back with the change it records: how fleetd's own steps (rollout waves, commands sent)
/// are recorded. One log line per record, rendered from it.
pub fn append_in(c: &rusqlite::Connection, entry: Entry) -> rusqlite::Result<Record> {
    let head = store::audit::head(c)?;
    let record = Record::seal(entry, head.seq + 1, now_ms(), &head.hash);
    store::audit::insert(c, &record)?;
    match record.outcome.as_str() {
        "ok" => tracing::info!(target: "fleetd::audit", "{record}"),
        _ => tracing::warn!(target: "fleetd::audit", "{record}"),
    }
    Ok(record)
}

/// The entry for something fleetd did by itself (`system`, from `fleetd`).
pub fn system(action: &'static str, object: &str, detail: &str) -> Entry {
    Entry::new("system", action, object, "fleetd").detail(detail)
}

/// How often the chain head is written to the head file and the log.
pub const HEAD_EVERY: Duration = Duration::from_secs(5 * 60);
/// How often records past retention are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The server's upkeep of the trail: the head written every [`HEAD_EVERY`], records older than
/// `retention` pruned every [`PRUNE_EVERY`] (both on the blocking pool). The caller writes the
/// head once more at shut-down.
pub fn spawn_upkeep(audit: Audit, retention: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut head = tokio::time::interval(HEAD_EVERY);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            let a = audit.clone();
            tokio::select! {
                _ = head.tick() => {
                    let done = tokio::task::spawn_blocking(move || a.write_head()).await;
                    if let Ok(Err(e)) = done {
                        tracing::error!(target: "fleetd::audit", "cannot write the audit head: {e:#}");
                    }
                }
                _ = prune.tick() => {
                    let before = now_ms().saturating_sub(retention.as_millis() as i64);
                    let done = tokio::task::spawn_blocking(move || a.prune(before)).await;
                    if let Ok(Err(e)) = done {
                        tracing::error!(target: "fleetd::audit", "cannot prune the audit trail: {e}");
                    }
                }
            }
        }
    })
}

/// An ordered queue into the trail for code that must not wait (the signalling hub): one task
/// appends what is queued, in order. A full queue drops the entry, and says so in the log.
pub fn spawn_queue(audit: Audit) -> (mpsc::Sender<Entry>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Entry>(4096);
    let task = tokio::spawn(async move {
        while let Some(entry) = rx.recv().await {
            audit.record(entry).await;
        }
    });
    (tx, task)
}

/// The head file's `SEQ HASH`, if there is one.
fn read_head(path: &Path) -> Result<Option<Head>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut parts = text.split_whitespace();
    let seq = parts.next().and_then(|s| s.parse().ok());
    let hash = parts.next().filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    match (seq, hash) {
        (Some(seq), Some(hash)) => Ok(Some(Head { seq, hash: hash.into() })),
        _ => Err("it is not `SEQ HASH`".into()),
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The actor for a console user.
pub fn user(name: &str) -> String {
    format!("user:{name}")
}

/// The actor for a kiosk.
pub fn device(id: &str) -> String {
    format!("device:{id}")
}

/// The actor for the CLI, run by this Unix user.
pub fn cli(os_user: &str) -> String {
    format!("cli:{os_user}")
}

/// The class of a refusal: the names of its error variants, two levels deep, in snake case
/// (`Registry(NotPending { .. })` → `registry.not_pending`), never its message (which may carry
/// what was sent).
pub fn class_of<E: std::fmt::Debug>(e: &E) -> String {
    let debug = format!("{e:?}");
    let mut rest = debug.as_str();
    let mut names = Vec::new();
    while names.len() < 2 {
        let end = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        let name = &rest[..end];
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            break;
        }
        let mut snake = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        names.push(snake);
        match rest[end..].strip_prefix('(') {
            Some(inner) => rest = inner,
            None => break,
        }
    }
    if names.is_empty() { "error".into() } else { names.join(".") }
}

#[cfg(test)]
mod tests;

//! The log lines the router asks for: what happened, to whom, in which visit. PHI-free by
//! construction: ids, user names and sizes only, and decode errors by class and position
//! ([`redact`]). Refusals are rate-limited per sender ([`RefusalLimit`]), so a flood of bad
//! messages cannot flood the log or the audit trail.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use telekiosk_protocol::DecodeError;

/// How loud a [`Note`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteLevel {
    /// Per-candidate chatter.
    Debug,
    /// Audit-worthy: who did what to which visit.
    Audit,
    /// Something was refused or dropped.
    Warn,
}

/// A log line: what happened, and who, which visit and which kiosk it concerns. PHI-free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How loud.
    pub level: NoteLevel,
    /// What happened, in plain words (sizes allowed, contents never).
    pub what: String,
    /// User name of the clinician concerned, if any.
    pub user: Option<String>,
    /// Visit concerned, if any.
    pub visit_id: Option<String>,
    /// Kiosk concerned, if any.
    pub device_id: Option<String>,
}

/// A decode error fit for the log and the audit trail: its class and where in the message it
/// is, never serde's message (which quotes what was sent, backticks and newlines included).
pub fn redact(e: &DecodeError) -> String {
    match e {
        DecodeError::TooLarge { len, max } => {
            format!("message too large ({len} bytes, limit {max})")
        }
        DecodeError::Invalid { field, .. } => format!("field `{field}` out of its limits"),
        DecodeError::Malformed(text) => {
            let class = [
                ("unknown variant", "unknown message type"),
                ("unknown field", "unknown field"),
                ("missing field", "missing field"),
                ("duplicate field", "duplicate field"),
                ("invalid type", "wrong type"),
                ("invalid value", "wrong value"),
                ("invalid length", "wrong length"),
                ("EOF while parsing", "truncated JSON"),
            ]
            .iter()
            .find(|(prefix, _)| text.starts_with(prefix))
            .map_or("malformed JSON", |(_, class)| class);
            match position(text) {
                Some((line, column)) => format!("{class} at line {line} column {column}"),
                None => class.to_string(),
            }
        }
    }
}

/// serde_json's ` at line L column C`, which ends its messages.
fn position(text: &str) -> Option<(u64, u64)> {
    let (rest, column) = text.rsplit_once(" column ")?;
    let (_, line) = rest.rsplit_once(" at line ")?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// Refusal notes let through per sender (a console connection or a kiosk) in each
/// [`REFUSAL_WINDOW`]; the rest are counted and told in one line when the window ends.
pub const REFUSALS_PER_WINDOW: u32 = 5;
/// See [`REFUSALS_PER_WINDOW`].
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// Whether a refusal note is logged: the per-sender budget of [`REFUSALS_PER_WINDOW`].
#[derive(Debug, Default)]
pub struct RefusalLimit {
    senders: HashMap<String, (Instant, u32)>,
}

/// What to do with one refusal note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` more were dropped in the window before.
    Log { suppressed: u32 },
    /// Drop it: this sender has used its budget.
    Drop,
}

impl RefusalLimit {
    /// Counts one refusal from `sender` at `now`.
    pub fn check(&mut self, sender: &str, now: Instant) -> Verdict {
        // Old windows go, so a stream of new senders cannot grow the map for ever.
        if self.senders.len() > 10_000 {
            self.senders.retain(|_, (start, _)| now.duration_since(*start) < REFUSAL_WINDOW);
        }
        let (start, count) = self.senders.entry(sender.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= REFUSAL_WINDOW {
            let suppressed = count.saturating_sub(REFUSALS_PER_WINDOW);
            (*start, *count) = (now, 1);
            return Verdict::Log { suppressed };
        }
        *count += 1;
        match *count <= REFUSALS_PER_WINDOW {
            true => Verdict::Log { suppressed: 0 },
            false => Verdict::Drop,
        }
    }
}

pub(super) fn note(level: NoteLevel, what: impl Into<String>) -> Note {
    Note { level, what: what.into(), user: None, visit_id: None, device_id: None }
}

impl Note {
    pub(super) fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    pub(super) fn device(mut self, device_id: &str) -> Self {
        self.device_id = Some(device_id.to_string());
        self
    }

    pub(super) fn visit_id(mut self, visit_id: &str) -> Self {
        self.visit_id = Some(visit_id.to_string());
        self
    }
}

//! The log lines the router asks for: what happened, to whom, in which visit. PHI-free by
//! construction: ids, user names and sizes only, and decode errors with quoted values elided.

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

/// A decode error fit for the log: serde quotes offending string values, which could be SDP or
/// candidate contents, so quoted text is elided.
pub fn redact(e: &DecodeError) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    for (n, part) in text.split('"').enumerate() {
        if n > 0 {
            out.push('"');
        }
        out.push_str(if n % 2 == 1 { "…" } else { part });
    }
    out
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

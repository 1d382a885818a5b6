//! The audit trail's pure core: what one record holds, its canonical encoding, the hash chain
//! (`hash = SHA-256(previous hash ‖ canonical record)`) and [`verify`], which names the first
//! record that was changed, removed or put out of order. Plain data in, plain data out: no
//! clock, no SQL, no files. It must never hold PHI: callers give ids, action names, reason
//! classes and sizes, and every text an outsider could have chosen goes through [`escape`].

use std::fmt;

use ring::digest::{SHA256, digest};

/// The hash before the first record ever written: 32 zero bytes, in hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest actor, object or place kept, in characters (the rest is cut, marked `…`).
pub const MAX_FIELD: usize = 200;
/// Longest detail kept, in characters.
pub const MAX_DETAIL: usize = 400;

/// Whether what was asked for was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused, with the class of the reason (e.g. `wrong_credentials`, `not_pending`).
    Refused(String),
}

impl Outcome {
    /// `ok` or `refused:CLASS`, as stored and exported.
    pub fn as_text(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Refused(class) => format!("refused:{class}"),
        }
    }

    /// The stored text back.
    #[cfg(test)]
    pub fn from_text(text: &str) -> Self {
        match text.strip_prefix("refused:") {
            Some(class) => Outcome::Refused(class.into()),
            None if text == "ok" => Outcome::Ok,
            None => Outcome::Refused(text.into()),
        }
    }
}

/// What a caller hands the trail: everything but the sequence number, time and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who: `user:NAME`, `device:dev-…`, `cli:OSUSER` or `system`.
    pub actor: String,
    /// What: a dotted name such as `session.sign_in` (see [`is_action`]).
    pub action: &'static str,
    /// On what: a device id, a group, a rollout, a visit, a date range.
    pub object: String,
    /// Where from: `ADDRESS UA` for HTTP, the device id for MQTT, `cli` for the CLI.
    pub place: String,
    /// Done or refused.
    pub outcome: Outcome,
    /// A little more, PHI-free (sizes, versions, a reason class).
    pub detail: String,
}

impl Entry {
    /// `actor` did `action` on `object`, from `place`, successfully.
    pub fn new(actor: &str, action: &'static str, object: &str, place: &str) -> Self {
        debug_assert!(is_action(action), "{action} is not a dotted action name");
        Self {
            actor: escape(actor, MAX_FIELD),
            action,
            object: escape(object, MAX_FIELD),
            place: escape(place, MAX_FIELD),
            outcome: Outcome::Ok,
            detail: String::new(),
        }
    }

    /// The same, refused for a reason of class `class`.
    pub fn refused(mut self, class: &str) -> Self {
        self.outcome = Outcome::Refused(escape(class, 64));
        self
    }

    /// Done or refused after `result`, the refusal classed by `class`.
    pub fn outcome<T, E>(self, result: &Result<T, E>, class: impl Fn(&E) -> String) -> Self {
        match result {
            Ok(_) => self,
            Err(e) => self.refused(&class(e)),
        }
    }

    /// With `detail` (escaped and cut to [`MAX_DETAIL`]).
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = escape(detail, MAX_DETAIL);
        self
    }
}

/// One stored record: an [`Entry`] with its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// 1, 2, 3… with no gaps.
    pub seq: i64,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub object: String,
    /// Where from.
    #[serde(rename = "where")]
    pub place: String,
    /// `ok` or `refused:CLASS`.
    pub outcome: String,
    /// A little more.
    pub detail: String,
    /// SHA-256 (hex) of the previous record's hash and this record's canonical encoding.
    pub hash: String,
}

impl Record {
    /// `entry` as record `seq` at `at_ms`, chained after a record whose hash is `prev`.
    pub fn seal(entry: Entry, seq: i64, at_ms: i64, prev: &str) -> Self {
        let mut r = Record {
            seq,
            at_ms,
            actor: entry.actor,
            action: entry.action.into(),
            object: entry.object,
            place: entry.place,
            outcome: entry.outcome.as_text(),
            detail: entry.detail,
            hash: String::new(),
        };
        r.hash = chain_hash(prev, &r);
        r
    }

    /// Every field but the hash, each length-prefixed, so no two records encode alike.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = b"audit-v1".to_vec();
        let fields = [
            self.seq.to_string(),
            self.at_ms.to_string(),
            self.actor.clone(),
            self.action.clone(),
            self.object.clone(),
            self.place.clone(),
            self.outcome.clone(),
            self.detail.clone(),
        ];
        for f in fields {
            out.extend_from_slice(format!("|{}:", f.len()).as_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        out
    }
}

/// The log line for a record, rendered from the stored fields (each already escaped, and
/// quoted here), so nothing in it can start a line of its own.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit seq={} action={} actor={:?} object={:?} where={:?} outcome={} at={} detail={:?}",
            self.seq,
            self.action,
            self.actor,
            self.object,
            self.place,
            self.outcome,
            rfc3339_ms(self.at_ms),
            self.detail
        )
    }
}

/// `SHA-256(prev ‖ canonical(record))`, in hex; `prev` is the previous hash in hex.
pub fn chain_hash(prev: &str, record: &Record) -> String {
    let mut input = prev.as_bytes().to_vec();
    input.extend_from_slice(&record.canonical());
    hex(digest(&SHA256, &input).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A dotted action name: two or more parts of `a`–`z` and `_`, e.g. `rollout.start`.
pub fn is_action(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

/// Text an outsider may have chosen (a user name, a user agent, a serde message) made safe for
/// one log line: control characters and backslashes escaped (`\n`, `\u{1b}`, `\\`), cut to
/// `max` characters with `…`.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Where a chain starts: the first sequence number expected and the hash before it (the
/// genesis, or what retention pruning left in the anchor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The first record's expected sequence number.
    pub next_seq: i64,
    /// The hash of the record before it.
    pub prev_hash: String,
}

impl Default for Anchor {
    fn default() -> Self {
        Self { next_seq: 1, prev_hash: GENESIS.into() }
    }
}

/// The last record of a chain: its sequence number and hash (0 and the genesis if empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// How a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The record's content or hash is not what was chained.
    Changed,
    /// The record is missing.
    Removed,
    /// The record is not where it was written.
    Reordered,
}

/// The first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq} was {}", match .what {
    Damage::Changed => "changed",
    Damage::Removed => "removed",
    Damage::Reordered => "moved out of order",
})]
pub struct Broken {
    /// Which record.
    pub seq: i64,
    /// What happened to it.
    pub what: Damage,
}

/// Checks `records`, in the order they were stored, against `anchor`: sequence numbers run on
/// without gaps and every hash chains. Returns the head, or names the first bad record.
pub fn verify(anchor: &Anchor, records: &[Record]) -> Result<Head, Broken> {
    let mut head = Head { seq: anchor.next_seq - 1, hash: anchor.prev_hash.clone() };
    for (i, r) in records.iter().enumerate() {
        let expected = head.seq + 1;
        if r.seq != expected {
            let later = records[i + 1..].iter().any(|l| l.seq == expected);
            let what = if r.seq < expected || later { Damage::Reordered } else { Damage::Removed };
            return Err(Broken { seq: expected, what });
        }
        if chain_hash(&head.hash, r) != r.hash {
            return Err(Broken { seq: r.seq, what: Damage::Changed });
        }
        head = Head { seq: r.seq, hash: r.hash.clone() };
    }
    Ok(head)
}

/// Checks a chain's head against one written down earlier (the head file): that record must
/// still be there with the same hash, unless retention pruned it (`anchor` past it).
pub fn check_against(anchor: &Anchor, records: &[Record], written: &Head) -> Result<(), Broken> {
    if written.seq < anchor.next_seq {
        let at_anchor = written.seq == anchor.next_seq - 1;
        return match at_anchor && written.hash != anchor.prev_hash {
            true => Err(Broken { seq: written.seq, what: Damage::Changed }),
            false => Ok(()),
        };
    }
    match records.iter().find(|r| r.seq == written.seq) {
        Some(r) if r.hash == written.hash => Ok(()),
        Some(_) => Err(Broken { seq: written.seq, what: Damage::Changed }),
        None => {
            let last = records.last().map_or(anchor.next_seq - 1, |r| r.seq);
            Err(Broken { seq: last + 1, what: Damage::Removed })
        }
    }
}

/// A record's time as RFC 3339 with milliseconds.
pub fn rfc3339_ms(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at_ms.to_string())
}

#[cfg(test)]
mod tests;

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
            super::export::rfc3339_ms(self.at_ms),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let e = Entry::new(&format!("user:u{seq}"), "session.sign_in", "-", "127.0.0.1");
                let r = Record::seal(e, seq, 1000 + seq, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let records = chain(5);
        let head = verify(&Anchor::default(), &records).unwrap();
        assert_eq!(head, Head { seq: 5, hash: records[4].hash.clone() });
        assert_eq!(verify(&Anchor::default(), &[]).unwrap().seq, 0);
    }

    #[test]
    fn a_changed_field_is_named_by_its_record() {
        for field in 0..6 {
            let mut records = chain(5);
            let r = &mut records[2];
            match field {
                0 => r.actor = "user:mallory".into(),
                1 => r.action = "session.sign_out".into(),
                2 => r.object = "x".into(),
                3 => r.place = "10.0.0.1".into(),
                4 => r.outcome = "refused:x".into(),
                _ => r.at_ms += 1,
            }
            let broken = verify(&Anchor::default(), &records).unwrap_err();
            assert_eq!(broken, Broken { seq: 3, what: Damage::Changed }, "field {field}");
        }
    }

    #[test]
    fn a_rewritten_hash_breaks_the_next_record() {
        let mut records = chain(5);
        records[2].detail = "forged".into();
        records[2].hash = chain_hash(&records[1].hash, &records[2]);
        assert_eq!(verify(&Anchor::default(), &records).unwrap_err().seq, 4);
    }

    #[test]
    fn a_deleted_record_is_named_as_removed() {
        let mut records = chain(5);
        records.remove(1);
        let broken = verify(&Anchor::default(), &records).unwrap_err();
        assert_eq!(broken, Broken { seq: 2, what: Damage::Removed });
        let mut first_gone = chain(3);
        first_gone.remove(0);
        assert_eq!(verify(&Anchor::default(), &first_gone).unwrap_err().seq, 1);
    }

    #[test]
    fn two_swapped_records_are_named_as_reordered() {
        let mut records = chain(5);
        records.swap(1, 2);
        let broken = verify(&Anchor::default(), &records).unwrap_err();
        assert_eq!(broken, Broken { seq: 2, what: Damage::Reordered });
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_anchor_and_not_without_it() {
        let records = chain(5);
        let anchor = Anchor { next_seq: 3, prev_hash: records[1].hash.clone() };
        assert_eq!(verify(&anchor, &records[2..]).unwrap().seq, 5);
        assert!(verify(&Anchor::default(), &records[2..]).is_err());
        let wrong = Anchor { next_seq: 3, prev_hash: records[0].hash.clone() };
        assert_eq!(verify(&wrong, &records[2..]).unwrap_err().seq, 3);
    }

    #[test]
    fn a_head_written_earlier_catches_a_rewritten_or_truncated_chain() {
        let records = chain(5);
        let written = Head { seq: 4, hash: records[3].hash.clone() };
        assert!(check_against(&Anchor::default(), &records, &written).is_ok());
        // Rewritten from record 2 on, every hash recomputed: verify alone passes.
        let mut rewritten = chain(1);
        let mut prev = rewritten[0].hash.clone();
        for seq in 2..=5 {
            let r = Record::seal(Entry::new("system", "audit.prune", "-", "-"), seq, 1, &prev);
            prev = r.hash.clone();
            rewritten.push(r);
        }
        assert!(verify(&Anchor::default(), &rewritten).is_ok());
        let broken = check_against(&Anchor::default(), &rewritten, &written).unwrap_err();
        assert_eq!(broken, Broken { seq: 4, what: Damage::Changed });
        let broken = check_against(&Anchor::default(), &records[..2], &written).unwrap_err();
        assert_eq!(broken, Broken { seq: 3, what: Damage::Removed });
    }

    #[test]
    fn escaping_keeps_attacker_text_on_one_line() {
        let forged = "x`\nINFO fleetd::audit: user=admin signed in\r\u{1b}[31m\\";
        let out = escape(forged, 200);
        assert!(!out.contains(['\n', '\r', '\u{1b}']), "{out}");
        assert_eq!(out, "x`\\nINFO fleetd::audit: user=admin signed in\\r\\u{1b}[31m\\\\");
        assert_eq!(escape(&"a".repeat(300), 10), format!("{}…", "a".repeat(10)));
        let line = Record::seal(Entry::new(forged, "session.sign_in", "-", "-"), 1, 1, GENESIS);
        assert!(!line.to_string().contains('\n'));
    }

    /// Review, not tested item 8: every audit line says who, what, on what, when and where.
    #[test]
    fn a_log_line_names_who_what_when_and_where() {
        let entry = Entry::new("user:alice", "device.approve", "dev-1", "10.0.0.9:5123 Firefox");
        let line = Record::seal(entry, 7, 1_500, GENESIS).to_string();
        for part in [
            "seq=7",
            "actor=\"user:alice\"",
            "action=device.approve",
            "object=\"dev-1\"",
            "where=\"10.0.0.9:5123 Firefox\"",
            "at=1970-01-01T00:00:01.5Z",
            "outcome=ok",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
    }

    #[test]
    fn action_names_are_dotted_lowercase() {
        assert!(is_action("session.sign_in") && is_action("rollout.start"));
        for bad in ["session", "Session.x", "a..b", "a.b\n", ".a", "a.b "] {
            assert!(!is_action(bad), "{bad}");
        }
    }

    #[test]
    fn outcomes_read_back_as_written() {
        for o in [Outcome::Ok, Outcome::Refused("wrong_credentials".into())] {
            assert_eq!(Outcome::from_text(&o.as_text()), o);
        }
    }
}

//! The chain's rules: a changed, removed or reordered record is named; escaping.

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

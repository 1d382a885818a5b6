//! The trail over a real SQLite file: appends, triggers, pruning, the head file.

use super::*;

fn audit() -> (tempfile::TempDir, Audit) {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open(&DataDir::of(&dir)).unwrap();
    (dir, audit)
}

fn entry(n: usize) -> Entry {
    Entry::new(&user(&format!("u{n}")), SIGN_IN, "-", "127.0.0.1")
}

#[test]
fn appends_chain_and_verify_with_the_head_file() {
    let (_dir, audit) = audit();
    for n in 0..3 {
        audit.append(entry(n)).unwrap();
    }
    let head = audit.write_head().unwrap();
    assert_eq!(head.seq, 3);
    assert_eq!(audit.verify().unwrap(), Verified { records: 3, head });
}

#[test]
fn the_table_refuses_updates_and_deletes() {
    let (_dir, audit) = audit();
    audit.append(entry(0)).unwrap();
    let update = audit.0.store.read(|c| c.execute("UPDATE audit SET actor = 'x'", []));
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = audit.0.store.read(|c| c.execute("DELETE FROM audit", []));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    let anchor = audit
        .0
        .store
        .read(|c| c.execute("UPDATE audit_anchor SET next_seq = 5, prev_hash = 'x'", []));
    assert!(anchor.is_err());
}

#[test]
fn pruning_keeps_the_chain_verifiable_and_is_itself_recorded() {
    let (_dir, audit) = audit();
    for n in 0..4 {
        audit.append(entry(n)).unwrap();
    }
    audit.write_head().unwrap();
    assert_eq!(audit.prune(now_ms() + 1).unwrap(), Some(4));
    let verified = audit.verify().unwrap();
    assert_eq!((verified.records, verified.head.seq), (2, 5));
    let last = audit.between(0, i64::MAX).unwrap().pop().unwrap();
    assert_eq!(last.action, PRUNE);
    assert_eq!(audit.prune(0).unwrap(), None);
}

#[test]
fn a_polled_read_is_recorded_once_per_window_per_reader_and_thing() {
    let mut log = ReadLog::default();
    let t0 = Instant::now();
    assert!(log.due("user:a|data.read|fleet".into(), t0));
    assert!(!log.due("user:a|data.read|fleet".into(), t0 + READ_EVERY / 2));
    assert!(log.due("user:b|data.read|fleet".into(), t0));
    assert!(log.due("user:a|data.read|dev-1".into(), t0));
    assert!(log.due("user:a|data.read|fleet".into(), t0 + READ_EVERY));
}

#[test]
fn refusals_are_classed_by_variant_never_by_message() {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum E {
        NotPending { id: String },
        WrongCredentials,
        Registry(Box<E>),
        Malformed(String),
    }
    assert_eq!(class_of(&E::NotPending { id: "x\ny".into() }), "not_pending");
    assert_eq!(class_of(&E::WrongCredentials), "wrong_credentials");
    let nested = E::Registry(Box::new(E::NotPending { id: "x".into() }));
    assert_eq!(class_of(&nested), "registry.not_pending");
    assert_eq!(class_of(&E::Malformed("Forged`\nline".into())), "malformed");
}

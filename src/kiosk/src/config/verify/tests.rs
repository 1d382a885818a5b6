//! Table of config documents, good and bad, each with the one error it must be refused with.

use telekiosk_protocol::config::{ConfigPayload, SignedConfig};
use telekiosk_protocol::encode;

use super::*;
use crate::config::test_support::{document, payload};
use crate::signed::test_keys::{fleet_key, sign};

const ME: &str = "kiosk-7f3a";

fn json(p: &ConfigPayload) -> String {
    serde_json::to_string(p).unwrap()
}

#[derive(Debug)]
enum Expect {
    Accepted(u64),
    Refused(fn(&ConfigError) -> bool),
}

#[test]
fn each_bad_document_is_refused_with_its_own_error_and_a_good_one_is_accepted() {
    let (fleet, pinned) = fleet_key();
    let (intruder, _) = fleet_key();
    let good = json(&payload(5));
    let mut other_device = payload(5);
    other_device.device_id = "kiosk-0000".into();
    let mut out_of_range = payload(5);
    out_of_range.body.wait_timeout_secs = 5;
    let mut zero = payload(0);
    zero.version = 0;
    let unknown_schema =
        good.replace("\"schema\":1", "\"schema\":2").replace("\"body\"", "\"extra\":1,\"body\"");
    assert!(unknown_schema.contains("\"schema\":2"));
    let big_room = "R".repeat(50 * 1024);
    let oversized_payload = good.replace("Room v5", &big_room);
    let huge = vec![b' '; MAX_MESSAGE_BYTES_FOR_TEST + 1];
    let truncated = &good[..good.len() - 10];
    let signature_of_other_bytes = encode(&SignedConfig {
        payload: good.clone(),
        signature: sign(&fleet, json(&payload(6)).as_bytes()),
    });
    let cut_after_signing = encode(&SignedConfig {
        payload: truncated.into(),
        signature: sign(&fleet, good.as_bytes()),
    });
    let garbage_signature =
        encode(&SignedConfig { payload: good.clone(), signature: "QUJD".repeat(22) });
    let good_doc = document(&fleet, &good);

    use ConfigError as E;
    let table: Vec<(&str, Vec<u8>, u64, Expect)> = vec![
        ("good, newer", good_doc.clone(), 4, Expect::Accepted(5)),
        ("good, first config ever", good_doc.clone(), 0, Expect::Accepted(5)),
        ("bad signature bytes", garbage_signature, 4, Expect::Refused(|e| *e == E::BadSignature)),
        (
            "signed by another key",
            document(&intruder, &good),
            4,
            Expect::Refused(|e| *e == E::BadSignature),
        ),
        (
            "signature over different bytes",
            signature_of_other_bytes,
            4,
            Expect::Refused(|e| *e == E::BadSignature),
        ),
        (
            "payload cut after signing",
            cut_after_signing,
            4,
            Expect::Refused(|e| *e == E::BadSignature),
        ),
        (
            "another device's config",
            document(&fleet, &json(&other_device)),
            4,
            Expect::Refused(
                |e| matches!(e, E::WrongDevice { expected, got } if expected == ME && got == "kiosk-0000"),
            ),
        ),
        (
            "replayed: same version",
            good_doc.clone(),
            5,
            Expect::Refused(|e| *e == E::NotNewer { version: 5, in_force: 5 }),
        ),
        (
            "rolled back: lower version",
            good_doc.clone(),
            9,
            Expect::Refused(|e| *e == E::NotNewer { version: 5, in_force: 9 }),
        ),
        (
            "version 0",
            document(&fleet, &json(&zero)),
            0,
            Expect::Refused(|e| *e == E::NotNewer { version: 0, in_force: 0 }),
        ),
        (
            "unknown schema",
            document(&fleet, &unknown_schema),
            4,
            Expect::Refused(|e| *e == E::UnknownSchema(2)),
        ),
        (
            "out-of-range field",
            document(&fleet, &json(&out_of_range)),
            4,
            Expect::Refused(
                |e| matches!(e, E::OutOfRange { field: "wait_timeout_secs", reason } if reason.contains("60")),
            ),
        ),
        (
            "truncated payload, signed as is",
            document(&fleet, truncated),
            4,
            Expect::Refused(|e| matches!(e, E::Malformed(m) if m.contains("payload"))),
        ),
        (
            "truncated document",
            good_doc[..good_doc.len() / 2].to_vec(),
            4,
            Expect::Refused(|e| matches!(e, E::Malformed(_))),
        ),
        ("oversized document", huge, 4, Expect::Refused(|e| matches!(e, E::TooLarge { .. }))),
        (
            "oversized payload",
            document(&fleet, &oversized_payload),
            4,
            Expect::Refused(|e| matches!(e, E::TooLarge { .. })),
        ),
        (
            "not JSON at all",
            b"\x00\x01hello".to_vec(),
            4,
            Expect::Refused(|e| matches!(e, E::Malformed(_))),
        ),
    ];
    let mut messages = std::collections::HashMap::new();
    for (name, bytes, in_force, expect) in table {
        let got = verify(&bytes, &pinned, ME, in_force);
        match (&expect, &got) {
            (Expect::Accepted(v), Ok(p)) => assert_eq!(p.version, *v, "{name}"),
            (Expect::Refused(is), Err(e)) => {
                assert!(is(e), "{name}: refused with the wrong error: {e:?}");
                messages.entry(std::mem::discriminant(e)).or_insert_with(|| e.to_string());
            }
            _ => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
    }
    // Seven kinds of refusal, each with its own plain message.
    let distinct: std::collections::BTreeSet<_> = messages.values().collect();
    assert_eq!(messages.len(), 7, "{messages:?}");
    assert_eq!(distinct.len(), 7, "{messages:?}");
}

const MAX_MESSAGE_BYTES_FOR_TEST: usize = telekiosk_protocol::decode::MAX_MESSAGE_BYTES;

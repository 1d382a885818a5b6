//! RFC 9605 Appendix C vectors (header encoding, C.1; SFrame encryption for
//! `AES_256_GCM_SHA512_128`, C.3) and the cross-check fixtures the browser twin also asserts.

use serde_json::Value;
use telekiosk_e2ee::{
    CIPHER_SUITE, Codec, EphemeralKey, FrameKey, Header, Receiver, Sender, VisitKeys,
    clear_prefix_len,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn header_vectors_from_the_rfc() {
    let cases: &[(u64, u64, &str)] = &[
        (0x123, 0x4567, "9901234567"),
        (0x0100000000000000, 0, "f00100000000000000"),
        (0x0100000000000000, 1, "f10100000000000000"),
        (0x0100000000000000, 0xff, "f80100000000000000ff"),
        (0x0100000000000000, 0x100, "f901000000000000000100"),
        (0x0100000000000000, 0xffffff, "fa0100000000000000ffffff"),
        (0x0100000000000000, 0x0000010000000000, "fd0100000000000000010000000000"),
        (0x0100000000000000, 0x0100000000000000, "ff01000000000000000100000000000000"),
        (0x00ffffffffffffff, 0xffffffffffffffff, "efffffffffffffffffffffffffffffff"),
        (u64::MAX, 0, "f0ffffffffffffffff"),
        (u64::MAX, 0x0000ffffffffffff, "fdffffffffffffffffffffffffffff"),
        (u64::MAX, u64::MAX, "ffffffffffffffffffffffffffffffffff"),
    ];
    for &(kid, ctr, wire) in cases {
        let header = Header { kid, ctr };
        assert_eq!(hex::encode(header.encode()), wire, "kid {kid:#x} ctr {ctr:#x}");
        let mut bytes = h(wire);
        bytes.extend_from_slice(b"payload");
        assert_eq!(Header::decode(&bytes).unwrap(), (header, wire.len() / 2));
    }
}

#[test]
fn encryption_vector_for_aes_256_gcm_sha512_128() {
    assert_eq!(CIPHER_SUITE, 0x0005);
    let key = FrameKey::derive(&h("000102030405060708090a0b0c0d0e0f"), 0x123).unwrap();
    assert_eq!(
        hex::encode(key.key_bytes()),
        "d3e27b0d4a5ae9e55df01a70e6d4d28d969b246e2936f4b7a5d9b494da6b9633"
    );
    assert_eq!(hex::encode(key.salt_bytes()), "84991c167b8cd23c93708ec7");
    assert_eq!(hex::encode(key.nonce(0x4567)), "84991c167b8cd23c9370cba0");
    let metadata = h("4945544620534672616d65205747");
    let pt = h("64726166742d696574662d736672616d652d656e63");
    let ct = "990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279";
    assert_eq!(hex::encode(key.seal(0x4567, &metadata, &pt)), ct);
    let ct = h(ct);
    assert_eq!(key.open(&ct[..5], 0x4567, &metadata, &ct[5..]).unwrap(), pt);
}

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures.json")).unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn fixtures_are_what_this_implementation_produces() {
    let f = fixtures();
    assert_eq!(f["cipher_suite"], u64::from(CIPHER_SUITE));
    for c in f["headers"].as_array().unwrap() {
        let header = Header { kid: num(&c["kid"]), ctr: num(&c["ctr"]) };
        assert_eq!(hex::encode(header.encode()), c["header"].as_str().unwrap());
    }
    let base_key = h(f["base_key"].as_str().unwrap());
    for c in f["frames"].as_array().unwrap() {
        let key = FrameKey::derive(&base_key, num(&c["kid"])).unwrap();
        assert_eq!(hex::encode(key.key_bytes()), c["key"].as_str().unwrap());
        assert_eq!(hex::encode(key.salt_bytes()), c["salt"].as_str().unwrap());
        let sealed = key.seal(
            num(&c["ctr"]),
            &h(c["metadata"].as_str().unwrap()),
            &h(c["pt"].as_str().unwrap()),
        );
        assert_eq!(hex::encode(sealed), c["ct"].as_str().unwrap());
    }
    for c in f["media"].as_array().unwrap() {
        let codec = match c["codec"].as_str().unwrap() {
            "opus" => Codec::Opus,
            "vp8" => Codec::Vp8,
            _ => Codec::H264,
        };
        let frame = h(c["frame"].as_str().unwrap());
        assert_eq!(clear_prefix_len(codec, &frame) as u64, c["clear"].as_u64().unwrap());
        let mut receiver = Receiver::new();
        receiver.set_key(&base_key, num(&c["kid"])).unwrap();
        let protected = h(c["protected"].as_str().unwrap());
        assert_eq!(receiver.unprotect(codec, &protected).unwrap(), frame);
        let mut sender = Sender::new(&base_key, num(&c["kid"])).unwrap();
        sender.protect(Codec::Opus, b"x").unwrap();
        assert_eq!(sender.protect(codec, &frame).unwrap(), protected);
    }
    let s = &f["schedule"];
    let kiosk = EphemeralKey::from_bytes(&h(s["kiosk_private"].as_str().unwrap())).unwrap();
    let console = EphemeralKey::from_bytes(&h(s["console_private"].as_str().unwrap())).unwrap();
    assert_eq!(hex::encode(kiosk.public_key()), s["kiosk_public"].as_str().unwrap());
    assert_eq!(hex::encode(console.public_key()), s["console_public"].as_str().unwrap());
    let shared = console.shared_secret(&kiosk.public_key()).unwrap();
    assert_eq!(hex::encode(shared), s["shared"].as_str().unwrap());
    let keys = VisitKeys::derive(
        &shared,
        s["visit_id"].as_str().unwrap(),
        s["kiosk_fingerprint"].as_str().unwrap(),
        s["console_fingerprint"].as_str().unwrap(),
    );
    assert_eq!(hex::encode(keys.kiosk_to_console), s["kiosk_to_console"].as_str().unwrap());
    assert_eq!(hex::encode(keys.console_to_kiosk), s["console_to_kiosk"].as_str().unwrap());
    assert_eq!(keys.code, s["code"].as_str().unwrap());
    assert_eq!(hex::encode(keys.kiosk_confirm), s["kiosk_confirm"].as_str().unwrap());
    assert_eq!(hex::encode(keys.console_confirm), s["console_confirm"].as_str().unwrap());
    let transcript = telekiosk_e2ee::schedule::kiosk_key_transcript(
        s["visit_id"].as_str().unwrap(),
        &kiosk.public_key(),
        s["kiosk_fingerprint"].as_str().unwrap(),
    );
    assert_eq!(hex::encode(transcript), s["kiosk_key_transcript"].as_str().unwrap());
}

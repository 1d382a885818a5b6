//! Prints the cross-check fixtures shared by the Rust tests and the browser twin's node test:
//! `cargo run -p telekiosk-e2ee --example fixtures > src/e2ee/tests/fixtures.json`.
//! Every input is fixed, so the output is the same on every run.

use serde_json::{Value, json};
use telekiosk_e2ee::schedule::kiosk_key_transcript;
use telekiosk_e2ee::{Codec, EphemeralKey, FrameKey, Header, Sender, VisitKeys, clear_prefix_len};

fn main() {
    let headers: Vec<Value> = [(0, 0), (7, 7), (8, 8), (0x123, 0x4567), (0xffff_ffff, 0x1_0000), (u64::MAX, u64::MAX)]
        .iter()
        .map(|&(kid, ctr)| json!({"kid": kid.to_string(), "ctr": ctr.to_string(), "header": hex::encode(Header { kid, ctr }.encode())}))
        .collect();

    let base_key: Vec<u8> = (0u8..32).collect();
    let frames: Vec<Value> = [(1u64, 0u64, "", "00"), (2, 300, "ab", "0001020304"), (0x1234, 0xabcdef, "4945544620534672616d65205747", "64726166742d696574662d736672616d652d656e63")]
        .iter()
        .map(|&(kid, ctr, metadata, pt)| {
            let key = FrameKey::derive(&base_key, kid).unwrap();
            let ct = key.seal(ctr, &hex::decode(metadata).unwrap(), &hex::decode(pt).unwrap());
            json!({"kid": kid.to_string(), "ctr": ctr.to_string(), "metadata": metadata, "pt": pt,
                   "key": hex::encode(key.key_bytes()), "salt": hex::encode(key.salt_bytes()), "ct": hex::encode(ct)})
        })
        .collect();

    let media: Vec<Value> = [
        ("opus", Codec::Opus, "78a1b2c3d4e5"),
        ("vp8", Codec::Vp8, "4000009d012a8002e001aabbccddeeff"),
        ("vp8", Codec::Vp8, "a100000102030405060708"),
        // A first partition longer than the clear header: 3 + 16 stay clear.
        ("vp8", Codec::Vp8, "f1010000112233445566778899aabbccddeeff00112233445566"),
        // SPS, PPS and an IDR slice whose clear bytes end in two zeros (the escaping's context).
        ("h264", Codec::H264, "00000001674200290000000168ce3c800000000165888400000300ffeedd"),
        // Two slices of a P frame, the first with a 3-byte start code and a zero run to escape.
        ("h264", Codec::H264, "00000141e01122330000030000000001419a0102030405"),
    ]
    .iter()
    .map(|&(name, codec, frame)| {
        let frame = hex::decode(frame).unwrap();
        let mut sender = Sender::new(&base_key, 9).unwrap();
        sender.protect(Codec::Opus, b"x").unwrap();
        let protected = sender.protect(codec, &frame).unwrap();
        json!({"codec": name, "frame": hex::encode(&frame), "clear": clear_prefix_len(codec, &frame),
               "kid": "9", "ctr": "1", "protected": hex::encode(protected)})
    })
    .collect();

    let kiosk = EphemeralKey::from_bytes(&[0x11; 32]).unwrap();
    let console = EphemeralKey::from_bytes(&[0x22; 32]).unwrap();
    let shared = kiosk.shared_secret(&console.public_key()).unwrap();
    let (visit, kfp, cfp) = ("visit-0001", "sha-256 AA:BB:CC", "sha-256 11:22:33");
    let keys = VisitKeys::derive(&shared, visit, kfp, cfp);
    let fixtures = json!({
        "cipher_suite": telekiosk_e2ee::CIPHER_SUITE,
        "headers": headers,
        "base_key": hex::encode(&base_key),
        "frames": frames,
        "media": media,
        "schedule": {
            "kiosk_private": hex::encode([0x11u8; 32]), "kiosk_public": hex::encode(kiosk.public_key()),
            "console_private": hex::encode([0x22u8; 32]), "console_public": hex::encode(console.public_key()),
            "shared": hex::encode(shared), "visit_id": visit, "kiosk_fingerprint": kfp, "console_fingerprint": cfp,
            "kiosk_to_console": hex::encode(keys.kiosk_to_console), "console_to_kiosk": hex::encode(keys.console_to_kiosk),
            "code": keys.code,
            "kiosk_confirm": hex::encode(keys.kiosk_confirm), "console_confirm": hex::encode(keys.console_confirm),
            "kiosk_key_transcript": hex::encode(kiosk_key_transcript(visit, &kiosk.public_key(), kfp)),
        },
    });
    println!("{}", serde_json::to_string_pretty(&fixtures).unwrap());
}

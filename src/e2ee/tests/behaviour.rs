//! Sender and receiver behaviour: round trips, tampering, replays, wrong keys, the key schedule.

use telekiosk_e2ee::schedule::{CONSOLE_KID, KIOSK_KID};
use telekiosk_e2ee::{Codec, Direction, EphemeralKey, Error, Receiver, Sender, VisitKeys};

const KEY: [u8; 32] = [7; 32];
const H264: &[u8] = &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x10, 0x20, 0x30];

fn pair(kid: u64) -> (Sender, Receiver) {
    let mut receiver = Receiver::new();
    receiver.set_key(&KEY, kid).unwrap();
    (Sender::new(&KEY, kid).unwrap(), receiver)
}

#[test]
fn frames_round_trip_with_the_prefix_clear_and_the_rest_hidden() {
    let (mut sender, mut receiver) = pair(3);
    for (codec, frame) in [
        (Codec::Opus, &[0x78, 1, 2, 3, 4][..]),
        // A keyframe whose first partition is 2 bytes: 10 + 2 clear.
        (Codec::Vp8, &[0x40, 0, 0, 0x9d, 1, 0x2a, 0x80, 2, 0xe0, 1, 0xaa, 0xbb, 1, 2, 3, 4, 5][..]),
    ] {
        let protected = sender.protect(codec, frame).unwrap();
        let clear = telekiosk_e2ee::clear_prefix_len(codec, frame);
        assert_eq!(&protected[..clear], &frame[..clear]);
        assert!(
            !protected.windows(4).any(|w| frame.len() > clear + 4 && w == &frame[clear..clear + 4])
        );
        assert_eq!(protected.len(), frame.len() + 1 + 16, "config byte and tag added");
        assert_eq!(receiver.unprotect(codec, &protected).unwrap(), frame);
    }
    // H.264: the start code, the NAL header and 4 bytes stay clear; the trailer byte is added.
    let protected = sender.protect(Codec::H264, H264).unwrap();
    assert_eq!(&protected[..9], &H264[..9]);
    assert!(!protected.windows(4).any(|w| w == &H264[9..13]));
    assert_eq!(protected.len(), H264.len() + 1 + 16 + 1, "config byte, tag and trailer added");
    assert_eq!(receiver.unprotect(Codec::H264, &protected).unwrap(), H264);
    assert_eq!(receiver.stats().opened, 3);
    // Shorter than its clear prefix: refused, no counter spent.
    assert_eq!(sender.protect(Codec::Opus, &[]), Err(Error::TooShort));
    assert_eq!(sender.protect(Codec::Vp8, &[0x10, 1]), Err(Error::TooShort));
    assert_eq!(sender.next_counter(), Some(3));
}

#[test]
fn any_altered_byte_is_refused_and_counted() {
    let (mut sender, mut receiver) = pair(3);
    let protected = sender.protect(Codec::H264, H264).unwrap();
    // NAL header and slice header (metadata), config byte (header), ciphertext, last tag byte.
    for at in [4, 6, 9, 11, protected.len() - 2] {
        let mut bad = protected.clone();
        bad[at] ^= 0x01;
        assert!(receiver.unprotect(Codec::H264, &bad).is_err(), "byte {at}");
    }
    assert_eq!(receiver.stats().auth_failures + receiver.stats().unknown_kid, 5);
    assert!(receiver.stats().auth_failures >= 3);
    assert_eq!(receiver.stats().opened, 0);
    // The untouched frame still opens: failures did not poison the window.
    assert_eq!(receiver.unprotect(Codec::H264, &protected).unwrap(), H264);
}

#[test]
fn truncated_frames_are_dropped() {
    let (mut sender, mut receiver) = pair(3);
    let protected = sender.protect(Codec::Opus, &[0x78, 1, 2, 3]).unwrap();
    assert_eq!(
        receiver.unprotect(Codec::Opus, &protected[..protected.len() - 17]),
        Err(Error::TooShort)
    );
    assert_eq!(receiver.unprotect(Codec::Opus, &protected[..1]), Err(Error::MalformedHeader));
    assert_eq!(receiver.stats().malformed, 2);
}

#[test]
fn the_counter_never_repeats() {
    let (mut sender, _) = pair(3);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let protected = sender.protect(Codec::Opus, &[0x78, 9]).unwrap();
        let (header, _) = telekiosk_e2ee::Header::decode(&protected[1..]).unwrap();
        assert!(seen.insert(header.ctr));
    }
    assert_eq!(sender.next_counter(), Some(1000));
}

#[test]
fn replays_are_refused_and_late_frames_taken_once() {
    let (mut sender, mut receiver) = pair(3);
    let frames: Vec<_> = (0..5).map(|i| sender.protect(Codec::Opus, &[0x78, i]).unwrap()).collect();
    receiver.unprotect(Codec::Opus, &frames[0]).unwrap();
    receiver.unprotect(Codec::Opus, &frames[3]).unwrap();
    receiver.unprotect(Codec::Opus, &frames[1]).unwrap();
    assert_eq!(receiver.unprotect(Codec::Opus, &frames[3]), Err(Error::Replay(3)));
    assert_eq!(receiver.unprotect(Codec::Opus, &frames[0]), Err(Error::Replay(0)));
    assert_eq!(receiver.stats().replays, 2);
}

#[test]
fn a_wrong_key_opens_nothing() {
    let mut sender = Sender::new(&[8; 32], 3).unwrap();
    let (_, mut receiver) = pair(3);
    for _ in 0..10 {
        let protected = sender.protect(Codec::H264, H264).unwrap();
        assert_eq!(receiver.unprotect(Codec::H264, &protected), Err(Error::Authentication));
    }
    assert_eq!(receiver.stats().auth_failures, 10);
    let mut other_kid = Sender::new(&KEY, 4).unwrap();
    let protected = other_kid.protect(Codec::Opus, &[0x78, 1]).unwrap();
    assert_eq!(receiver.unprotect(Codec::Opus, &protected), Err(Error::UnknownKid(4)));
}

fn visit(kfp: &str, cfp: &str) -> (VisitKeys, VisitKeys) {
    let kiosk = EphemeralKey::generate().unwrap();
    let console = EphemeralKey::generate().unwrap();
    let k = VisitKeys::derive(&kiosk.shared_secret(&console.public_key()).unwrap(), "v1", kfp, cfp);
    let c = VisitKeys::derive(&console.shared_secret(&kiosk.public_key()).unwrap(), "v1", kfp, cfp);
    (k, c)
}

#[test]
fn both_sides_derive_the_same_keys_and_code() {
    let (k, c) = visit("sha-256 AA", "sha-256 BB");
    assert_eq!(k, c);
    assert_ne!(k.kiosk_to_console, k.console_to_kiosk);
    let groups: Vec<_> = k.code.split(' ').collect();
    assert_eq!(groups.len(), 5);
    assert!(groups.iter().all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
    // Media flows both ways under the derived keys.
    let mut to_console = Sender::new(k.base_key(Direction::KioskToConsole), KIOSK_KID).unwrap();
    let mut console_rx = Receiver::new();
    console_rx.set_key(c.base_key(Direction::KioskToConsole), KIOSK_KID).unwrap();
    let frame = to_console.protect(Codec::H264, H264).unwrap();
    assert_eq!(console_rx.unprotect(Codec::H264, &frame).unwrap(), H264);
    assert_eq!(Direction::ConsoleToKiosk.kid(), CONSOLE_KID);
}

#[test]
fn swapped_fingerprints_or_visit_give_different_keys_and_code() {
    let shared = [5u8; 32];
    let good = VisitKeys::derive(&shared, "v1", "sha-256 AA", "sha-256 BB");
    for other in [
        VisitKeys::derive(&shared, "v1", "sha-256 AC", "sha-256 BB"),
        VisitKeys::derive(&shared, "v1", "sha-256 AA", "sha-256 BC"),
        VisitKeys::derive(&shared, "v1", "sha-256 BB", "sha-256 AA"),
        VisitKeys::derive(&shared, "v2", "sha-256 AA", "sha-256 BB"),
        // Field boundaries are length-prefixed: moving a byte between fields changes the keys.
        VisitKeys::derive(&shared, "v1s", "ha-256 AA", "sha-256 BB"),
    ] {
        assert_ne!(other.kiosk_to_console, good.kiosk_to_console);
        assert_ne!(other.console_to_kiosk, good.console_to_kiosk);
        assert_ne!(other.code, good.code);
    }
    // An attacker in the middle has two different ECDH secrets: nothing matches.
    let (k, _) = visit("sha-256 AA", "sha-256 BB");
    let (_, c) = visit("sha-256 AA", "sha-256 BB");
    assert_ne!(k, c);
}

//! `receive` over a sequence of documents: the config in force only ever moves to a newer good
//! one, and `Settings` says what a body means.

use telekiosk_protocol::config::{IceServer, SignedConfig};
use telekiosk_protocol::encode;

use super::test_support::{document, payload};
use super::*;
use crate::signed::test_keys::{fleet_key, sign};

const ME: &str = "kiosk-7f3a";

/// What a caller does with `receive`: adopt accepted configs, keep the last good otherwise.
fn feed(in_force: &mut Option<Accepted>, bytes: &[u8], pinned: &PinnedKey) -> Received {
    let received = receive(bytes, pinned, ME, in_force.as_ref(), 0);
    if let Received::Accepted(a) = &received {
        *in_force = Some((**a).clone());
    }
    received
}

#[test]
fn the_last_good_config_stays_in_force_through_every_refusal() {
    let (fleet, pinned) = fleet_key();
    let (intruder, _) = fleet_key();
    let json = |v: u64| serde_json::to_string(&payload(v)).unwrap();
    let mut in_force = None;

    let v3 = document(&fleet, &json(3));
    assert!(matches!(feed(&mut in_force, &v3, &pinned), Received::Accepted(_)));
    let bad: Vec<(Vec<u8>, u64)> = vec![
        (document(&intruder, &json(4)), 4),
        (document(&fleet, &json(2)), 2),
        (document(&fleet, &json(3).replace("Room v3", "Room X")), 3),
        (encode(&SignedConfig { payload: json(9), signature: sign(&fleet, b"other") }), 9),
        (b"{\"payload\":".to_vec(), 0),
    ];
    for (bytes, claimed) in bad {
        match feed(&mut in_force, &bytes, &pinned) {
            Received::Refused { version, .. } => assert_eq!(version, claimed),
            other => panic!("accepted a bad document: {other:?}"),
        }
        let f = in_force.as_ref().unwrap();
        assert_eq!((f.payload.version, f.payload.body.room_name.as_str()), (3, "Room v3"));
    }
    // The retained copy of the config in force arrives again after a reconnect: no refusal.
    assert_eq!(feed(&mut in_force, &v3, &pinned), Received::AlreadyInForce);
    let v4 = document(&fleet, &json(4));
    assert!(matches!(feed(&mut in_force, &v4, &pinned), Received::Accepted(_)));
    assert_eq!(in_force.unwrap().payload.version, 4);
}

#[test]
fn a_config_whose_time_zone_this_kiosk_does_not_know_is_refused_naming_the_field() {
    let (fleet, pinned) = fleet_key();
    let mut p = payload(1);
    p.body.timezone = "Europe/Atlantis".into();
    let got = receive(&document(&fleet, &serde_json::to_string(&p).unwrap()), &pinned, ME, None, 0);
    match got {
        Received::Refused { version: 1, error: ConfigError::OutOfRange { field, reason } } => {
            assert_eq!(field, "timezone");
            assert!(reason.contains("Europe/Atlantis"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn settings_carry_time_outs_caps_and_ice_servers_from_the_body() {
    let mut body = defaults("Maple Valley Clinic", "Exam Room 2");
    body.wait_timeout_secs = 120;
    body.max_visit_secs = 1800;
    body.media.max_width = 640;
    body.media.max_bitrate_kbps = 400;
    body.ice_servers = vec![
        IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            username: None,
            credential: None,
        },
        IceServer {
            urls: vec![
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:5349".into(),
            ],
            username: Some("kiosk".into()),
            credential: Some("p@ss:word".into()),
        },
    ];
    let s = Settings::new(&body, Schedule::always_open());
    assert_eq!((s.clinic.as_str(), s.room.as_str()), ("Maple Valley Clinic", "Exam Room 2"));
    assert_eq!((s.timeouts.wait_ms, s.timeouts.max_visit_ms), (120_000, 1_800_000));
    assert_eq!((s.call.max_width, s.call.max_height, s.call.max_bitrate_kbps), (640, 720, 400));
    assert_eq!(s.call.stun.as_deref(), Some("stun://stun.example.org:3478"));
    assert_eq!(
        s.call.turn,
        [
            "turn://kiosk:p%40ss%3Aword@turn.example.org:3478?transport=udp",
            "turns://kiosk:p%40ss%3Aword@turn.example.org:5349"
        ]
    );
    assert_eq!(s.telemetry_interval, Duration::from_secs(60));
}

/// Review L6: with no config in force (the stored file wiped), the TPM's floor still refuses
/// an older config; the floor's own version (fleetd's current one) is taken again.
#[test]
fn below_the_version_floor_nothing_is_taken_even_with_no_config_in_force() {
    let (fleet, pinned) = fleet_key();
    let doc = |v: u64| document(&fleet, &serde_json::to_string(&payload(v)).unwrap());
    match receive(&doc(4), &pinned, ME, None, 5) {
        Received::Refused { version: 4, error: ConfigError::NotNewer { .. } } => {}
        other => panic!("an older config was taken after a wipe: {other:?}"),
    }
    assert!(matches!(receive(&doc(5), &pinned, ME, None, 5), Received::Accepted(_)));
    assert!(matches!(receive(&doc(6), &pinned, ME, None, 5), Received::Accepted(_)));
}

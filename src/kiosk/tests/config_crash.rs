//! Power loss mid-write, approximated by SIGKILL: a writer process stores two configs in turn,
//! as fast as it can, and is killed at a random moment, again and again. After every kill the
//! stored file must load and verify as one of the two whole documents — never a torn one.
//!
//! The writer is this very test binary, re-run with `TELEKIOSK_CRASH_WRITER` set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use telekiosk::config::store::ConfigStore;
use telekiosk::signed::PinnedKey;
use telekiosk_protocol::config::{
    CONFIG_SCHEMA, ConfigBody, ConfigPayload, OpeningHours, SignedConfig, Weekday,
};

const WRITER_ENV: &str = "TELEKIOSK_CRASH_WRITER";
const ME: &str = "kiosk-crash";
const KILLS: usize = 60;

/// A fixed test key, so the writer process signs with the key the parent pins.
fn fleet_key() -> (Ed25519KeyPair, PinnedKey) {
    let pair = Ed25519KeyPair::from_seed_unchecked(&[42; 32]).unwrap();
    let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    (pair, PinnedKey::from_raw(public))
}

/// Config `version`; even versions are much larger than odd ones, so a torn write of one over
/// the other could not be mistaken for either.
fn document(pair: &Ed25519KeyPair, version: u64) -> SignedConfig {
    let hours = |n| {
        (0..n)
            .map(|_| OpeningHours {
                day: Weekday::Mon,
                open: "08:00".into(),
                close: "17:00".into(),
            })
            .collect()
    };
    let body = ConfigBody {
        room_name: format!("Room {version}"),
        opening_hours: if version.is_multiple_of(2) { hours(14) } else { hours(1) },
        out_of_service_message: if version.is_multiple_of(2) {
            "x".repeat(200)
        } else {
            "Closed".into()
        },
        ..ConfigBody::default()
    };
    let payload = ConfigPayload {
        schema: CONFIG_SCHEMA,
        device_id: ME.into(),
        group: "crash".into(),
        version,
        issued_at: 1_760_000_000,
        body,
    };
    let text = serde_json::to_string(&payload).unwrap();
    let signature = base64::engine::general_purpose::STANDARD.encode(pair.sign(text.as_bytes()));
    SignedConfig { payload: text, signature }
}

/// The child: stores versions 1 and 2 in turn until killed.
fn write_forever(dir: &Path) -> ! {
    let (pair, _) = fleet_key();
    let docs = [document(&pair, 1), document(&pair, 2)];
    let store = ConfigStore::new(dir, None);
    println!("ready");
    for i in 0.. {
        store.save(&docs[i % 2]).unwrap();
    }
    unreachable!()
}

#[test]
fn a_writer_killed_at_random_moments_always_leaves_a_whole_verified_config() {
    if let Some(dir) = std::env::var_os(WRITER_ENV) {
        write_forever(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let (pair, pinned) = fleet_key();
    let store = ConfigStore::new(dir.path(), None);
    store.save(&document(&pair, 1)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen = [0usize; 3];
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "a_writer_killed_at_random_moments_always_leaves_a_whole_verified_config",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it is writing, then let it write for a random while (several writes).
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !line.contains("ready") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "writer {kill} ended before writing");
        }
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..25_000)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "writer {kill} was not killed but exited: {status}");

        let loaded = store
            .load(&pinned, ME)
            .unwrap_or_else(|e| panic!("after kill {kill} the stored config is broken: {e}"))
            .unwrap_or_else(|| panic!("after kill {kill} the stored config is gone"));
        let v = loaded.payload.version as usize;
        assert!(v == 1 || v == 2, "after kill {kill}: version {v}");
        assert_eq!(loaded.signed, document(&pair, v as u64), "after kill {kill}");
        seen[v] += 1;
    }
    eprintln!("after {KILLS} kills: version 1 {} times, version 2 {} times", seen[1], seen[2]);
    // Both documents were in the file at some kill: the writer really was writing.
    assert!(seen[1] > 0 && seen[2] > 0, "{seen:?}");
}

//! Table of commands, good and bad, each with the refusal it must get; replay across a restart;
//! reboot and restart waiting for the visit.

use ring::signature::Ed25519KeyPair;
use telekiosk_protocol::command::SignedCommand;
use telekiosk_protocol::encode;

use super::seen::SeenStore;
use super::*;
use crate::signed::test_keys::{fleet_key, sign};

const ME: &str = "kiosk-7f3a";
const NOW: i64 = 1_760_000_000;

fn payload(id: &str, command: Command) -> CommandPayload {
    CommandPayload {
        device_id: ME.into(),
        command_id: id.into(),
        issued_at: NOW - 10,
        expires_at: NOW + 600,
        command,
    }
}

fn signed(pair: &Ed25519KeyPair, p: &CommandPayload) -> Vec<u8> {
    let text = serde_json::to_string(p).unwrap();
    encode(&SignedCommand { signature: sign(pair, text.as_bytes()), payload: text })
}

#[test]
fn each_bad_command_is_refused_with_its_reason_and_its_id_when_readable() {
    let (fleet, pinned) = fleet_key();
    let (intruder, _) = fleet_key();
    let mut seen = RecentIds::default();
    seen.insert("cmd-ran", NOW + 600, NOW);

    let good = payload("cmd-1", Command::Identify { seconds: 10 });
    let other_device = CommandPayload { device_id: "kiosk-0000".into(), ..good.clone() };
    let expired = CommandPayload { issued_at: NOW - 700, expires_at: NOW - 1, ..good.clone() };
    let future = CommandPayload { issued_at: NOW + 900, expires_at: NOW + 1200, ..good.clone() };
    let too_long = payload("cmd-1", Command::Identify { seconds: 600 });
    let replayed = payload("cmd-ran", Command::Reboot);
    let text = serde_json::to_string(&good).unwrap();
    let other_bytes = encode(&SignedCommand {
        payload: text.clone(),
        signature: sign(&fleet, b"something else"),
    });

    use CommandError as E;
    type Check = fn(&CommandError) -> bool;
    let table: Vec<(&str, Vec<u8>, &str, Check)> = vec![
        ("signed by another key", signed(&intruder, &good), "cmd-1", |e| *e == E::BadSignature),
        ("signature over other bytes", other_bytes, "cmd-1", |e| *e == E::BadSignature),
        (
            "another device's command",
            signed(&fleet, &other_device),
            "cmd-1",
            |e| matches!(e, E::WrongDevice { got, .. } if got == "kiosk-0000"),
        ),
        ("expired", signed(&fleet, &expired), "cmd-1", |e| {
            *e == E::Expired { expires_at: NOW - 1, now: NOW }
        }),
        ("issued in the future", signed(&fleet, &future), "cmd-1", |e| {
            matches!(e, E::NotYetValid { .. })
        }),
        ("identify for too long", signed(&fleet, &too_long), "cmd-1", |e| {
            matches!(e, E::Invalid { field: "seconds", .. })
        }),
        ("replayed", signed(&fleet, &replayed), "cmd-ran", |e| *e == E::Replayed("cmd-ran".into())),
        ("truncated", signed(&fleet, &good)[..40].to_vec(), "", |e| matches!(e, E::Malformed(_))),
        ("oversized", vec![b' '; 70 * 1024], "", |e| matches!(e, E::TooLarge { .. })),
    ];
    for (name, bytes, id, is) in table {
        match verify(&bytes, &pinned, ME, NOW, &seen) {
            Err(Refusal { command_id, error }) => {
                assert!(is(&error), "{name}: wrong refusal {error:?}");
                assert_eq!(command_id, id, "{name}");
                assert!(!error.to_string().is_empty());
            }
            Ok(p) => panic!("{name}: accepted {p:?}"),
        }
    }
    let ok = verify(&signed(&fleet, &good), &pinned, ME, NOW, &seen).unwrap();
    assert_eq!(ok, good);
    // At the last second of its window a command still runs; one second later it does not.
    let at_edge = verify(&signed(&fleet, &good), &pinned, ME, NOW + 600, &seen);
    assert!(at_edge.is_ok(), "{at_edge:?}");
    assert!(verify(&signed(&fleet, &good), &pinned, ME, NOW + 601, &seen).is_err());
}

#[test]
fn a_command_runs_once_even_across_a_restart_and_old_ids_are_forgotten_after_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, pinned) = fleet_key();
    let store = SeenStore::new(dir.path());
    let cmd = payload("cmd-restart-1", Command::RestartApp);
    let bytes = signed(&fleet, &cmd);

    let mut seen = store.load();
    let p = verify(&bytes, &pinned, ME, NOW, &seen).unwrap();
    seen.insert(&p.command_id, p.expires_at, NOW);
    store.save(&seen).unwrap();

    // The kiosk restarts (e.g. because of this very command) and the broker delivers it again.
    let seen = store.load();
    let err = verify(&bytes, &pinned, ME, NOW + 5, &seen).unwrap_err();
    assert_eq!(err.error, CommandError::Replayed("cmd-restart-1".into()));

    let mut seen = seen;
    seen.insert("cmd-later", NOW + 3000, NOW + 700);
    assert!(!seen.contains("cmd-restart-1"), "expired ids are forgotten");
    assert_eq!(seen.len(), 1);

    std::fs::write(dir.path().join(super::seen::FILE), b"{torn").unwrap();
    assert!(store.load().is_empty(), "a damaged file reads as empty, not a crash");
}

#[test]
fn remembered_ids_are_bounded() {
    let mut seen = RecentIds::default();
    for i in 0..(MAX_REMEMBERED as i64 + 20) {
        seen.insert(&format!("c{i}"), NOW + 100 + i, NOW);
    }
    assert_eq!(seen.len(), MAX_REMEMBERED);
    assert!(seen.contains(&format!("c{}", MAX_REMEMBERED + 19)), "the newest is kept");
    assert!(!seen.contains("c0"), "the soonest to expire goes first");
}

#[test]
fn reboot_restart_and_probe_wait_for_a_visit_in_progress_other_commands_do_not() {
    let table = [
        (Command::Reboot, true, Plan::AfterVisit),
        (Command::RestartApp, true, Plan::AfterVisit),
        (Command::Reboot, false, Plan::Now),
        (Command::RestartApp, false, Plan::Now),
        (Command::Identify { seconds: 5 }, true, Plan::Now),
        (Command::CollectDiagnostics, true, Plan::Now),
        (Command::ProbeHardware, true, Plan::AfterVisit),
        (Command::ProbeHardware, false, Plan::Now),
    ];
    for (command, busy, want) in table {
        assert_eq!(plan(&command, busy), want, "{command:?} busy={busy}");
    }
}

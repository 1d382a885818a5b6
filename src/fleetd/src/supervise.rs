//! Watches fleetd's background tasks while it serves: the first one to end or panic is named,
//! so `serve` can log it and exit non-zero for systemd to restart fleetd, and the health route
//! answers 503 naming that part.
//!
//! It owns nothing but the "which part is down" flag; it must never abort, restart or await a
//! task to completion itself (shutdown stays in `serve`), and never report anything but a part's
//! name (no counts, no addresses, no secrets).
//!
//! Test hook, compiled into debug builds only: with `FLEETD_TEST_PANIC=<part>` in its
//! environment, that supervised part panics where it calls [`injected_panic`] (the signalling
//! hub at its first tick, the revocation watcher at its first poll), so the integration tests
//! can show that fleetd exits non-zero naming it. A release build ignores the variable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};

/// How a watched task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The task's name, as given to [`first_to_end`].
    pub name: &'static str,
    /// True if it panicked (or was cancelled), false if it returned.
    pub panicked: bool,
}

impl Ended {
    fn from(name: &'static str, res: &Result<(), JoinError>) -> Self {
        Self { name, panicked: res.is_err() }
    }

    /// One line for the log and the exit error.
    pub fn describe(&self) -> String {
        let how = if self.panicked { "panicked" } else { "stopped" };
        format!("the background task `{}` {how} while fleetd was serving", self.name)
    }
}

/// How long, after a part returned, a panic elsewhere is still taken as the cause: a task that
/// panics drops its channels while it unwinds (printing a backtrace can take a second), so the
/// part reading from it may return first, as an echo of the panic.
pub const PANIC_GRACE: Duration = Duration::from_secs(3);

/// Waits until the first of `tasks` ends and names it — or, if it returned and another one
/// panics within [`PANIC_GRACE`], names the one that panicked, the cause. Never resolves for an
/// empty list. The handles are borrowed: one that ended must not be awaited again (check
/// `is_finished` first).
pub async fn first_to_end(mut tasks: Vec<(&'static str, &mut JoinHandle<()>)>) -> Ended {
    let first = next_to_end(&mut tasks).await;
    if first.panicked {
        return first;
    }
    let deadline = tokio::time::Instant::now() + PANIC_GRACE;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, next_to_end(&mut tasks)).await {
            Ok(then) if then.panicked => return then,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    first
}

/// Waits for the next of `tasks` to end and takes it off the list. Never resolves for an empty
/// list.
async fn next_to_end(tasks: &mut Vec<(&'static str, &mut JoinHandle<()>)>) -> Ended {
    std::future::poll_fn(|cx| {
        for i in 0..tasks.len() {
            if let Poll::Ready(res) = Pin::new(&mut *tasks[i].1).poll(cx) {
                let (name, _) = tasks.remove(i);
                return Poll::Ready(Ended::from(name, &res));
            }
        }
        Poll::Pending
    })
    .await
}

/// Which part is down, shared by the supervisor and the health route.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<Option<&'static str>>>);

impl Health {
    /// Marks `part` as down (the first one named stays).
    pub fn down(&self, part: &'static str) {
        let mut down = self.0.lock().unwrap_or_else(|e| e.into_inner());
        down.get_or_insert(part);
    }

    /// `None` while every part runs, else the first part that went down.
    pub fn first_down(&self) -> Option<&'static str> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The environment variable of the test hook (see the module documentation).
#[cfg(debug_assertions)]
pub const TEST_PANIC: &str = "FLEETD_TEST_PANIC";

/// Debug builds: panics if [`TEST_PANIC`] names `part`. Release builds: does nothing.
#[cfg(debug_assertions)]
pub fn injected_panic(part: &str) {
    if std::env::var(TEST_PANIC).is_ok_and(|p| p == part) {
        panic!("{TEST_PANIC} asked `{part}` to panic");
    }
}

/// Debug builds: panics if `FLEETD_TEST_PANIC` names `part`. Release builds: does nothing.
#[cfg(not(debug_assertions))]
pub fn injected_panic(_part: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_named_and_reported_as_a_panic() {
        let mut hub = tokio::spawn(async { panic!("router bug") });
        let mut watcher = tokio::spawn(std::future::pending::<()>());
        let ended = first_to_end(vec![("hub", &mut hub), ("watcher", &mut watcher)]).await;
        assert_eq!(ended, Ended { name: "hub", panicked: true });
        assert!(ended.describe().contains("`hub` panicked"));
        assert!(!watcher.is_finished());
        watcher.abort();
    }

    #[tokio::test]
    async fn a_task_that_returns_is_named_and_not_called_a_panic() {
        let mut hub = tokio::spawn(std::future::pending::<()>());
        let mut receive = tokio::spawn(async {});
        let ended = first_to_end(vec![("hub", &mut hub), ("mqtt receive", &mut receive)]).await;
        assert_eq!(ended, Ended { name: "mqtt receive", panicked: false });
        assert!(ended.describe().contains("`mqtt receive` stopped"));
        hub.abort();
    }

    #[tokio::test]
    async fn a_part_that_returns_because_another_panics_is_not_blamed() {
        // The audit queue returns when the hub's sender is dropped; the hub's panic is known a
        // moment later (as while a backtrace prints): the hub is named.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut audit = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let mut hub = tokio::spawn(async move {
            drop(tx);
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!("router bug")
        });
        let ended = first_to_end(vec![("audit queue", &mut audit), ("hub", &mut hub)]).await;
        assert_eq!(ended, Ended { name: "hub", panicked: true });
    }

    #[test]
    fn health_keeps_the_first_part_that_went_down() {
        let health = Health::default();
        assert_eq!(health.first_down(), None);
        health.down("hub");
        health.down("audit queue");
        assert_eq!(health.first_down(), Some("hub"));
    }
}

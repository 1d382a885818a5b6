//! The controller's fleet side: applying config documents, running signed commands, and
//! reporting the device state. The decisions are made by the pure cores (`config::receive`,
//! `command::verify`, `command::plan`, `telemetry`); this file carries them out.
//!
//! Must never: interrupt a visit in progress (new caps wait for the next call, reboot and
//! restart wait for the visit to end), or log anything about a patient — audit lines (target
//! `audit`) carry versions, command ids and reasons only.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use telekiosk_protocol::command::{Command, CommandOutcome, CommandPayload, CommandResult};
use telekiosk_protocol::config::SignedConfig;
use telekiosk_protocol::device::{ConfigRefusal, LastVisit, PartStatus};
use telekiosk_protocol::probe::ProbeReport;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::telemetry::{self, CallReport, Facts};
use super::{Controller, Exit, Input, Running, status};
use crate::command::{self, Plan, Refusal};
use crate::config::store::ConfigStore;
use crate::config::{self, Received, Settings};
use crate::update::Answer;

/// Longest a reboot command may take to answer before it counts as failed.
const REBOOT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A task that stores accepted configs one after the other (TPM counter and fsync block, so
/// they run off the controller's task; in order, so an older document never overwrites a newer).
pub(super) fn spawn_store(store: ConfigStore) -> UnboundedSender<SignedConfig> {
    let (tx, mut rx) = unbounded_channel::<SignedConfig>();
    tokio::spawn(async move {
        while let Some(signed) = rx.recv().await {
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.save(&signed)).await {
                Ok(Ok(())) => tracing::debug!("config stored"),
                Ok(Err(e)) => tracing::error!("{e}"),
                Err(e) => tracing::error!("storing the config panicked: {e}"),
            }
        }
    });
    tx
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Controller {
    /// Puts settings in force (those of `run.fleet.in_force`, or the built-in defaults without one):
    /// names and time-outs at once (a visit in progress keeps going),
    /// opening hours at once (they only gate Join), log level at once, media caps and ICE
    /// servers from the next visit, telemetry from the next report.
    pub(super) fn apply(&mut self, settings: Settings, run: &mut Running) {
        self.visit.update(&settings.clinic, &settings.room, settings.timeouts.clone());
        self.visit.set_languages(&settings.languages);
        self.visit.set_patient_defaults(settings.default_language, settings.speaker_volume_pct);
        self.screen.names(&settings.clinic, &settings.room);
        // The built-in defaults leave the level the kiosk was started with (RUST_LOG).
        if run.fleet.in_force.is_some() {
            (self.agent.set_log_level)(settings.log_level);
        }
        let closed = settings.schedule.closed_message(jiff::Timestamp::now());
        self.visit.set_closed(closed.map(str::to_string));
        run.reporting.next_report =
            run.reporting.next_report.min(Instant::now() + settings.telemetry_interval);
        run.fleet.settings = settings;
    }

    /// A document from the `config` topic.
    pub(super) fn on_config(&mut self, bytes: &[u8], run: &mut Running) {
        let a = &self.agent;
        let (in_force, floor) = (run.fleet.in_force.as_ref(), a.store.version_floor());
        match config::receive(bytes, &a.pinned, &a.device_id, in_force, floor) {
            Received::AlreadyInForce => tracing::debug!("the config in force arrived again"),
            Received::Accepted(accepted) => {
                let version = accepted.payload.version;
                tracing::info!(target: "audit", event = "config_applied", version, "config applied");
                status(
                    &serde_json::json!({"event": "config", "outcome": "applied", "version": version}),
                );
                let settings = Settings::of(&accepted);
                let _ = run.fleet.store_tx.send(accepted.signed.clone());
                run.fleet.in_force = Some(*accepted);
                run.fleet.refusal = None;
                self.apply(settings, run);
                self.report(run);
            }
            Received::Refused { version, error } => {
                let reason = error.to_string();
                tracing::warn!(target: "audit", event = "config_refused", version, %reason, "config refused");
                status(&serde_json::json!({
                    "event": "config", "outcome": "refused", "version": version, "reason": reason,
                }));
                run.fleet.refusal = Some(ConfigRefusal { version, reason });
                self.report(run);
            }
        }
    }

    /// A document from the `cmd` topic: verified, remembered, then run now or after the visit.
    pub(super) async fn on_command(&mut self, bytes: &[u8], run: &mut Running) {
        let now = unix_now();
        let a = &self.agent;
        let payload = match command::verify(bytes, &a.pinned, &a.device_id, now, &run.fleet.seen) {
            Ok(p) => p,
            Err(Refusal { command_id, error }) => {
                let reason = error.to_string();
                tracing::warn!(target: "audit", event = "command_refused", %command_id, %reason, "command refused");
                return self.result(&command_id, CommandOutcome::Refused, reason);
            }
        };
        // Remembered on disk before it runs: a crash makes it run at most once.
        run.fleet.seen.insert(&payload.command_id, payload.expires_at, now);
        if let Err(e) = self.agent.seen.save(&run.fleet.seen) {
            tracing::error!("{e}");
            let reason = format!("cannot record the command as run, so it was not run: {e}");
            return self.result(&payload.command_id, CommandOutcome::Refused, reason);
        }
        tracing::info!(target: "audit", event = "command_accepted", command_id = %payload.command_id, command = ?payload.command, "command accepted");
        match command::plan(&payload.command, self.visit.in_progress().is_some()) {
            Plan::AfterVisit => {
                let detail = "a visit is in progress: this runs when it ends".to_string();
                self.result(&payload.command_id, CommandOutcome::Deferred, detail);
                run.fleet.deferred.push(payload);
            }
            Plan::Now => self.execute(payload, run).await,
        }
    }

    async fn execute(&mut self, payload: CommandPayload, run: &mut Running) {
        let id = payload.command_id.as_str();
        match payload.command {
            Command::Identify { seconds } => {
                run.identify_until = Some(Instant::now() + Duration::from_secs(seconds.into()));
                self.screen.identify(Some(&self.visit.room));
                status(&serde_json::json!({"event": "identify", "on": true, "seconds": seconds}));
                self.result(id, CommandOutcome::Done, format!("identifying for {seconds} s"));
            }
            Command::CollectDiagnostics => {
                let lines = self.agent.recent_errors.lines();
                let detail = telemetry::diagnostics(&self.facts(run), &self.profile.name, &lines);
                self.result(id, CommandOutcome::Done, detail);
            }
            Command::ProbeHardware if run.fleet.probing => {
                let reason = "a hardware probe is already running: its result will follow".into();
                self.result(id, CommandOutcome::Refused, reason);
            }
            Command::ProbeHardware => {
                // Off the loop: the trial encodes take seconds. The result follows as an input.
                run.fleet.probing = true;
                status(&serde_json::json!({"event": "probe", "running": true}));
                let (probing, tx, command_id) =
                    (self.hardware.probe(), run.tx.clone(), id.to_string());
                tokio::spawn(async move {
                    let report = probing.await.map(Box::new);
                    let _ = tx.send(Input::Probed { command_id, report });
                });
            }
            Command::InstallUpdate(order) => {
                let answer = match &self.agent.updates {
                    Some(updates) => updates.order(order).await,
                    None => Answer::Refused(
                        "this kiosk does not run from an A/B appliance image, so it cannot \
                         install OS updates"
                            .into(),
                    ),
                };
                match answer {
                    Answer::Accepted(detail) => self.result(id, CommandOutcome::Done, detail),
                    Answer::Refused(reason) => {
                        tracing::warn!(target: "audit", event = "update_refused", %reason, "update refused");
                        self.result(id, CommandOutcome::Refused, reason)
                    }
                }
            }
            Command::RestartApp => {
                self.result(id, CommandOutcome::Done, "restarting the kiosk program".into());
                run.exit = Some(Exit::Restart);
            }
            Command::Reboot => match self.reboot().await {
                Ok(()) => self.result(id, CommandOutcome::Done, "rebooting".into()),
                Err(reason) => {
                    tracing::error!("{reason}");
                    self.result(id, CommandOutcome::Refused, reason);
                }
            },
        }
    }

    /// A probe has finished: its report is the command's result.
    pub(super) fn probed(&self, command_id: &str, report: Result<Box<ProbeReport>, String>) {
        let suggested = report.as_ref().ok().and_then(|r| r.suggestion.profile.clone());
        status(&serde_json::json!({"event": "probe", "running": false, "suggested": suggested}));
        match report {
            Ok(report) => {
                let detail = serde_json::to_string(&report).unwrap_or_default();
                self.result(command_id, CommandOutcome::Done, detail);
            }
            Err(reason) => {
                tracing::error!("{reason}");
                self.result(command_id, CommandOutcome::Refused, reason);
            }
        }
    }

    /// Reboots: on an appliance through its reboot unit (the kiosk may not reboot itself),
    /// elsewhere with the reboot command; `Err` says why it did not work.
    async fn reboot(&self) -> Result<(), String> {
        if let Some(updates) = &self.agent.updates {
            return updates.reboot().await;
        }
        let argv = &self.agent.reboot_command;
        let shown = argv.join(" ");
        let (program, args) = argv.split_first().ok_or("no reboot command is configured")?;
        let run = tokio::process::Command::new(program).args(args).kill_on_drop(true).output();
        match tokio::time::timeout(REBOOT_COMMAND_TIMEOUT, run).await {
            Err(_) => Err(format!("the reboot command `{shown}` did not finish in 30 s")),
            Ok(Err(e)) => Err(format!("cannot run the reboot command `{shown}`: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let first = stderr.lines().next().unwrap_or("").trim();
                Err(format!("the reboot command `{shown}` failed ({}): {first}", out.status))
            }
        }
    }

    fn result(&self, command_id: &str, outcome: CommandOutcome, detail: String) {
        status(
            &serde_json::json!({"event": "command", "command_id": command_id, "outcome": outcome}),
        );
        let result = CommandResult { command_id: command_id.to_string(), outcome, detail };
        if let Err(e) = self.uplink.send_result(&result) {
            tracing::warn!("cannot send the command result: {e}");
        }
    }

    /// A visit has just ended: health and last-visit facts, the state report, and any reboot or
    /// restart that was waiting for it.
    pub(super) async fn visit_ended(&mut self, run: &mut Running) {
        let report = CallReport {
            stats: run.call.last_stats.take().unwrap_or_default(),
            ran: run.call.media_started.take().map_or(Duration::ZERO, |t| t.elapsed()),
            connected: run.call.connected_at.take().map_or(Duration::ZERO, |t| t.elapsed()),
            start_failed: std::mem::take(&mut run.call.start_failed),
        };
        run.reporting.health = telemetry::health_after_call(&run.reporting.health, &report);
        if let Some(started) = run.call.visit_started.take() {
            let duration_secs = started.elapsed().as_secs().min(u32::MAX.into()) as u32;
            run.reporting.last_visit = Some(LastVisit { ended_at: unix_now(), duration_secs });
        }
        self.report(run);
        for payload in std::mem::take(&mut run.fleet.deferred) {
            self.execute(payload, run).await;
        }
    }

    /// Every half second: opening hours, the identify banner, the periodic state report, and
    /// what the update task must know (the moment, and health once).
    pub(super) fn on_tick(&mut self, run: &mut Running) {
        let closed = run.fleet.settings.schedule.closed_message(jiff::Timestamp::now());
        self.visit.set_closed(closed.map(str::to_string));
        self.tell_updates(run, closed.is_some());
        if run.identify_until.is_some_and(|t| Instant::now() >= t) {
            run.identify_until = None;
            self.screen.identify(None);
            status(&serde_json::json!({"event": "identify", "on": false}));
        }
        if Instant::now() >= run.reporting.next_report {
            run.reporting.next_report = Instant::now() + run.fleet.settings.telemetry_interval;
            self.report(run);
        }
    }

    /// The update task installs and reboots only when no patient is at the screen, and by
    /// default only when the clinic is closed (a clinic without opening hours never is: then
    /// any moment without a patient will do). The first time the kiosk is connected with its
    /// media and TPM working, the appliance's update check is told this boot is healthy.
    fn tell_updates(&self, run: &mut Running, closed: bool) {
        let Some(updates) = &self.agent.updates else { return };
        let busy = !matches!(self.visit.state(), crate::visit::State::Idle);
        let closed = closed || run.fleet.settings.schedule.is_empty();
        if run.reporting.moment != Some((busy, closed)) {
            run.reporting.moment = Some((busy, closed));
            updates.moment(busy, closed);
        }
        let h = &run.reporting.health;
        let working = |p: PartStatus| !matches!(p, PartStatus::Failed | PartStatus::Missing);
        let healthy = run.fleet.online
            && self.media_unavailable.is_none()
            && h.tpm == PartStatus::Ok
            && working(h.camera)
            && working(h.microphone);
        if healthy && !run.reporting.told_healthy {
            run.reporting.told_healthy = true;
            updates.healthy();
        }
    }

    fn facts<'a>(&'a self, run: &'a Running) -> Facts<'a> {
        Facts {
            clinic: &self.visit.clinic,
            room: &self.visit.room,
            config_version: run.fleet.in_force.as_ref().map_or(0, |a| a.payload.version),
            refusal: run.fleet.refusal.as_ref(),
            uptime: run.started.elapsed(),
            health: &run.reporting.health,
            network: run.reporting.network.as_ref(),
            last_visit: run.reporting.last_visit.as_ref(),
            os: run.reporting.os.as_ref(),
        }
    }

    /// Publishes the device state now if online; keeps it for the next connection otherwise.
    pub(super) fn report(&self, run: &Running) {
        let state = telemetry::device_state(&self.facts(run));
        if !run.fleet.online {
            self.uplink.set_state(state);
        } else if let Err(e) = self.uplink.publish_state(state) {
            tracing::warn!("cannot publish the device state: {e}");
        }
    }
}

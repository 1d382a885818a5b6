//! OS updates on the kiosk: the decisions, pure. An [`Updater`] takes the order of an
//! `install_update` command, what the fetch and the install report, and whether a visit is in
//! progress and a reboot allowed now; it returns [`Action`]s for its adapter ([`agent`]) to
//! carry out through the files the appliance's root-owned units watch ([`files`], the
//! contract in `image/UPDATES.md`).
//!
//! Must never: install or reboot while a visit is in progress; reboot inside opening hours
//! unless the order allows it; lose track of an update across a restart or a reboot (the
//! order and its stage are kept in `update/state.json` before each step is taken); call an
//! update good that the kiosk is not running.

pub mod agent;
pub mod fetch;
pub mod files;

use serde::{Deserialize, Serialize};
use telekiosk_protocol::update::{FailedUpdate, OsState, UpdateOrder, UpdatePhase, UpdateProgress};

/// What the running system is, read at start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Booted {
    /// `IMAGE_VERSION` of the running image.
    pub version: String,
    /// `A` or `B`.
    pub slot: String,
    /// Not yet marked good.
    pub trial: bool,
    /// What the health check said about the last trial, if it ended one badly:
    /// (version, reason).
    pub trial_failed: Option<(String, String)>,
}

/// Where the update in hand stands (kept on disk with its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Fetching the bundle.
    Download,
    /// Fetched and checked: install when no visit is in progress.
    Install,
    /// `install.request` written; waiting for `install.result`.
    Installing,
    /// Installed into the other slot: reboot when allowed.
    Reboot,
    /// `reboot.request` written: the next start tells how it went.
    Rebooting,
}

/// What is kept in `update/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Kept {
    pub order: Option<UpdateOrder>,
    pub stage: Option<Stage>,
    pub failed: Option<FailedUpdate>,
}

/// What an install that was under way when the kiosk stopped left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leftovers {
    /// `install.result` is there.
    pub install_result: bool,
    /// The bundle is still there.
    pub bundle: bool,
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write [`Kept`] to disk (before the actions after it).
    Keep(Kept),
    /// Fetch the order's bundle (resuming a partial file), then report [`Updater::fetched`].
    Fetch(UpdateOrder),
    /// Stop a fetch in progress (a newer order replaced it).
    CancelFetch,
    /// Write `install.request` for the fetched bundle; report [`Updater::installed`].
    Install { version: String },
    /// Write `trial.json`, then `reboot.request`.
    Reboot { version: String, health_timeout_secs: u32 },
    /// Remove the bundle and any partial download.
    Clean,
    /// Remove the concluded trial's files.
    ForgetTrial,
}

/// The answer to an order, for the command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Taken on (or already in hand); plain words for the result.
    Accepted(String),
    /// Refused; why, in plain words.
    Refused(String),
}

/// The update decisions of one kiosk.
#[derive(Debug, Clone)]
pub struct Updater {
    booted: Booted,
    kept: Kept,
    /// Bytes fetched so far, for the progress report.
    done_bytes: u64,
}

impl Updater {
    /// Starts from what the system is and what was kept; returns what to do first (go on with
    /// a fetch, or conclude an update that rebooted).
    pub fn start(booted: Booted, mut kept: Kept, left: Leftovers) -> (Self, Vec<Action>) {
        let mut actions = Vec::new();
        match (kept.order.clone(), kept.stage) {
            (Some(order), Some(Stage::Rebooting)) => {
                if booted.version == order.version {
                    // The new version runs: the health check marks it good (or bad, and the
                    // next start sees the old version again).
                    if kept.failed.as_ref().is_some_and(|f| f.version == order.version) {
                        kept.failed = None;
                    }
                } else {
                    let reason = match &booted.trial_failed {
                        Some((v, reason)) if *v == order.version => reason.clone(),
                        _ => format!(
                            "version {} did not start properly, so the kiosk went back to {}",
                            order.version, booted.version
                        ),
                    };
                    kept.failed = Some(FailedUpdate { version: order.version, reason });
                }
                kept.order = None;
                kept.stage = None;
                actions.extend([Action::Keep(kept.clone()), Action::ForgetTrial]);
            }
            (Some(order), Some(Stage::Download)) => actions.push(Action::Fetch(order)),
            // Stopped while installing (a restart, or a power cut: the install unit removes
            // its request when it starts): its result is read if it came, else the install is
            // asked for again (RAUC writes the slot from the start), else the bundle is
            // fetched again.
            (Some(_), Some(Stage::Installing)) if left.install_result => {}
            (Some(_), Some(Stage::Installing)) if left.bundle => {
                kept.stage = Some(Stage::Install);
                actions.push(Action::Keep(kept.clone()));
            }
            (Some(order), Some(Stage::Installing)) => {
                kept.stage = Some(Stage::Download);
                actions.extend([Action::Keep(kept.clone()), Action::Fetch(order)]);
            }
            _ => {}
        }
        (Self { booted, kept, done_bytes: 0 }, actions)
    }

    /// An `install_update` order.
    pub fn order(&mut self, order: UpdateOrder) -> (Answer, Vec<Action>) {
        let v = order.version.clone();
        if self.booted.slot.is_empty() {
            let why = "this kiosk does not run from an A/B appliance image, so it cannot install OS updates";
            return (Answer::Refused(why.into()), vec![]);
        }
        if self.booted.version == v {
            return (Answer::Accepted(format!("version {v} is already running")), vec![]);
        }
        if let Some(current) = &self.kept.order {
            if *current == order {
                let stage = self.kept.stage.map_or("queued", stage_name);
                return (
                    Answer::Accepted(format!("version {v} is already in hand ({stage})")),
                    vec![],
                );
            }
            if matches!(self.kept.stage, Some(Stage::Installing | Stage::Rebooting)) {
                let why = format!(
                    "version {} is being installed; send {v} again once the kiosk reports it",
                    current.version
                );
                return (Answer::Refused(why), vec![]);
            }
        }
        let mut actions = Vec::new();
        if self.kept.order.is_some() {
            actions.extend([Action::CancelFetch, Action::Clean]);
        }
        self.kept.order = Some(order.clone());
        self.kept.stage = Some(Stage::Download);
        self.done_bytes = 0;
        actions.extend([Action::Keep(self.kept.clone()), Action::Fetch(order)]);
        (Answer::Accepted(format!("fetching version {v}")), actions)
    }

    /// The health check marked this boot's slot good (or not yet).
    pub fn set_trial(&mut self, trial: bool) {
        self.booted.trial = trial;
    }

    /// Fetch progress.
    pub fn progress(&mut self, done_bytes: u64) {
        self.done_bytes = done_bytes;
    }

    /// The fetch of `version` ended: checked (`Ok`) or given up (`Err`, why).
    pub fn fetched(&mut self, version: &str, result: Result<(), String>) -> Vec<Action> {
        if !self.current(version, Stage::Download) {
            return vec![];
        }
        match result {
            Ok(()) => {
                self.kept.stage = Some(Stage::Install);
                vec![Action::Keep(self.kept.clone())]
            }
            Err(reason) => self.fail(reason),
        }
    }

    /// `install.result` for `version`.
    pub fn installed(&mut self, version: &str, result: Result<(), String>) -> Vec<Action> {
        if !self.current(version, Stage::Installing) {
            return vec![];
        }
        match result {
            Ok(()) => {
                self.kept.stage = Some(Stage::Reboot);
                vec![Action::Keep(self.kept.clone())]
            }
            Err(reason) => self.fail(format!("the install of version {version} failed: {reason}")),
        }
    }

    /// Regularly: installs and reboots when the moment allows. `visit` says a visit is in
    /// progress (or a patient is using the screen); `closed` that the clinic is outside its
    /// opening hours (or has none set).
    pub fn tick(&mut self, visit: bool, closed: bool) -> Vec<Action> {
        let Some(order) = self.kept.order.clone() else { return vec![] };
        match self.kept.stage {
            Some(Stage::Install) if !visit => {
                self.kept.stage = Some(Stage::Installing);
                vec![Action::Keep(self.kept.clone()), Action::Install { version: order.version }]
            }
            Some(Stage::Reboot) if !visit && (closed || order.reboot_in_opening_hours) => {
                self.kept.stage = Some(Stage::Rebooting);
                vec![
                    Action::Keep(self.kept.clone()),
                    Action::Reboot {
                        version: order.version,
                        health_timeout_secs: order.health_timeout_secs,
                    },
                ]
            }
            _ => vec![],
        }
    }

    /// The operating system part of the device state.
    pub fn state(&self) -> OsState {
        let update = self.kept.order.as_ref().zip(self.kept.stage).map(|(o, stage)| {
            let phase = match stage {
                Stage::Download => UpdatePhase::Downloading,
                Stage::Install => UpdatePhase::WaitingForVisit,
                Stage::Installing => UpdatePhase::Installing,
                Stage::Reboot => UpdatePhase::WaitingToReboot,
                Stage::Rebooting => UpdatePhase::Rebooting,
            };
            let done = if stage == Stage::Download { self.done_bytes } else { o.size };
            UpdateProgress {
                version: o.version.clone(),
                phase,
                done_bytes: done,
                total_bytes: o.size,
            }
        });
        OsState {
            version: self.booted.version.clone(),
            slot: self.booted.slot.clone(),
            trial: self.booted.trial,
            update,
            failed: self.kept.failed.clone(),
        }
    }

    fn current(&self, version: &str, stage: Stage) -> bool {
        self.kept.stage == Some(stage)
            && self.kept.order.as_ref().is_some_and(|o| o.version == version)
    }

    fn fail(&mut self, reason: String) -> Vec<Action> {
        let version = self.kept.order.take().map(|o| o.version).unwrap_or_default();
        self.kept.stage = None;
        self.kept.failed = Some(FailedUpdate { version, reason });
        vec![Action::Keep(self.kept.clone()), Action::Clean]
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Download => "downloading",
        Stage::Install => "waiting for the visit to end to install",
        Stage::Installing => "installing",
        Stage::Reboot => "waiting to reboot",
        Stage::Rebooting => "rebooting",
    }
}

#[cfg(test)]
mod tests;

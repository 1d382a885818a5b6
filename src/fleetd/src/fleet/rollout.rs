//! Config rollouts, pure: which devices of a group are sent version V when, judged only by what
//! the devices report. No I/O, no clock (the time is an argument), no database.
//!
//! A rollout sends V to a first wave (named canary devices, or a percentage of the group, at
//! least one device), then to waves that double in size, each only once every device of the
//! wave before has answered: acknowledged (its state shows `config_version >= V`), refused V,
//! or not answered within the wave's time-out (offline devices count as pending until then).
//! It halts by itself, sending nothing more, once failures (refusals of V, time-outs) pass the
//! threshold share of the devices targeted so far. Admins may pause, resume or abort it.

use serde::{Deserialize, Serialize};
use telekiosk_protocol::api::{RolloutDevice, RolloutStatus, WaveInfo};

/// How a rollout proceeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// First-wave devices; when empty, `first_wave_percent` of the group.
    pub canary: Vec<String>,
    /// 1–100.
    pub first_wave_percent: u8,
    /// 0–100: halt once failures × 100 > this × devices targeted so far.
    pub failure_threshold_percent: u8,
    /// A device of a wave that has not answered this long after the wave started has failed.
    pub wave_timeout_secs: u64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            canary: Vec::new(),
            first_wave_percent: 10,
            failure_threshold_percent: 20,
            wave_timeout_secs: 900,
        }
    }
}

/// How one device stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Its wave has not started.
    NotSent,
    /// Sent; no answer yet.
    Pending,
    /// Its state shows V or later in force.
    Acked,
    /// It refused V.
    Refused { reason: String },
    /// No answer within the wave's time-out.
    TimedOut,
}

impl Outcome {
    fn failed(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::TimedOut)
    }

    /// The name shown to admins.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotSent => "not_sent",
            Self::Pending => "pending",
            Self::Acked => "acked",
            Self::Refused { .. } => "refused",
            Self::TimedOut => "timed_out",
        }
    }
}

/// One device of the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub device_id: String,
    /// 1-based.
    pub wave: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a device last reported about the rollout's version, as its adapter reads it (config:
/// the version in force and the latest refusal; OS update: the running image and the latest
/// failed update).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// It runs the version (or a later one).
    pub acked: bool,
    /// It refused or failed this very version, and why.
    pub refused: Option<String>,
}

impl Seen {
    /// A config rollout's reading: `in_force` is the device's version in force, `refusal` its
    /// latest refused version and why.
    pub fn config(version: u64, in_force: u64, refusal: Option<(u64, String)>) -> Self {
        Self {
            acked: in_force >= version,
            refused: refusal.filter(|(v, _)| *v == version).map(|(_, reason)| reason),
        }
    }
}

/// What the adapter must do (or log) after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Render, sign and publish V for these devices: wave `wave` has started.
    Publish { wave: u32, devices: Vec<String> },
    /// These devices of `wave` did not answer in time.
    TimedOut { wave: u32, devices: Vec<String> },
    /// Failures passed the threshold; nothing more is sent.
    Halted { reason: String },
    /// Every device answered; `failed` of them refused or timed out.
    Completed { acked: usize, failed: usize },
}

/// An admin's action on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
    /// Resume a halted rollout (review L15): the failures so far are forgiven, later ones count
    /// against the threshold again. For a canary that falsely reports refusals.
    OverrideHalt,
}

/// Why a rollout could not be made or changed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    /// The group has no active device.
    #[error("group {group:?} has no active device to roll out to")]
    NoDevices { group: String },
    /// A canary device is not an active device of the group.
    #[error(
        "canary {device} is not an active device of group {group:?} (see `fleetd device list`)"
    )]
    UnknownCanary { device: String, group: String },
    /// Pausing a rollout that is not running, or resuming one that is not paused.
    #[error("rollout is {status}; only a {wanted} rollout can be {action}")]
    WrongStatus { status: &'static str, wanted: &'static str, action: &'static str },
    /// Overriding the halt of a rollout that a newer one of its group replaced.
    #[error("rollout {newer} of the same group is newer: start a new rollout instead")]
    Superseded { newer: i64 },
}

/// A rollout of one version to one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The config version; for an OS update, the update's id (the adapter says what a device's
    /// report means for it: [`Seen`]).
    pub version: u64,
    pub plan: Plan,
    pub status: RolloutStatus,
    /// Ordered by wave.
    pub targets: Vec<Target>,
    /// The wave being sent; 0 before the first step.
    pub current_wave: u32,
    pub wave_started_at: i64,
    pub halt_reason: Option<String>,
    /// Failures an admin forgave by overriding a halt ([`Control::OverrideHalt`]); only those
    /// after it count against the threshold.
    #[serde(default)]
    pub forgiven: usize,
}

impl Rollout {
    /// Plans the waves for `devices` (the group's active devices). Nothing is sent until
    /// [`Rollout::step`].
    pub fn new(
        group: &str,
        version: u64,
        mut devices: Vec<String>,
        plan: Plan,
    ) -> Result<Self, RolloutError> {
        devices.sort_unstable();
        devices.dedup();
        if devices.is_empty() {
            return Err(RolloutError::NoDevices { group: group.into() });
        }
        let mut first = Vec::new();
        for c in &plan.canary {
            let Ok(i) = devices.binary_search(c) else {
                return Err(RolloutError::UnknownCanary { device: c.clone(), group: group.into() });
            };
            if !first.contains(&devices[i]) {
                first.push(devices[i].clone());
            }
        }
        let rest: Vec<String> = if first.is_empty() {
            let pct = usize::from(plan.first_wave_percent.clamp(1, 100));
            let size = (devices.len() * pct).div_ceil(100).clamp(1, devices.len());
            first = devices[..size].to_vec();
            devices[size..].to_vec()
        } else {
            devices.into_iter().filter(|d| !first.contains(d)).collect()
        };
        let mut targets: Vec<Target> = Vec::new();
        let mut push = |device_id: String, wave| {
            targets.push(Target { device_id, wave, outcome: Outcome::NotSent })
        };
        let mut size = first.len();
        first.into_iter().for_each(|d| push(d, 1));
        let (mut wave, mut rest) = (2, rest.into_iter().peekable());
        while rest.peek().is_some() {
            size = size.saturating_mul(2);
            rest.by_ref().take(size).for_each(|d| push(d, wave));
            wave += 1;
        }
        Ok(Self {
            version,
            plan,
            status: RolloutStatus::Running,
            targets,
            current_wave: 0,
            wave_started_at: 0,
            halt_reason: None,
            forgiven: 0,
        })
    }

    /// Takes in what the devices report and the time; returns what to do. Starts the first
    /// wave on the first call.
    pub fn step(&mut self, seen: impl Fn(&str) -> Option<Seen>, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !matches!(self.status, RolloutStatus::Running | RolloutStatus::Paused) {
            return effects;
        }
        for t in self.targets.iter_mut().filter(|t| t.outcome != Outcome::NotSent) {
            let Some(s) = seen(&t.device_id) else { continue };
            if s.acked {
                t.outcome = Outcome::Acked;
            } else if t.outcome != Outcome::Acked
                && let Some(reason) = s.refused
            {
                t.outcome = Outcome::Refused { reason };
            }
        }
        let running = self.status == RolloutStatus::Running;
        let timeout = i64::try_from(self.plan.wave_timeout_secs).unwrap_or(i64::MAX);
        if running && self.current_wave > 0 && now.saturating_sub(self.wave_started_at) >= timeout {
            let wave = self.current_wave;
            let late: Vec<String> = self
                .targets
                .iter_mut()
                .filter(|t| t.wave == wave && t.outcome == Outcome::Pending)
                .map(|t| {
                    t.outcome = Outcome::TimedOut;
                    t.device_id.clone()
                })
                .collect();
            if !late.is_empty() {
                effects.push(Effect::TimedOut { wave, devices: late });
            }
        }
        let (targeted, failed) = (self.targeted(), self.failed());
        let threshold = usize::from(self.plan.failure_threshold_percent);
        if failed.saturating_sub(self.forgiven) * 100 > threshold * targeted {
            let reason = format!(
                "{failed} of {targeted} devices targeted so far refused or did not answer, \
                 more than the {threshold} % threshold"
            );
            self.status = RolloutStatus::Halted;
            self.halt_reason = Some(reason.clone());
            effects.push(Effect::Halted { reason });
            return effects;
        }
        let wave_done = !self
            .targets
            .iter()
            .any(|t| t.wave == self.current_wave && t.outcome == Outcome::Pending);
        if !running || !wave_done {
            return effects;
        }
        let next = self.current_wave + 1;
        let devices: Vec<String> = self
            .targets
            .iter_mut()
            .filter(|t| t.wave == next)
            .map(|t| {
                t.outcome = Outcome::Pending;
                t.device_id.clone()
            })
            .collect();
        if devices.is_empty() {
            self.status = RolloutStatus::Completed;
            let acked = self.targets.iter().filter(|t| t.outcome == Outcome::Acked).count();
            effects.push(Effect::Completed { acked, failed });
        } else {
            self.current_wave = next;
            self.wave_started_at = now;
            effects.push(Effect::Publish { wave: next, devices });
        }
        effects
    }

    /// Pauses, resumes or aborts. Resuming restarts the current wave's time-out.
    pub fn admin(&mut self, action: Control, now: i64) -> Result<(), RolloutError> {
        let status = self.status.as_str();
        let wrong = |wanted, action| RolloutError::WrongStatus { status, wanted, action };
        self.status = match (action, self.status) {
            (Control::Pause, RolloutStatus::Running) => RolloutStatus::Paused,
            (Control::Pause, _) => return Err(wrong("running", "paused")),
            (Control::Resume, RolloutStatus::Paused) => {
                self.wave_started_at = now;
                RolloutStatus::Running
            }
            (Control::Resume, _) => return Err(wrong("paused", "resumed")),
            (Control::Abort, RolloutStatus::Running | RolloutStatus::Paused) => {
                RolloutStatus::Aborted
            }
            (Control::Abort, _) => return Err(wrong("running or paused", "aborted")),
            (Control::OverrideHalt, RolloutStatus::Halted) => {
                self.wave_started_at = now;
                self.forgiven = self.failed();
                self.halt_reason = None;
                RolloutStatus::Running
            }
            (Control::OverrideHalt, _) => return Err(wrong("halted", "resumed past its halt")),
        };
        Ok(())
    }

    /// Devices sent V so far.
    pub fn targeted(&self) -> usize {
        self.targets.iter().filter(|t| t.outcome != Outcome::NotSent).count()
    }

    /// Devices that refused V or timed out.
    pub fn failed(&self) -> usize {
        self.targets.iter().filter(|t| t.outcome.failed()).count()
    }

    /// Counts per wave.
    pub fn waves(&self) -> Vec<WaveInfo> {
        let mut waves: Vec<WaveInfo> = Vec::new();
        for t in &self.targets {
            let i = t.wave as usize - 1;
            if waves.len() <= i {
                let wave = t.wave;
                waves.push(WaveInfo {
                    wave,
                    devices: 0,
                    acked: 0,
                    pending: 0,
                    failed: 0,
                    not_sent: 0,
                });
            }
            let w = &mut waves[i];
            w.devices += 1;
            match t.outcome {
                Outcome::NotSent => w.not_sent += 1,
                Outcome::Pending => w.pending += 1,
                Outcome::Acked => w.acked += 1,
                Outcome::Refused { .. } | Outcome::TimedOut => w.failed += 1,
            }
        }
        waves
    }

    /// Per device, for admins.
    pub fn devices(&self) -> Vec<RolloutDevice> {
        let device = |t: &Target| RolloutDevice {
            device_id: t.device_id.clone(),
            wave: t.wave,
            outcome: t.outcome.as_str().into(),
            reason: match &t.outcome {
                Outcome::Refused { reason } => Some(reason.clone()),
                _ => None,
            },
        };
        self.targets.iter().map(device).collect()
    }
}

#[cfg(test)]
mod tests;

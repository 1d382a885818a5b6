//! What admins see of the fleet: devices with their latest state, group and device config,
//! rollouts with their waves. Read-only; built from the store for the CLI and the API.

use std::collections::HashMap;

use telekiosk_protocol::api::{
    DeviceConfig, DeviceDetail, FleetDevice, FleetStatus, GroupConfig, GroupInfo, PublishedConfig,
    RolloutInfo, RolloutProgress,
};
use telekiosk_protocol::config::ConfigBody;
use telekiosk_protocol::device::{DeviceState, Presence};

use super::rollout::Rollout;
use super::{Fleet, FleetError, engine_of, parse_stored};
use crate::fleet::layers::{self, Place};
use crate::store::devices;
use crate::store::fleet::{self as q, PublishedRow, RolloutRow};

/// Commands shown with a device.
const COMMANDS_SHOWN: u32 = 10;

/// A device's new state over its last: the broker's last will (offline, no software) keeps
/// the last known versions and health, and only says the device is offline.
pub fn merge_state(previous: Option<DeviceState>, incoming: DeviceState) -> DeviceState {
    match previous {
        Some(mut last)
            if incoming.presence == Presence::Offline && incoming.software.is_empty() =>
        {
            last.presence = Presence::Offline;
            last
        }
        _ => incoming,
    }
}

/// A stored state; `None` (logged) if it cannot be read.
pub fn parse_state(device: &str, json: &str) -> Option<DeviceState> {
    serde_json::from_str(json)
        .inspect_err(|e| tracing::error!(device, "stored device state cannot be read: {e}"))
        .ok()
}

/// A rollout as admins see it; with every device if `with_devices`.
pub fn rollout_info(row: &RolloutRow, with_devices: bool) -> Result<RolloutInfo, FleetError> {
    Ok(RolloutInfo {
        id: row.id,
        group: row.group.clone(),
        version: row.version,
        kind: row.kind.clone(),
        progress: progress(
            &engine_of(row)?,
            row.created_at,
            &row.created_by,
            row.updated_at,
            with_devices,
        ),
    })
}

/// How a rollout stands (config or OS update), from its engine's state and its row's stamps.
pub fn progress(
    engine: &Rollout,
    created_at: i64,
    created_by: &str,
    updated_at: i64,
    with_devices: bool,
) -> RolloutProgress {
    RolloutProgress {
        status: engine.status,
        created_at,
        created_by: created_by.into(),
        updated_at,
        canary: engine.plan.canary.clone(),
        first_wave_percent: engine.plan.first_wave_percent,
        failure_threshold_percent: engine.plan.failure_threshold_percent,
        wave_timeout_secs: engine.plan.wave_timeout_secs,
        current_wave: engine.current_wave,
        waves: engine.waves(),
        targeted: engine.targeted() as u32,
        failed: engine.failed() as u32,
        halt_reason: engine.halt_reason.clone(),
        devices: if with_devices { engine.devices() } else { Vec::new() },
    }
}

fn published_config(p: &PublishedRow) -> PublishedConfig {
    PublishedConfig { version: p.version, rollout_id: p.rollout_id, published_at: p.published_at }
}

impl Fleet {
    /// A group's body as stored.
    pub fn group_config(&self, group: &str) -> Result<GroupConfig, FleetError> {
        let (authored, devices) = self.store.read(|c| {
            Ok((q::group_body(c, group)?, q::active_devices_in(c, group)?.len() as u32))
        })?;
        let body = match &authored {
            Some(a) => serde_json::Value::Object(parse_stored("group body", &a.body)?),
            None => serde_json::json!({}),
        };
        Ok(GroupConfig {
            group: group.into(),
            body,
            is_set: authored.is_some(),
            updated_at: authored.as_ref().map(|a| a.updated_at),
            updated_by: authored.map(|a| a.updated_by),
            devices,
            defaults: ConfigBody::default(),
        })
    }

    /// A device's override, the config it makes with its group's body, and what the device
    /// was sent and applied.
    pub fn device_config(&self, id: &str) -> Result<DeviceConfig, FleetError> {
        let device = self.device(id)?;
        let group = device.clinic.clone();
        let (group_body, over, published, state) = self.store.read(|c| {
            Ok((
                q::group_body(c, &group)?,
                q::override_body(c, id)?,
                q::published_to(c, id)?,
                q::state_of(c, id)?,
            ))
        })?;
        let group_body = match group_body {
            Some(a) => parse_stored("group body", &a.body)?,
            None => Default::default(),
        };
        let over = over.map(|o| parse_stored("override", &o.body)).transpose()?;
        let place = Place { clinic: &device.clinic, room: &device.room };
        let what = format!("device {id} (group body with its override)");
        let (effective, error) = match layers::effective(&what, &place, &group_body, over.as_ref())
        {
            Ok(body) => (Some(body), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let state = state.and_then(|(json, _)| parse_state(id, &json));
        Ok(DeviceConfig {
            device_id: id.into(),
            group,
            override_body: over.map(serde_json::Value::Object),
            effective,
            error,
            published: published.as_ref().map(published_config),
            applied_version: state.as_ref().map(|s| s.config_version),
            refusal: state.and_then(|s| s.config_refusal),
        })
    }

    /// One rollout, with every device.
    pub fn rollout(&self, id: i64) -> Result<RolloutInfo, FleetError> {
        let row = self.store.read(|c| q::rollout(c, id))?;
        rollout_info(&row.ok_or(FleetError::NoSuchRollout(id))?, true)
    }

    /// Rollouts, newest first (of one group, or all), without the per-device lists.
    pub fn rollouts(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RolloutInfo>, FleetError> {
        let rows = self.store.read(|c| q::rollouts(c, group, limit))?;
        rows.iter().map(|r| rollout_info(r, false)).collect()
    }

    /// Every device with its latest state, oldest first.
    pub fn fleet(&self) -> Result<Vec<FleetDevice>, FleetError> {
        let devices = self.store.read(devices::devices)?;
        let (states, published) = self.store.read(|c| Ok((q::states(c)?, q::published(c)?)))?;
        let published: HashMap<_, _> =
            published.into_iter().map(|p| (p.device_id.clone(), p.version)).collect();
        Ok(devices
            .into_iter()
            .map(|d| {
                let state = states.get(&d.id);
                FleetDevice {
                    state: state.and_then(|(json, _)| parse_state(&d.id, json)),
                    last_seen: state.map(|(_, at)| *at),
                    published_version: published.get(&d.id).copied(),
                    device: crate::registry::info(d),
                }
            })
            .collect())
    }

    /// One device in full: state, config, latest commands.
    pub fn device_detail(&self, id: &str) -> Result<DeviceDetail, FleetError> {
        let device = self.device(id)?;
        let (state, published, commands) = self.store.read(|c| {
            Ok((
                q::state_of(c, id)?,
                q::published_to(c, id)?,
                q::commands_of(c, id, COMMANDS_SHOWN)?,
            ))
        })?;
        let fleet = FleetDevice {
            state: state.as_ref().and_then(|(json, _)| parse_state(id, json)),
            last_seen: state.map(|(_, at)| at),
            published_version: published.map(|p| p.version),
            device: crate::registry::info(device),
        };
        let commands =
            commands.iter().map(super::commands::command_info).collect::<Result<_, _>>()?;
        Ok(DeviceDetail { fleet, config: self.device_config(id)?, commands })
    }

    /// Every group (clinic) at a glance.
    pub fn groups(&self) -> Result<Vec<GroupInfo>, FleetError> {
        let fleet = self.fleet()?;
        let groups = self.store.read(q::groups)?;
        let mut out = Vec::with_capacity(groups.len());
        for (group, devices) in groups {
            let online = fleet
                .iter()
                .filter(|d| d.device.clinic == group)
                .filter(|d| d.state.as_ref().is_some_and(|s| s.presence == Presence::Online))
                .count() as u32;
            let (has_config, latest) = self.store.read(|c| {
                Ok((q::group_body(c, &group)?.is_some(), q::rollouts(c, Some(&group), 1)?.pop()))
            })?;
            let latest_rollout = latest.map(|r| rollout_info(&r, false)).transpose()?;
            out.push(GroupInfo { group, devices, online, has_config, latest_rollout });
        }
        Ok(out)
    }

    /// Rollouts (latest 50) and every device's state, for `fleetd config status`.
    pub fn status(&self) -> Result<FleetStatus, FleetError> {
        Ok(FleetStatus { rollouts: self.rollouts(None, 50)?, devices: self.fleet()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telekiosk_protocol::device::{ConfigRefusal, Health, PartStatus};

    fn online(version: u64) -> DeviceState {
        DeviceState {
            presence: Presence::Online,
            software: "1.0".into(),
            config_version: version,
            config_refusal: Some(ConfigRefusal { version: version + 1, reason: "r".into() }),
            health: Health { camera: PartStatus::Ok, ..Health::default() },
            ..DeviceState::offline()
        }
    }

    #[test]
    fn the_last_will_marks_a_device_offline_and_keeps_what_it_last_reported() {
        let merged = merge_state(Some(online(7)), DeviceState::offline());
        assert_eq!(merged, DeviceState { presence: Presence::Offline, ..online(7) });
        // With nothing known, the will is all there is.
        assert_eq!(merge_state(None, DeviceState::offline()), DeviceState::offline());
        // An online report replaces everything, refusal included.
        let fresh = DeviceState { config_refusal: None, ..online(8) };
        assert_eq!(merge_state(Some(online(7)), fresh.clone()), fresh);
    }
}

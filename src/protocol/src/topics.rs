//! MQTT topic names. Every topic a device touches lives under its own
//! `telekiosk/v1/dev/{id}/` subtree, so a broker ACL can confine each device to it.

/// Root of every device's subtree.
pub const ROOT: &str = "telekiosk/v1/dev";

/// `telekiosk/v1/dev/{id}/{leaf}`.
pub fn device(device_id: &str, leaf: &str) -> String {
    format!("{ROOT}/{device_id}/{leaf}")
}

/// Kiosk → fleetd visit signalling.
pub fn visit_out(device_id: &str) -> String {
    device(device_id, "visit/out")
}

/// fleetd → kiosk visit signalling.
pub fn visit_in(device_id: &str) -> String {
    device(device_id, "visit/in")
}

/// Kiosk presence and health (retained; the last will says offline).
pub fn state(device_id: &str) -> String {
    device(device_id, "state")
}

/// fleetd → kiosk signed config (retained).
pub fn config(device_id: &str) -> String {
    device(device_id, "config")
}

/// fleetd → kiosk signed command (not retained).
pub fn cmd(device_id: &str) -> String {
    device(device_id, "cmd")
}

/// Kiosk → fleetd command results.
pub fn cmd_result(device_id: &str) -> String {
    device(device_id, "cmd/result")
}

/// Wildcard fleetd subscribes to for every kiosk's command results.
pub const ALL_CMD_RESULT: &str = "telekiosk/v1/dev/+/cmd/result";

/// Wildcard fleetd subscribes to for every kiosk's outgoing signalling.
pub const ALL_VISIT_OUT: &str = "telekiosk/v1/dev/+/visit/out";
/// Wildcard fleetd subscribes to for every kiosk's state.
pub const ALL_STATE: &str = "telekiosk/v1/dev/+/state";

/// Splits `telekiosk/v1/dev/{id}/{leaf}` into `(id, leaf)`.
pub fn parse(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let (id, leaf) = rest.split_once('/')?;
    (!id.is_empty()).then_some((id, leaf))
}

//! Config authoring, pure: how a device's config is made from layers, checked, and rendered
//! into the payload text fleetd signs. No I/O, no clock, no keys.
//!
//! Layers, each merged over the last (RFC 7386 merge patch: objects merge, other values
//! replace, `null` removes): the schema defaults, the device's enrolled clinic and room names
//! (`clinic_name`, `room_name`), the group's body, the device's override. The result must
//! deserialise as a [`ConfigBody`] (unknown fields refused) and pass [`ConfigBody::check`]; both
//! errors are shown as they are, since they name the field and its allowed range.

use serde_json::{Map, Value};
use telekiosk_protocol::config::{CONFIG_SCHEMA, ConfigBody, ConfigPayload};

/// Largest config document (group body or override) accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;

/// Why a config document was refused. Shown to the admin as it is.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON at all.
    #[error("{what} is not valid JSON: {reason}")]
    Json { what: String, reason: String },
    /// JSON, but not an object.
    #[error("{what} must be a JSON object {{\"field\": value, …}}")]
    NotAnObject { what: String },
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{what} is {len} bytes, more than the {MAX_DOCUMENT_BYTES}-byte limit")]
    TooLarge { what: String, len: usize },
    /// The layers do not make a valid config: an unknown field, a wrong type, or a field out of
    /// range. `reason` is serde's or [`ConfigBody::check`]'s message.
    #[error("{what} is not a valid config: {reason}")]
    Invalid { what: String, reason: String },
}

/// The enrolled place of a device, the layer under the group's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place<'a> {
    pub clinic: &'a str,
    pub room: &'a str,
}

/// Parses a config document (group body or override) as a JSON object.
pub fn parse_document(what: &str, text: &str) -> Result<Map<String, Value>, ConfigError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(ConfigError::TooLarge { what: what.into(), len: text.len() });
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::Json { what: what.into(), reason: e.to_string() })?;
    into_object(what, value)
}

/// A JSON value as a config document: it must be an object.
pub fn into_object(what: &str, value: Value) -> Result<Map<String, Value>, ConfigError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ConfigError::NotAnObject { what: what.into() }),
    }
}

/// RFC 7386 JSON merge patch of `patch` into `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else { unreachable!("made an object above") };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The config a device gets: its place, the group's body, its override; checked. `what` names
/// the device or group in the error.
pub fn effective(
    what: &str,
    place: &Place<'_>,
    group_body: &Map<String, Value>,
    device_override: Option<&Map<String, Value>>,
) -> Result<ConfigBody, ConfigError> {
    let mut merged = serde_json::json!({ "clinic_name": place.clinic, "room_name": place.room });
    merge_patch(&mut merged, &Value::Object(group_body.clone()));
    if let Some(o) = device_override {
        merge_patch(&mut merged, &Value::Object(o.clone()));
    }
    let invalid = |reason: String| ConfigError::Invalid { what: what.into(), reason };
    let body: ConfigBody = serde_json::from_value(merged).map_err(|e| invalid(e.to_string()))?;
    body.check().map_err(|e| invalid(e.to_string()))?;
    Ok(body)
}

/// Checks a group body on its own, with the group's name as clinic and a placeholder room.
pub fn check_group_body(group: &str, body: &Map<String, Value>) -> Result<ConfigBody, ConfigError> {
    let place = Place { clinic: group, room: "Room" };
    effective(&format!("the config of group {group:?}"), &place, body, None)
}

/// The payload text fleetd signs for one device.
pub fn render(
    device_id: &str,
    group: &str,
    version: u64,
    issued_at: i64,
    body: ConfigBody,
) -> String {
    let payload = ConfigPayload {
        schema: CONFIG_SCHEMA,
        device_id: device_id.into(),
        group: group.into(),
        version,
        issued_at,
        body,
    };
    serde_json::to_string(&payload).expect("config payloads always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use telekiosk_protocol::Validate;

    const NORTH: Place<'static> = Place { clinic: "North Clinic", room: "2" };

    fn obj(v: Value) -> Map<String, Value> {
        into_object("test", v).unwrap()
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // (target, patch, expected) — the examples of RFC 7386 appendix A that matter here.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!({"a": [1]}), json!({"a": [2, 3]}), json!({"a": [2, 3]})),
            (json!({"a": "x"}), json!({"a": {"b": 1}}), json!({"a": {"b": 1}})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn the_layers_are_place_then_group_then_override() {
        let group = obj(json!({"idle_timeout_secs": 120, "media": {"max_fps": 20}}));
        let over = obj(json!({"room_name": "Exam 2", "media": {"max_bitrate_kbps": 800}}));
        let body = effective("dev-a", &NORTH, &group, Some(&over)).unwrap();
        assert_eq!(body.clinic_name, "North Clinic");
        assert_eq!(body.room_name, "Exam 2");
        assert_eq!(body.idle_timeout_secs, 120);
        assert_eq!((body.media.max_fps, body.media.max_bitrate_kbps), (20, 800));
        assert_eq!(body.media.max_width, 1280, "defaults fill the rest");
        let no_override = effective("dev-a", &NORTH, &group, None).unwrap();
        assert_eq!(no_override.room_name, "2", "the enrolled room when nobody set one");
        let null_removes = obj(json!({"idle_timeout_secs": null}));
        let body = effective("dev-a", &NORTH, &group, Some(&null_removes)).unwrap();
        assert_eq!(body.idle_timeout_secs, 60, "null falls back to the default");
    }

    #[test]
    fn invalid_documents_are_refused_with_the_field_and_its_range() {
        let cases = [
            (
                json!({"idle_timeout_secs": 5}),
                "field `idle_timeout_secs` is invalid: 5 is outside 10–600",
            ),
            (
                json!({"media": {"max_fps": 60}}),
                "field `media.max_fps` is invalid: 60 is outside 5–30",
            ),
            (json!({"colour": "red"}), "unknown field `colour`"),
            (json!({"media": {"fps": 5}}), "unknown field `fps`"),
            (json!({"languages": ["en"], "default_language": "es"}), "`default_language`"),
            (json!({"idle_timeout_secs": "60"}), "invalid type: string \"60\", expected u32"),
        ];
        for (body, expected) in cases {
            let err = check_group_body("North Clinic", &obj(body.clone())).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with("the config of group \"North Clinic\" is not a valid config: "),
                "{shown}"
            );
            assert!(shown.contains(expected), "{body}: {shown}");
        }
    }

    #[test]
    fn an_override_can_break_a_valid_group_body_and_is_refused() {
        let group = obj(json!({"languages": ["en", "es"], "default_language": "es"}));
        assert!(effective("g", &NORTH, &group, None).is_ok());
        let over = obj(json!({"languages": ["en"]}));
        let err = effective("device dev-a", &NORTH, &group, Some(&over)).unwrap_err();
        assert!(err.to_string().starts_with("device dev-a is not a valid config:"), "{err}");
    }

    #[test]
    fn documents_must_be_json_objects_of_bounded_size() {
        assert!(matches!(parse_document("x", "[1]"), Err(ConfigError::NotAnObject { .. })));
        assert!(matches!(parse_document("x", "{nope"), Err(ConfigError::Json { .. })));
        let big = format!("{{\"clinic_name\": \"{}\"}}", "a".repeat(MAX_DOCUMENT_BYTES));
        assert!(matches!(parse_document("x", &big), Err(ConfigError::TooLarge { .. })));
        assert_eq!(parse_document("x", "{}").unwrap(), Map::new());
    }

    #[test]
    fn a_rendered_payload_decodes_as_the_kiosk_will_decode_it() {
        let body = check_group_body("North Clinic", &Map::new()).unwrap();
        let text = render("dev-abc", "North Clinic", 7, 1_700_000_000, body.clone());
        let payload: ConfigPayload = telekiosk_protocol::decode(text.as_bytes()).unwrap();
        payload.validate().unwrap();
        assert_eq!(payload.schema, CONFIG_SCHEMA);
        assert_eq!((payload.device_id.as_str(), payload.version), ("dev-abc", 7));
        assert_eq!(payload.body, body);
    }
}

//! Config schema v1: defaults are valid, every field's range is enforced with the field named,
//! and the signed envelope round-trips.

use telekiosk_protocol::command::{
    Command, CommandOutcome, CommandPayload, CommandResult, SignedCommand,
};
use telekiosk_protocol::config::{
    ConfigBody, ConfigPayload, IceServer, Language, MediaCaps, OpeningHours, SignedConfig, Weekday,
};
use telekiosk_protocol::{DecodeError, decode, encode};

fn field_of(body: ConfigBody) -> &'static str {
    match body.check() {
        Err(DecodeError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn defaults_are_within_every_range() {
    ConfigBody::default().check().unwrap();
}

#[test]
fn each_out_of_range_field_is_refused_by_name() {
    let d = ConfigBody::default;
    let cases: Vec<(ConfigBody, &str)> = vec![
        (ConfigBody { clinic_name: " ".into(), ..d() }, "clinic_name"),
        (ConfigBody { room_name: "x".repeat(65), ..d() }, "room_name"),
        (ConfigBody { languages: vec![], ..d() }, "languages"),
        (ConfigBody { languages: vec![Language::En, Language::En], ..d() }, "languages"),
        (
            ConfigBody { languages: vec![Language::En], default_language: Language::Es, ..d() },
            "default_language",
        ),
        (ConfigBody { idle_timeout_secs: 5, ..d() }, "idle_timeout_secs"),
        (ConfigBody { wait_timeout_secs: 4000, ..d() }, "wait_timeout_secs"),
        (ConfigBody { max_visit_secs: 10, ..d() }, "max_visit_secs"),
        (ConfigBody { speaker_volume_pct: 101, ..d() }, "speaker_volume_pct"),
        (
            ConfigBody {
                media: MediaCaps { rtp_port_min: 80, rtp_port_max: 90, ..d().media },
                ..d()
            },
            "media.rtp_port_min",
        ),
        (
            ConfigBody {
                media: MediaCaps { rtp_port_min: 40_000, rtp_port_max: 40_000, ..d().media },
                ..d()
            },
            "media.rtp_port_min",
        ),
        (ConfigBody { mic_gain_pct: 200, ..d() }, "mic_gain_pct"),
        (ConfigBody { telemetry_interval_secs: 1, ..d() }, "telemetry_interval_secs"),
        (ConfigBody { maintenance_code_hash: "1234".into(), ..d() }, "maintenance_code_hash"),
        (ConfigBody { out_of_service_message: String::new(), ..d() }, "out_of_service_message"),
        (
            ConfigBody {
                opening_hours: vec![OpeningHours {
                    day: Weekday::Mon,
                    open: "17:00".into(),
                    close: "09:00".into(),
                }],
                ..d()
            },
            "opening_hours",
        ),
        (
            ConfigBody {
                opening_hours: vec![OpeningHours {
                    day: Weekday::Mon,
                    open: "9am".into(),
                    close: "17:00".into(),
                }],
                ..d()
            },
            "opening_hours.open",
        ),
        (
            ConfigBody {
                ice_servers: vec![IceServer {
                    urls: vec!["http://x".into()],
                    username: None,
                    credential: None,
                }],
                ..d()
            },
            "ice_servers.urls",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(field_of(body), field);
    }
    let mut media = ConfigBody::default();
    media.media.max_fps = 60;
    assert_eq!(field_of(media), "media.max_fps");
}

#[test]
fn signed_config_and_command_envelopes_round_trip() {
    let payload = ConfigPayload {
        schema: 1,
        device_id: "dev-abc".into(),
        group: "maple".into(),
        version: 7,
        issued_at: 1_790_000_000,
        body: ConfigBody::default(),
    };
    let signed = SignedConfig {
        payload: String::from_utf8(encode(&payload)).unwrap(),
        signature: "c2ln".into(),
    };
    let back: SignedConfig = decode(&encode(&signed)).unwrap();
    assert_eq!(decode::<ConfigPayload>(back.payload.as_bytes()).unwrap(), payload);
    let zero = ConfigPayload { version: 0, ..payload };
    assert!(matches!(
        decode::<ConfigPayload>(&encode(&zero)),
        Err(DecodeError::Invalid { field: "version", .. })
    ));

    let cmd = CommandPayload {
        device_id: "dev-abc".into(),
        command_id: "c-1".into(),
        issued_at: 100,
        expires_at: 400,
        command: Command::Identify { seconds: 10 },
    };
    assert_eq!(decode::<CommandPayload>(&encode(&cmd)).unwrap(), cmd);
    let too_long = CommandPayload { command: Command::Identify { seconds: 600 }, ..cmd.clone() };
    assert!(matches!(
        decode::<CommandPayload>(&encode(&too_long)),
        Err(DecodeError::Invalid { field: "seconds", .. })
    ));
    let stale = CommandPayload { expires_at: 100 + 7200, ..cmd };
    assert!(matches!(
        decode::<CommandPayload>(&encode(&stale)),
        Err(DecodeError::Invalid { field: "expires_at", .. })
    ));
    let sc = SignedCommand { payload: "{}".into(), signature: "x".into() };
    assert_eq!(decode::<SignedCommand>(&encode(&sc)).unwrap(), sc);
    let r = CommandResult {
        command_id: "c-1".into(),
        outcome: CommandOutcome::Done,
        detail: String::new(),
    };
    assert_eq!(decode::<CommandResult>(&encode(&r)).unwrap(), r);
}

#[test]
fn a_config_with_unknown_fields_is_refused() {
    let text = br#"{"clinic_name":"A","colour":"red"}"#;
    let err = serde_json::from_slice::<ConfigBody>(text).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
}

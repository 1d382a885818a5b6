//! Every message round-trips; oversized, malformed or out-of-range input is refused with an
//! error that names what is wrong.

use telekiosk_protocol::config::{IceServer, Language};
use telekiosk_protocol::console::{ConsoleToServer, HelpAlert, ServerToConsole, WaitingVisit};
use telekiosk_protocol::decode::MAX_MESSAGE_BYTES;
use telekiosk_protocol::device::{DeviceState, Presence};
use telekiosk_protocol::visit::{
    CodeRefusal, EndReason, Ice, IceSettings, KioskToServer, ServerToKiosk,
};
use telekiosk_protocol::{DecodeError, Validate, decode, encode, topics};

const SDP: &str = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

fn ice() -> Ice {
    Ice { mline: 0, candidate: "candidate:1 1 UDP 2015363327 192.0.2.1 5000 typ host".into() }
}

fn round_trip<T>(msg: T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Validate + PartialEq + std::fmt::Debug,
{
    let bytes = encode(&msg);
    let back: T = decode(&bytes).unwrap_or_else(|e| panic!("{msg:?} did not decode: {e}"));
    assert_eq!(back, msg);
}

#[test]
fn every_kiosk_to_server_message_round_trips() {
    let id = "v-1".to_string();
    round_trip(KioskToServer::Waiting {
        visit_id: id.clone(),
        clinic: "Maple".into(),
        room: "2".into(),
        language: Some(Language::Es),
        visit_code: Some("123456".into()),
    });
    round_trip(KioskToServer::Help { visit_id: id.clone() });
    round_trip(KioskToServer::Offer { visit_id: id.clone(), sdp: SDP.into(), e2ee: kkey() });
    round_trip(KioskToServer::Ice { visit_id: id.clone(), ice: ice() });
    round_trip(KioskToServer::InVisit {
        visit_id: id.clone(),
        clinic: "Maple".into(),
        room: "2".into(),
        clinician: "dr-lee".into(),
    });
    round_trip(KioskToServer::End { visit_id: id, reason: EndReason::PatientEnded });
}

#[test]
fn an_accepted_from_an_older_fleetd_names_no_clinician_and_in_visit_must_name_one() {
    let old: ServerToKiosk = decode(br#"{"type":"accepted","visit_id":"v-1"}"#).unwrap();
    assert_eq!(old, ServerToKiosk::Accepted { visit_id: "v-1".into(), clinician: String::new() });
    let nameless =
        br#"{"type":"in_visit","visit_id":"v-1","clinic":"M","room":"2","clinician":""}"#;
    let refused = decode::<KioskToServer>(nameless).unwrap_err();
    assert!(refused.to_string().contains("clinician"), "{refused}");
}

fn turn_settings() -> IceSettings {
    let turn = IceServer {
        urls: vec!["turn:turn.example.org:3478".into()],
        username: Some("1700000000:v-1-kiosk".into()),
        credential: Some("c2VjcmV0".into()),
    };
    IceSettings { servers: vec![turn], relay_only: true }
}

#[test]
fn relay_only_without_a_turn_server_is_refused_by_name() {
    let stun_only = br#"{"type":"queued","visit_id":"v-1","ice":{"servers":[{"urls":["stun:s.example.org"]}],"relay_only":true}}"#;
    let refused = decode::<ServerToKiosk>(stun_only).unwrap_err();
    assert!(refused.to_string().contains("relay_only"), "{refused}");
}

#[test]
fn every_server_to_kiosk_message_round_trips() {
    let id = "v-1".to_string();
    round_trip(ServerToKiosk::Accepted { visit_id: id.clone(), clinician: "dr.lee@x".into() });
    round_trip(ServerToKiosk::Queued { visit_id: id.clone(), ice: turn_settings() });
    round_trip(ServerToKiosk::Answer { visit_id: id.clone(), sdp: SDP.into(), e2ee: ckey() });
    round_trip(ServerToKiosk::Ice { visit_id: id.clone(), ice: ice() });
    round_trip(ServerToKiosk::End { visit_id: id, reason: EndReason::ClinicianEnded });
}

#[test]
fn every_console_message_round_trips() {
    let id = "v-1".to_string();
    round_trip(ConsoleToServer::Join { visit_id: id.clone() });
    let reason = "covering for the South clinic".to_string();
    round_trip(ConsoleToServer::EmergencyJoin { visit_id: id.clone(), reason });
    round_trip(ConsoleToServer::Answer { visit_id: id.clone(), sdp: SDP.into(), e2ee: ckey() });
    round_trip(ConsoleToServer::Ice { visit_id: id.clone(), ice: ice() });
    round_trip(ConsoleToServer::End { visit_id: id.clone() });
    round_trip(ConsoleToServer::Resume { visit_id: id.clone() });
    round_trip(ServerToConsole::Resumed {
        visit_id: id.clone(),
        clinic: "Maple".into(),
        room: "2".into(),
    });
    round_trip(ConsoleToServer::AnswerHelp { visit_id: id.clone() });
    round_trip(ServerToConsole::Help {
        alerts: vec![HelpAlert {
            visit_id: id.clone(),
            device_id: "kiosk-1".into(),
            clinic: "Maple".into(),
            room: "2".into(),
            waiting_secs: 30,
        }],
    });
    let waiting = WaitingVisit {
        visit_id: id.clone(),
        device_id: "kiosk-1".into(),
        clinic: "Maple".into(),
        room: "Exam 2".into(),
        waiting_secs: 12,
        language: None,
        for_you: false,
    };
    round_trip(ServerToConsole::Queue { waiting: vec![waiting] });
    round_trip(ServerToConsole::Joined {
        visit_id: id.clone(),
        clinic: "M".into(),
        room: "2".into(),
        ice: turn_settings(),
    });
    round_trip(ServerToConsole::AlreadyTaken { visit_id: id.clone() });
    round_trip(ServerToConsole::Offer {
        visit_id: id.clone(),
        sdp: SDP.into(),
        e2ee: kkey(),
        device_key: String::new(),
    });
    round_trip(ServerToConsole::Ice { visit_id: id.clone(), ice: ice() });
    round_trip(ServerToConsole::Ended { visit_id: id, reason: EndReason::NoClinician });
    round_trip(ServerToConsole::Error { message: "That visit is no longer waiting.".into() });
}

#[test]
fn device_state_and_its_last_will_round_trip() {
    round_trip(DeviceState {
        presence: Presence::Online,
        software: "0.1.0".into(),
        clinic: "Maple".into(),
        room: "2".into(),
        ..DeviceState::offline()
    });
    round_trip(DeviceState::offline());
}

#[test]
fn oversized_message_is_refused_before_parsing() {
    let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
    let err = decode::<KioskToServer>(&big).unwrap_err();
    assert_eq!(err, DecodeError::TooLarge { len: MAX_MESSAGE_BYTES + 1, max: MAX_MESSAGE_BYTES });
}

#[test]
fn malformed_and_unknown_messages_are_refused_as_malformed() {
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        b"{\"type\":\"waiting\"",
        b"{\"type\":\"teleport\",\"visit_id\":\"v\"}",
        b"{\"type\":\"end\",\"visit_id\":\"v\",\"reason\":\"bored\"}",
        b"{\"type\":\"end\",\"visit_id\":\"v\",\"reason\":\"patient_ended\",\"extra\":1}",
        b"[1,2,3]",
    ];
    for bytes in cases {
        let err = decode::<KioskToServer>(bytes).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed(_)),
            "{:?} gave {err:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

fn invalid_field<T: serde::Serialize + serde::de::DeserializeOwned + Validate>(
    msg: T,
) -> &'static str {
    match decode::<T>(&encode(&msg)) {
        Err(DecodeError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {:?}", other.err()),
    }
}

#[test]
fn out_of_range_fields_are_refused_naming_the_field() {
    let id = || "v-1".to_string();
    let long = "x".repeat(200);
    assert_eq!(
        invalid_field(KioskToServer::End { visit_id: "".into(), reason: EndReason::PatientEnded }),
        "visit_id"
    );
    assert_eq!(
        invalid_field(KioskToServer::End {
            visit_id: "a/b".into(),
            reason: EndReason::PatientEnded
        }),
        "visit_id"
    );
    assert_eq!(
        invalid_field(KioskToServer::Waiting {
            visit_id: id(),
            clinic: long,
            room: "2".into(),
            language: None,
            visit_code: None,
        }),
        "clinic"
    );
    assert_eq!(
        invalid_field(KioskToServer::Waiting {
            visit_id: id(),
            clinic: "M".into(),
            room: "a\u{7}".into(),
            language: None,
            visit_code: None,
        }),
        "room"
    );
    assert_eq!(
        invalid_field(KioskToServer::Offer { visit_id: id(), sdp: "hello".into(), e2ee: kkey() }),
        "sdp"
    );
    let huge_sdp = format!("v=0\r\n{}", "a".repeat(40 * 1024));
    assert_eq!(
        invalid_field(ServerToKiosk::Answer { visit_id: id(), sdp: huge_sdp, e2ee: ckey() }),
        "sdp"
    );
    let bad_ice = Ice { mline: 0, candidate: "rm -rf /".into() };
    assert_eq!(invalid_field(ConsoleToServer::Ice { visit_id: id(), ice: bad_ice }), "candidate");
    let far_mline = Ice { mline: 99, candidate: String::new() };
    assert_eq!(invalid_field(ServerToKiosk::Ice { visit_id: id(), ice: far_mline }), "mline");
}

#[test]
fn end_of_candidates_is_an_empty_candidate() {
    round_trip(ConsoleToServer::Ice {
        visit_id: "v".into(),
        ice: Ice { mline: 1, candidate: String::new() },
    });
}

#[test]
fn topics_confine_each_device_to_its_own_subtree() {
    assert_eq!(topics::visit_out("k1"), "telekiosk/v1/dev/k1/visit/out");
    assert_eq!(topics::visit_in("k1"), "telekiosk/v1/dev/k1/visit/in");
    assert_eq!(topics::parse("telekiosk/v1/dev/k1/visit/out"), Some(("k1", "visit/out")));
    assert_eq!(topics::parse("telekiosk/v1/dev/k1/state"), Some(("k1", "state")));
    assert_eq!(topics::parse("telekiosk/v1/dev//state"), None);
    assert_eq!(topics::parse("other/v1/dev/k1/state"), None);
}

#[test]
fn kind_names_the_wire_type_of_every_server_to_kiosk_message() {
    let id = || "v-1".to_string();
    let all = [
        ServerToKiosk::Accepted { visit_id: id(), clinician: "dr-lee".into() },
        ServerToKiosk::Answer { visit_id: id(), sdp: SDP.into(), e2ee: ckey() },
        ServerToKiosk::Ice { visit_id: id(), ice: ice() },
        ServerToKiosk::End { visit_id: id(), reason: EndReason::ClinicianLeft },
    ];
    for msg in all {
        let json: serde_json::Value = serde_json::from_slice(&encode(&msg)).unwrap();
        assert_eq!(json["type"], msg.kind());
    }
}

mod api {
    use telekiosk_protocol::api::{EnrolRequest, EnrolResponse, EnrolStatus, LoginRequest};
    use telekiosk_protocol::{DecodeError, decode, encode};

    const CSR: &str =
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";

    #[test]
    fn enrolment_messages_round_trip() {
        let req = EnrolRequest { token: "K7QX-92MD".into(), csr_pem: CSR.into() };
        assert_eq!(decode::<EnrolRequest>(&encode(&req)).unwrap(), req);
        for status in [
            EnrolStatus::Pending,
            EnrolStatus::Approved {
                certificate_pem: "c".into(),
                ca_pem: "a".into(),
                signing_key_pem: "k".into(),
            },
        ] {
            let resp = EnrolResponse { device_id: "dev-abc".into(), status };
            assert_eq!(decode::<EnrolResponse>(&encode(&resp)).unwrap(), resp);
        }
        let login = LoginRequest { username: "dr-lee".into(), password: "pw".into() };
        assert_eq!(decode::<LoginRequest>(&encode(&login)).unwrap(), login);
    }

    #[test]
    fn enrolment_with_a_bad_token_or_no_csr_is_refused_naming_the_field() {
        let bad_token = EnrolRequest { token: "a b".into(), csr_pem: CSR.into() };
        assert!(matches!(
            decode::<EnrolRequest>(&encode(&bad_token)),
            Err(DecodeError::Invalid { field: "token", .. })
        ));
        let no_csr = EnrolRequest { token: "K7QX".into(), csr_pem: "hello".into() };
        assert!(matches!(
            decode::<EnrolRequest>(&encode(&no_csr)),
            Err(DecodeError::Invalid { field: "csr_pem", .. })
        ));
    }
}

#[test]
fn visit_codes_are_six_digits_and_refusals_round_trip() {
    let waiting = |code: &str| KioskToServer::Waiting {
        visit_id: "v-1".to_string(),
        clinic: "M".into(),
        room: "2".into(),
        language: Some(Language::Es),
        visit_code: Some(code.into()),
    };
    for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
        assert_eq!(invalid_field(waiting(bad)), "visit_code", "{bad:?}");
    }
    assert_eq!(waiting("004200").validate(), Ok(()));
    round_trip(ServerToKiosk::CodeRefused {
        visit_id: "v-1".to_string(),
        reason: CodeRefusal::TooManyTries,
        retry_after_secs: 60,
    });
    round_trip(ServerToKiosk::Position { visit_id: "v-1".to_string(), ahead: 2 });
    round_trip(ServerToKiosk::HelpComing { visit_id: "v-1".to_string() });
    let too_long = ServerToKiosk::CodeRefused {
        visit_id: "v-1".to_string(),
        reason: CodeRefusal::Unknown,
        retry_after_secs: 7200,
    };
    assert_eq!(invalid_field(too_long), "retry_after_secs");
}

fn kkey() -> telekiosk_protocol::e2ee::KioskKey {
    telekiosk_protocol::e2ee::KioskKey { public_key: "B".repeat(87), signature: "s".repeat(86) }
}

fn ckey() -> telekiosk_protocol::e2ee::ConsoleKey {
    telekiosk_protocol::e2ee::ConsoleKey { public_key: "C".repeat(87), confirm: "c".repeat(22) }
}

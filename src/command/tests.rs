//! Decoding commands as every input sends them: names, arguments, and the errors a bad one gets.

use super::*;

#[test]
fn every_name_decodes_with_defaults_or_refuses_for_missing_arguments() {
    for name in Command::NAMES {
        match Command::from_parts(name, b"") {
            Ok(cmd) => assert_eq!(&cmd.name(), name),
            Err(e) => assert_eq!(e.code, ErrorCode::InvalidArgument, "{name}: {e}"),
        }
    }
}

#[test]
fn decode_round_trips() {
    let cmd = Command::Join {
        room_id: Some("r1".into()),
        display_name: Some("Room 4".into()),
        metadata: None,
        mic: Some(false),
        webcam: None,
        mode: Some(Mode::ReceiveOnly),
    };
    let bytes = serde_json::to_vec(&cmd).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("\"roomId\":\"r1\""));
    assert_eq!(Command::decode(&bytes).unwrap(), cmd);
}

#[test]
fn bad_inputs_get_their_own_codes() {
    let code = |r: Result<Command, CommandError>| r.unwrap_err().code;
    assert_eq!(code(Command::decode(b"{nope")), ErrorCode::BadJson);
    assert_eq!(code(Command::decode(b"[1,2]")), ErrorCode::BadJson);
    assert_eq!(
        code(Command::decode(br#"{"command":"fly"}"#)),
        ErrorCode::UnknownCommand
    );
    assert_eq!(
        code(Command::decode(
            br#"{"command":"set-bitrate","kbps":"fast"}"#
        )),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(Command::decode(br#"{"command":"ping","extra":1}"#)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(Command::decode(br#"{"command":"set-bitrate","kbps":5}"#)),
        ErrorCode::OutOfRange
    );
    let big = vec![b' '; MAX_COMMAND_BYTES + 1];
    assert_eq!(code(Command::decode(&big)), ErrorCode::PayloadTooLarge);
    assert_eq!(
        code(Command::from_parts("ping", br#"{"command":"leave"}"#)),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn viewer_input_is_bounded_and_single_line() {
    let ok = Command::from_parts("viewer-chat", br#"{"name":"Ana","message":"hi"}"#);
    assert!(ok.is_ok(), "{ok:?}");
    let code = |r: Result<Command, CommandError>| r.unwrap_err().code;
    assert_eq!(
        code(Command::from_parts(
            "viewer-chat",
            br#"{"name":"Ana","message":"a\nviewer: Bob: forged"}"#
        )),
        ErrorCode::OutOfRange
    );
    assert_eq!(
        code(Command::from_parts(
            "ask-question",
            br#"{"name":"  ","text":"why?"}"#
        )),
        ErrorCode::OutOfRange
    );
    let long = format!(r#"{{"name":"Ana","text":"{}"}}"#, "x".repeat(501));
    assert_eq!(
        code(Command::from_parts("ask-question", long.as_bytes())),
        ErrorCode::OutOfRange
    );
    assert_eq!(
        code(Command::from_parts(
            "viewer-chat",
            br#"{"name":"Ana","message":"hi","to":"p1"}"#
        )),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn calendar_commands_decode_and_check_their_arguments() {
    assert_eq!(
        Command::from_parts("join-meeting", br#"{"eventId":"uid/20261207T090000Z"}"#).unwrap(),
        Command::JoinMeeting {
            event_id: "uid/20261207T090000Z".into()
        }
    );
    assert_eq!(
        Command::from_parts("book-now", br#"{"minutes":30}"#).unwrap(),
        Command::BookNow { minutes: 30 }
    );
    let code = |r: Result<Command, CommandError>| r.unwrap_err().code;
    assert_eq!(
        code(Command::from_parts("book-now", br#"{"minutes":45}"#)),
        ErrorCode::OutOfRange
    );
    assert_eq!(
        code(Command::from_parts("join-meeting", br#"{"eventId":""}"#)),
        ErrorCode::OutOfRange
    );
    assert_eq!(Command::CalendarRefresh.name(), "calendar-refresh");
}

#[test]
fn set_output_source_names_an_output_and_a_source() {
    use crate::model::{OutputKind, OutputSource};
    let ok = Command::from_parts(
        "set-output-source",
        br#"{"output":"livestream","name":"yt","source":"meeting"}"#,
    );
    assert_eq!(
        ok.unwrap(),
        Command::SetOutputSource {
            output: OutputKind::Livestream,
            name: Some("yt".into()),
            source: OutputSource::Meeting
        }
    );
    let code = |body: &[u8]| {
        Command::from_parts("set-output-source", body)
            .unwrap_err()
            .code
    };
    assert_eq!(
        code(br#"{"output":"recording","source":"everyone"}"#),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(br#"{"output":"tape","source":"room"}"#),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(br#"{"output":"recording","name":"yt","source":"room"}"#),
        ErrorCode::OutOfRange
    );
    assert_eq!(
        code(br#"{"output":"livestream","name":"","source":"room"}"#),
        ErrorCode::OutOfRange
    );
}

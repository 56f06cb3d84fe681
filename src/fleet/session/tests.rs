use super::*;
use crate::fleet::signing;

fn session() -> Session {
    Session::new(
        Topics::new("rb", "box1", &["lobby".into()]),
        None,
        Duration::from_secs(60),
    )
}

fn req(topic: &str, payload: &[u8], id: Option<&str>) -> Request {
    Request {
        topic: topic.into(),
        payload: payload.to_vec(),
        response_topic: Some("ops/reply/1".into()),
        correlation: Some(b"c-1".to_vec()),
        user: id
            .map(|i| vec![(PROP_ID.to_string(), i.to_string())])
            .unwrap_or_default(),
        dup: false,
    }
}

fn reply_of(d: Decision) -> (Message, ReplyLine) {
    match d {
        Decision::Reply(m) => {
            let line: ReplyLine = serde_json::from_str(&m.payload).unwrap();
            (m, line)
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn code_of(d: Decision) -> ErrorCode {
    let (m, line) = reply_of(d);
    assert_eq!(m.topic, "ops/reply/1");
    assert_eq!(m.correlation.as_deref(), Some(&b"c-1"[..]));
    assert!(!line.ok);
    line.error.unwrap().code
}

#[test]
fn every_bad_input_gets_its_code_and_runs_nothing() {
    let mut s = session();
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("rb/box1/cmd/ping", b"{nope".to_vec(), ErrorCode::BadJson),
        ("rb/box1/cmd/ping", b"[1]".to_vec(), ErrorCode::BadJson),
        ("rb/box1/cmd/fly", b"".to_vec(), ErrorCode::UnknownCommand),
        (
            "rb/box1/cmd/set-bitrate",
            br#"{"kbps":"fast"}"#.to_vec(),
            ErrorCode::InvalidArgument,
        ),
        (
            "rb/box1/cmd/identify",
            br#"{"seconds":0}"#.to_vec(),
            ErrorCode::OutOfRange,
        ),
        (
            "rb/box1/cmd/ping",
            vec![b' '; MAX_COMMAND_BYTES + 1],
            ErrorCode::PayloadTooLarge,
        ),
        (
            "rb/box1/cmd/set-config",
            br#"{"toml":1}"#.to_vec(),
            ErrorCode::InvalidArgument,
        ),
        (
            "rb/box1/cmd/set-config",
            b"\"x\"".to_vec(),
            ErrorCode::BadJson,
        ),
    ];
    for (topic, payload, code) in cases {
        assert_eq!(
            code_of(s.request(req(topic, &payload, None), 0)),
            code,
            "{topic}"
        );
    }
    assert!(s.tickets.is_empty());
}

#[test]
fn other_topics_are_ignored() {
    let mut s = session();
    assert_eq!(
        s.request(req("rb/box2/cmd/ping", b"", None), 0),
        Decision::Ignore
    );
    assert_eq!(
        s.request(req("rb/group/hall/cmd/ping", b"", None), 0),
        Decision::Ignore
    );
}

#[test]
fn a_good_command_runs_and_its_reply_echoes_the_correlation() {
    let mut s = session();
    let Decision::Run { ticket, work } = s.request(
        req("rb/group/lobby/cmd/identify", br#"{"seconds":3}"#, None),
        0,
    ) else {
        panic!()
    };
    assert_eq!(work, Work::Agent(Command::Identify { seconds: 3 }));
    let out = s.done(ticket, Ok(serde_json::json!({"ok":true})), 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].correlation.as_deref(), Some(&b"c-1"[..]));
    assert!(out[0].user.contains(&("device".into(), "box1".into())));
    let line: ReplyLine = serde_json::from_str(&out[0].payload).unwrap();
    assert!(line.ok);
}

#[test]
fn without_a_response_topic_replies_go_to_the_reply_topic() {
    let mut s = session();
    let mut r = req("rb/box1/cmd/fly", b"", None);
    r.response_topic = None;
    let (m, _) = reply_of(s.request(r, 0));
    assert_eq!(m.topic, "rb/box1/reply");
    let mut r = req("rb/box1/cmd/ping", b"", None);
    r.response_topic = Some("ops/#".into());
    let (m, line) = reply_of(s.request(r, 0));
    assert_eq!(m.topic, "rb/box1/reply");
    assert_eq!(line.error.unwrap().code, ErrorCode::InvalidArgument);
}

#[test]
fn a_redelivered_id_is_answered_from_the_cache_and_not_run_twice() {
    let mut s = session();
    let Decision::Run { ticket, .. } = s.request(req("rb/box1/cmd/ping", b"", Some("a1")), 0)
    else {
        panic!()
    };
    // Arrives again while the first is still running.
    assert_eq!(
        s.request(req("rb/box1/cmd/ping", b"", Some("a1")), 1),
        Decision::Wait
    );
    let out = s.done(ticket, Ok(serde_json::json!({"pong":true})), 2);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].payload, out[1].payload);
    // And once more after it finished.
    let (m, line) = reply_of(s.request(req("rb/box1/cmd/ping", b"", Some("a1")), 3));
    assert!(line.ok);
    assert!(m.user.contains(&("cached".into(), "true".into())));
    // A bad command's error is cached too.
    let first = code_of(s.request(req("rb/box1/cmd/fly", b"", Some("b1")), 4));
    let again = code_of(s.request(req("rb/box1/cmd/fly", b"", Some("b1")), 5));
    assert_eq!(first, again);
    // After the window the id is forgotten.
    assert!(matches!(
        s.request(req("rb/box1/cmd/ping", b"", Some("a1")), 3 + 60_001),
        Decision::Run { .. }
    ));
}

#[test]
fn answered_ids_go_to_the_journal_and_come_back_after_a_restart() {
    let mut s = session();
    let Decision::Run { ticket, .. } = s.request(req("rb/box1/cmd/ping", b"", Some("a")), 1_000)
    else {
        panic!("expected a run");
    };
    assert!(
        s.take_answered().is_empty(),
        "nothing answered while it runs"
    );
    s.done(ticket, Ok(serde_json::json!({"pong": true})), 1_100);
    // A bad command is answered at once, and remembered too.
    let _ = s.request(req("rb/box1/cmd/fly", b"", Some("b")), 1_200);
    let answered = s.take_answered();
    let ids: Vec<&str> = answered.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(s.take_answered().is_empty(), "taken once");
    assert_eq!(s.answered().len(), 2);

    // A new session (the agent restarted) that remembers them answers from the cache.
    let mut after = session();
    after.remember(answered);
    let (m, line) = reply_of(after.request(req("rb/box1/cmd/ping", b"", Some("a")), 2_000));
    assert!(line.ok);
    assert!(m.user.contains(&("cached".into(), "true".into())));
    // They still expire with the window (60 s here).
    assert!(matches!(
        after.request(req("rb/box1/cmd/ping", b"", Some("a")), 70_000),
        Decision::Run { .. }
    ));
}

#[test]
fn signed_mode_refuses_unsigned_replayed_and_stale_commands() {
    let (sk, pk) = signing::generate();
    let sk = signing::parse_signing_key(&sk).unwrap();
    let v = signing::Verifier::new(signing::parse_public_key(&pk).unwrap(), 30_000);
    let mut s = Session::new(
        Topics::new("rb", "box1", &[]),
        Some(v),
        Duration::from_secs(60),
    );
    let now = 10_000_000;
    assert_eq!(
        code_of(s.request(req("rb/box1/cmd/ping", b"", Some("x1")), now)),
        ErrorCode::Unauthorized
    );
    let mut signed = req("rb/box1/cmd/ping", b"", Some("x1"));
    signed.user.extend(signing::sign(
        &sk,
        "rb/box1/cmd/ping",
        now,
        "nonce-abcdef",
        "x1",
        b"",
    ));
    let Decision::Run { ticket, .. } = s.request(signed.clone(), now) else {
        panic!()
    };
    s.done(ticket, Ok(serde_json::json!({})), now);
    assert_eq!(
        code_of(s.request(signed.clone(), now + 1)),
        ErrorCode::Unauthorized
    );
    // The broker's own re-delivery is answered from the cache.
    let mut dup = signed.clone();
    dup.dup = true;
    let (_, line) = reply_of(s.request(dup, now + 2));
    assert!(line.ok);
    let mut stale = req("rb/box1/cmd/ping", b"", Some("x2"));
    stale.user.extend(signing::sign(
        &sk,
        "rb/box1/cmd/ping",
        now - 31_000,
        "nonce-222222",
        "x2",
        b"",
    ));
    assert_eq!(code_of(s.request(stale, now)), ErrorCode::Unauthorized);
}

#[test]
fn throttle_keeps_the_latest_within_the_interval() {
    let mut t = Throttle::new(Duration::from_millis(1000));
    assert_eq!(t.due(0), None);
    t.mark();
    assert_eq!(t.due(5), Some(5));
    t.fired(5);
    t.mark();
    t.mark();
    assert_eq!(t.due(100), Some(1005));
    t.fired(1005);
    assert_eq!(t.due(2000), None);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(Command::NAMES.to_vec()).prop_map(str::to_string),
            Just(SET_CONFIG.to_string()),
            "[a-z-]{0,12}",
        ]
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            // JSON objects with plausible keys and values of every type.
            proptest::collection::btree_map(
                prop_oneof![
                    Just("roomId".to_string()),
                    Just("kbps".to_string()),
                    Just("seconds".to_string()),
                    Just("message".to_string()),
                    Just("target".to_string()),
                    Just("outputs".to_string()),
                    Just("toml".to_string()),
                    Just("command".to_string()),
                    "[a-zA-Z]{1,8}",
                ],
                prop_oneof![
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<bool>().prop_map(serde_json::Value::from),
                    ".{0,40}".prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                    Just(serde_json::json!([{"url": "rtmp://h/a"}])),
                ],
                0..4,
            )
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever arrives, the session answers with a well-formed reply or runs a command
        /// that passes validation; it never panics, and a refusal runs nothing.
        #[test]
        fn any_request_gets_a_reply_or_a_valid_command(
            name in name(),
            payload in payload(),
            id in proptest::option::of("[ -~]{0,140}"),
        ) {
            let mut s = session();
            let topic = format!("rb/box1/cmd/{name}");
            let r = req(&topic, &payload, id.as_deref());
            match s.request(r, 1) {
                Decision::Reply(m) => {
                    let line: ReplyLine = serde_json::from_str(&m.payload).unwrap();
                    prop_assert!(!line.ok);
                    prop_assert!(line.error.is_some());
                    prop_assert!(s.tickets.is_empty());
                }
                Decision::Run { work: Work::Agent(cmd), .. } => {
                    prop_assert_eq!(cmd.name(), name.clone());
                    prop_assert!(cmd.validate().is_ok());
                    // What was accepted round-trips through the wire format.
                    let bytes = serde_json::to_vec(&cmd).unwrap();
                    prop_assert_eq!(Command::decode(&bytes).unwrap(), cmd);
                }
                Decision::Run { work: Work::SetConfig(_), .. } => prop_assert_eq!(name, SET_CONFIG),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}

//! The fleet API against real mosquitto brokers on loopback: command round trips, bad input,
//! the last will, broker restarts, TLS with per-device ACLs, signed commands and set-config, a
//! command-id cache that survives a restart, and a refused box that says why (a version 1
//! certificate, the wrong CA, a wrong password) in `status`, `check` and once in its log.

mod support;

use roombox::command::{Command, ErrorCode};
use roombox::config::Config;
use roombox::fleet::cli::{ConnArgs, Operator, Received, To};
use roombox::fleet::sim::SimBox;
use std::path::Path;
use std::time::Duration;
use support::agent::AgentProcess;
use support::eventually;
use support::mosquitto::Mosquitto;

const LONG: Duration = Duration::from_secs(20);

fn box_config(broker: &str, device: &str, state_dir: &Path) -> Config {
    let mut c = Config::default();
    c.device.id = device.into();
    c.device.state_dir = state_dir.to_path_buf();
    c.fleet.broker = broker.into();
    c.fleet.prefix = "rb".into();
    c.fleet.groups = vec!["lobby".into()];
    c.fleet.reconnect.initial = Duration::from_millis(100);
    c.fleet.reconnect.max = Duration::from_millis(500);
    c.fleet.state_min_interval = Duration::from_millis(100);
    c.fleet.keep_alive = Duration::from_secs(5);
    if !broker.starts_with("mqtts") {
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }
    c
}

fn operator_args(broker: &str) -> ConnArgs {
    ConnArgs {
        broker: broker.into(),
        prefix: "rb".into(),
        ..Default::default()
    }
}

async fn operator(broker: &str) -> Operator {
    Operator::connect(&operator_args(broker)).await.unwrap()
}

/// Waits until the box answers a ping (it is connected and subscribed).
async fn wait_online(op: &mut Operator, device: &str) {
    support::fleet::wait_online(op, device, LONG).await
}

async fn call(op: &mut Operator, device: &str, cmd: &str, args: &str) -> roombox::api::ReplyLine {
    let r = op
        .request(&To::Device(device.into()), cmd, args.as_bytes(), None, LONG)
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "{cmd}: expected one reply");
    assert_eq!(r[0].0, device);
    r[0].1.clone()
}

fn event_names(msgs: &[Received]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/events"))
        .filter_map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload)
                .ok()?
                .get("event")?
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_round_trips_with_its_correlation() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = box_config(&broker.url(), "box1", dir.path());
    let sim = SimBox::start(&config, None, dir.path()).await.unwrap();
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "box1").await;
    let mut watch = operator(&broker.url()).await;
    watch
        .subscribe(&["rb/box1/events".into(), "rb/box1/state".into()])
        .await
        .unwrap();

    let unavailable = Some(ErrorCode::Unavailable);
    let cases: Vec<(&str, &str, Option<ErrorCode>)> = vec![
        ("join", r#"{"roomId":"r1"}"#, unavailable),
        ("leave", "", unavailable),
        ("end", "", unavailable),
        ("toggle-join", "", unavailable),
        ("enable-mic", "", None),
        ("disable-mic", "", None),
        ("toggle-mic", "", None),
        ("enable-webcam", "", None),
        ("disable-webcam", "", None),
        ("toggle-webcam", "", None),
        // No [media.share] source on this box: starting says so, stopping is a no-op.
        ("start-share", "", unavailable),
        ("stop-share", "", None),
        ("toggle-share", "", unavailable),
        ("send-chat", r#"{"message":"hello"}"#, unavailable),
        ("start-recording", "", None),
        ("stop-recording", r#"{"target":"local"}"#, None),
        ("start-recording", r#"{"target":"cloud"}"#, unavailable),
        ("stop-recording", r#"{"target":"cloud"}"#, unavailable),
        (
            "start-livestream",
            r#"{"outputs":[{"url":"rtmp://127.0.0.1/live","streamKey":"k"}]}"#,
            None,
        ),
        ("stop-livestream", "", None),
        ("start-hls", "", unavailable),
        // The simulated boxes run no HTTP server: HLS cannot start, so it is not on to stop.
        ("stop-hls", "", Some(ErrorCode::InvalidState)),
        // The model setup fetches is English-only: French is refused and nothing starts.
        (
            "start-transcription",
            r#"{"language":"fr"}"#,
            Some(ErrorCode::OutOfRange),
        ),
        ("stop-transcription", "", Some(ErrorCode::InvalidState)),
        (
            "transcribe-recording",
            r#"{"file":"no-such-segment.mkv"}"#,
            Some(ErrorCode::InvalidArgument),
        ),
        ("request-keyframe", "", None),
        ("set-bitrate", r#"{"kbps":1000}"#, None),
        ("get-state", "", None),
        ("ping", "", None),
        ("identify", r#"{"seconds":2}"#, None),
        ("reload-config", "", None),
        ("restart-media", "", None),
        // The viewers' chat: message 1, question 2.
        ("viewer-chat", r#"{"name":"Ana","message":"hi"}"#, None),
        ("ask-question", r#"{"name":"Ana","text":"why?"}"#, None),
        ("answer-question", r#"{"id":2}"#, None),
        (
            "dismiss-question",
            r#"{"id":2}"#,
            Some(ErrorCode::InvalidArgument),
        ),
        ("hide-message", r#"{"id":1}"#, None),
        // A live poll: id 3, after the message and the question.
        (
            "create-poll",
            r#"{"question":"Lunch?","options":["Pizza","Sushi"]}"#,
            None,
        ),
        ("vote", r#"{"pollId":3,"option":0,"name":"Ana"}"#, None),
        (
            "vote",
            r#"{"pollId":3,"option":1,"name":"ana"}"#,
            Some(ErrorCode::InvalidState),
        ),
        ("close-poll", r#"{"id":3}"#, None),
        // The meeting's focus: only someone in the meeting can be pinned; unpinning is fine.
        (
            "pin",
            r#"{"participantId":"nobody"}"#,
            Some(ErrorCode::InvalidState),
        ),
        ("pin", "", None),
        // What the recording carries from its next start; an RTMP output that is not there.
        (
            "set-output-source",
            r#"{"output":"recording","source":"meeting"}"#,
            None,
        ),
        (
            "set-output-source",
            r#"{"output":"livestream","name":"nowhere","source":"meeting"}"#,
            Some(ErrorCode::InvalidArgument),
        ),
        ("set-volume", r#"{"percent":40}"#, None),
        // An unsigned update is refused (this box has no update.allow_unsigned), nothing starts.
        (
            "update",
            r#"{"manifest":{"version":"9.9.9-1","url":"http://127.0.0.1:9/roombox.deb","size":1000,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}"#,
            Some(ErrorCode::Unauthorized),
        ),
        // No [calendar] on this box: the calendar's commands say so.
        ("calendar-refresh", "", unavailable),
        ("join-meeting", r#"{"eventId":"e1"}"#, unavailable),
        ("book-now", r#"{"minutes":30}"#, unavailable),
        ("restart", "", None),
    ];
    let covered: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.0).collect();
    let all: std::collections::BTreeSet<&str> = Command::NAMES.iter().copied().collect();
    assert_eq!(covered, all, "every command has a round trip");

    for (cmd, args, want) in &cases {
        let line = call(&mut op, "box1", cmd, args).await;
        match want {
            None => assert!(line.ok, "{cmd}: {line:?}"),
            Some(code) => {
                assert!(!line.ok, "{cmd}");
                assert_eq!(line.error.as_ref().unwrap().code, *code, "{cmd}");
            }
        }
        if *cmd == "get-state" {
            assert_eq!(line.result.as_ref().unwrap()["deviceId"], "box1");
        }
        if *cmd == "ping" {
            assert_eq!(line.result.as_ref().unwrap()["pong"], true);
        }
    }
    // What the commands did shows on the event stream and the retained state.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Some(m) = watch.next_until(deadline).await {
        got.push(m);
    }
    let names = event_names(&got);
    for want in [
        "stream-enabled",
        "stream-disabled",
        "recording-state-changed",
        "identify",
        "config-reloaded",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "no {want} event in {names:?}"
        );
    }
    let states: Vec<serde_json::Value> = got
        .iter()
        .filter(|m| m.topic == "rb/box1/state")
        .filter_map(|m| serde_json::from_slice(&m.payload).ok())
        .collect();
    assert!(states
        .iter()
        .any(|s| s["localParticipant"]["micOn"] == true));
    assert_eq!(sim.media_count("RequestKeyframe"), 1);
    assert!(sim
        .media_log
        .lock()
        .unwrap()
        .contains(&"SetBitrate(1000)".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_stable_codes_and_change_nothing() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = box_config(&broker.url(), "box1", dir.path());
    let sim = SimBox::start(&config, None, dir.path()).await.unwrap();
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "box1").await;
    let before = serde_json::to_value(&*sim.agent.state().borrow()).unwrap();
    let log_before = sim.media_log.lock().unwrap().len();
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(70 * 1024));
    let cases: Vec<(&str, String, ErrorCode)> = vec![
        ("enable-mic", "{not json".into(), ErrorCode::BadJson),
        ("enable-mic", "[true]".into(), ErrorCode::BadJson),
        ("fly", "".into(), ErrorCode::UnknownCommand),
        (
            "set-bitrate",
            r#"{"kbps":"fast"}"#.into(),
            ErrorCode::InvalidArgument,
        ),
        (
            "enable-mic",
            r#"{"loud":true}"#.into(),
            ErrorCode::InvalidArgument,
        ),
        ("set-bitrate", r#"{"kbps":7}"#.into(), ErrorCode::OutOfRange),
        (
            "identify",
            r#"{"seconds":100000}"#.into(),
            ErrorCode::OutOfRange,
        ),
        ("send-chat", big, ErrorCode::PayloadTooLarge),
        (
            "set-config",
            r#"{"toml":"[media.video]\nfps = 120\n"}"#.into(),
            ErrorCode::Unavailable,
        ),
    ];
    for (cmd, payload, code) in cases {
        let line = call(&mut op, "box1", cmd, &payload).await;
        assert!(!line.ok, "{cmd} {payload:.40}");
        let e = line.error.unwrap();
        assert_eq!(e.code, code, "{cmd} {payload:.40}: {}", e.message);
        assert!(!e.message.is_empty());
    }
    let after = serde_json::to_value(&*sim.agent.state().borrow()).unwrap();
    assert_eq!(before, after, "refused commands change no state");
    assert_eq!(sim.media_log.lock().unwrap().len(), log_before);
    // The box is still there.
    assert!(call(&mut op, "box1", "ping", "").await.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_command_reaches_every_member_once() {
    let broker = Mosquitto::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut sims = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let mut c = box_config(&broker.url(), &format!("box{i}"), d.path());
        if i == 2 {
            c.fleet.groups = vec!["hall".into()];
        }
        sims.push(SimBox::start(&c, None, d.path()).await.unwrap());
    }
    let mut op = operator(&broker.url()).await;
    for i in 0..3 {
        wait_online(&mut op, &format!("box{i}")).await;
    }
    let replies = op
        .request(
            &To::Group("lobby".into()),
            "identify",
            br#"{"seconds":3}"#,
            None,
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let mut devices: Vec<String> = replies.iter().map(|r| r.0.clone()).collect();
    devices.sort();
    assert_eq!(devices, vec!["box0", "box1"]);
    assert!(replies.iter().all(|r| r.1.ok));
    assert!(sims[0].agent.state().borrow().identify_until_ms.is_some());
    assert!(sims[2].agent.state().borrow().identify_until_ms.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_will_fires_when_the_box_is_killed() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roombox.toml");
    std::fs::write(
        &config_path,
        format!(
            "[device]\nid = \"killme\"\nstate_dir = \"{}\"\n[media.video]\nsource = \"none\"\n[media.audio]\nsource = \"none\"\n[fleet]\nbroker = \"{}\"\nprefix = \"rb\"\n",
            dir.path().join("state").display(),
            broker.url()
        ),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/fleet_box");
    assert!(
        bin.exists(),
        "build the example: cargo build --features test-util --example fleet_box"
    );
    let mut child = std::process::Command::new(&bin)
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut op = operator(&broker.url()).await;
    op.subscribe(&["rb/killme/status".into()]).await.unwrap();
    let status = |m: &Received| {
        serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let birth = op
        .next_until(tokio::time::Instant::now() + LONG)
        .await
        .expect("the birth message");
    assert_eq!(status(&birth), "online");
    // The real daemon answers fleet commands.
    let mut cmd = operator(&broker.url()).await;
    wait_online(&mut cmd, "killme").await;
    let state = call(&mut cmd, "killme", "get-state", "").await;
    assert_eq!(state.result.unwrap()["deviceId"], "killme");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let will = op
        .next_until(tokio::time::Instant::now() + LONG)
        .await
        .expect("the last will");
    let v: serde_json::Value = serde_json::from_slice(&will.payload).unwrap();
    assert_eq!(v["status"], "offline");
    assert_eq!(v["reason"], "connection lost");
    // Retained: a newcomer sees it too.
    let mut late = operator(&broker.url()).await;
    late.subscribe(&["rb/killme/status".into()]).await.unwrap();
    let m = late
        .next_until(tokio::time::Instant::now() + LONG)
        .await
        .expect("retained status");
    assert_eq!(status(&m), "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_across_a_broker_restart_run_exactly_once() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = box_config(&broker.url(), "box1", dir.path());
    let mut sim = SimBox::start(&config, None, dir.path()).await.unwrap();
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "box1").await;
    // The box goes away; its persistent session stays with the broker.
    sim.kill_fleet();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<String> = (0..5).map(|i| format!("kf-{i}")).collect();
    for id in &ids {
        op.send(
            &To::Device("box1".into()),
            "request-keyframe",
            b"",
            id,
            id.as_bytes(),
        )
        .await
        .unwrap();
    }
    // Give mosquitto time to take them, then restart it: the queue must survive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.restart();
    let mut follower = operator(&broker.url()).await;
    follower
        .subscribe(&["rb/box1/reply/#".into()])
        .await
        .unwrap();
    sim.start_fleet(&config, None, dir.path()).await.unwrap();
    let mut replies = Vec::new();
    let deadline = tokio::time::Instant::now() + LONG;
    while replies.len() < ids.len() {
        let Some(m) = follower.next_until(deadline).await else {
            break;
        };
        replies.push(m.prop("id").unwrap_or_default().to_string());
    }
    replies.sort();
    assert_eq!(replies, ids, "every queued command answered once");
    assert_eq!(sim.media_count("RequestKeyframe"), 5);
    // The operator retries one: the cached reply answers, nothing runs again.
    let mut op = operator(&broker.url()).await;
    let r = op
        .request(
            &To::Device("box1".into()),
            "request-keyframe",
            b"",
            Some("kf-3".into()),
            LONG,
        )
        .await
        .unwrap();
    assert!(r[0].1.ok);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.media_count("RequestKeyframe"),
        5,
        "no command ran twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_produced_while_the_broker_is_down_arrive_after_it_returns() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = box_config(&broker.url(), "box1", dir.path());
    let sim = SimBox::start(&config, None, dir.path()).await.unwrap();
    // A durable follower: its subscription and QoS 1 messages survive the restart.
    let mut args = operator_args(&broker.url());
    args.client_id = Some("follower".into());
    let mut follower = Operator::connect(&args).await.unwrap();
    follower
        .subscribe(&["rb/box1/events".into()])
        .await
        .unwrap();
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "box1").await;
    drop(op);

    broker.stop();
    // Wait until the box has noticed, then make events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (cmd, mic) in [
        (Command::EnableMic, true),
        (Command::DisableMic, false),
        (Command::Identify { seconds: 1 }, false),
    ] {
        sim.agent.send(cmd).await.unwrap();
        // The mic state changes once the media engine confirms it.
        let mut state = sim.agent.state();
        tokio::time::timeout(LONG, state.wait_for(|s| s.local_participant.mic_on == mic))
            .await
            .unwrap()
            .unwrap();
    }
    eventually("the events in the outbox", LONG, || async {
        let n = std::fs::read_dir(dir.path().join("fleet/outbox"))
            .ok()?
            .count();
        (n >= 3).then_some(())
    })
    .await;
    broker.restart();
    let mut names = Vec::new();
    let deadline = tokio::time::Instant::now() + LONG;
    while !names.iter().any(|n| n == "identify") {
        let Some(m) = follower.next_until(deadline).await else {
            break;
        };
        names.extend(event_names(&[m]));
    }
    let order: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| ["stream-enabled", "stream-disabled", "identify"].contains(n))
        .collect();
    assert_eq!(
        order,
        vec!["stream-enabled", "stream-disabled", "identify"],
        "oldest first"
    );
    eventually("the outbox to empty", LONG, || async {
        let n = std::fs::read_dir(dir.path().join("fleet/outbox"))
            .ok()?
            .count();
        (n == 0).then_some(())
    })
    .await;
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and client certificates whose CN is each name.
fn make_pki(dir: &Path, clients: &[&str]) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=roombox-test-ca",
    ]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in
        std::iter::once(("server", "server.ext")).chain(clients.iter().map(|c| (*c, "client.ext")))
    {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let subj = format!("/CN={}", if name == "server" { "localhost" } else { name });
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
}

fn tls_operator(broker: &Mosquitto, name: &str) -> ConnArgs {
    let d = broker.dir.path();
    ConnArgs {
        broker: format!("mqtts://127.0.0.1:{}", broker.port),
        prefix: "rb".into(),
        ca: Some(d.join("ca.pem")),
        cert: Some(d.join(format!("{name}.pem"))),
        key: Some(d.join(format!("{name}.key"))),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_and_an_acl_another_devices_certificate_commands_nothing() {
    let broker = Mosquitto::start_with(|dir, port| {
        make_pki(dir, &["box1", "box2", "operator"]);
        std::fs::write(
            dir.join("acl"),
            "pattern readwrite rb/%u/#\npattern read rb/group/#\npattern write rb/reply/#\n\nuser operator\ntopic readwrite rb/#\n",
        )
        .unwrap();
        format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\nacl_file {d}/acl\n",
            d = dir.display()
        )
    });
    let d = broker.dir.path();
    let state = tempfile::tempdir().unwrap();
    let mut config = box_config(
        &format!("mqtts://127.0.0.1:{}", broker.port),
        "box1",
        state.path(),
    );
    config.fleet.tls.ca = d.join("ca.pem");
    config.fleet.tls.cert = d.join("box1.pem");
    config.fleet.tls.key = d.join("box1.key");
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let sim = SimBox::start(&config, None, state.path()).await.unwrap();

    let mut op = Operator::connect(&tls_operator(&broker, "operator"))
        .await
        .unwrap();
    wait_online(&mut op, "box1").await;
    let group = op
        .request(
            &To::Group("lobby".into()),
            "ping",
            b"",
            None,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(group.len(), 1, "a group command and its reply pass the ACL");

    // box2's certificate: a valid client of the same broker.
    let mut intruder = Operator::connect(&tls_operator(&broker, "box2"))
        .await
        .unwrap();
    intruder.subscribe(&["rb/box1/#".into()]).await.unwrap();
    intruder
        .publish_raw(
            "rb/box1/cmd/request-keyframe",
            b"",
            Some("rb/box2/reply/x".into()),
            Some(b"x".to_vec()),
            vec![("id".into(), "intrude-1".into())],
        )
        .await
        .unwrap();
    // The operator's command after it arrives after it, so the box had every chance to act.
    assert!(
        call(&mut op, "box1", "identify", r#"{"seconds":1}"#)
            .await
            .ok
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.media_count("RequestKeyframe"), 0, "box2 commanded box1");
    let leaked = intruder
        .next_until(tokio::time::Instant::now() + Duration::from_secs(1))
        .await;
    assert!(
        leaked.is_none(),
        "box2 read box1's tree: {:?}",
        leaked.map(|m| m.topic)
    );
    // Without a certificate nothing connects at all.
    let mut anon = tls_operator(&broker, "operator");
    anon.cert = None;
    anon.key = None;
    assert!(Operator::connect(&anon).await.is_err());
}

/// Publishes a raw command to box1 and returns the reply with that correlation.
async fn raw_call(
    op: &Operator,
    replies: &mut Operator,
    cmd: &str,
    user: Vec<(String, String)>,
    corr: &str,
) -> roombox::api::ReplyLine {
    op.publish_raw(
        &format!("rb/box1/cmd/{cmd}"),
        b"",
        Some("rb/box1/reply/raw".into()),
        Some(corr.as_bytes().to_vec()),
        user,
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let m = replies.next_until(deadline).await.expect("a reply");
        if m.correlation.as_deref() == Some(corr.as_bytes()) {
            return serde_json::from_slice(&m.payload).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_mode_refuses_bad_signatures_replays_and_stale_timestamps() {
    use roombox::fleet::signing;
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = signing::generate();
    let key_file = dir.path().join("fleet.key");
    std::fs::write(&key_file, &private).unwrap();
    let mut config = box_config(&broker.url(), "box1", dir.path());
    config.fleet.signing.public_key = public;
    let sim = SimBox::start(&config, None, dir.path()).await.unwrap();

    let mut args = operator_args(&broker.url());
    args.signing_key = Some(key_file);
    let mut signer = Operator::connect(&args).await.unwrap();
    wait_online(&mut signer, "box1").await;
    assert!(call(&mut signer, "box1", "request-keyframe", "").await.ok);

    let mut unsigned = operator(&broker.url()).await;
    let line = call(&mut unsigned, "box1", "request-keyframe", "").await;
    assert_eq!(line.error.unwrap().code, ErrorCode::Unauthorized);

    let mut replies = operator(&broker.url()).await;
    replies
        .subscribe(&["rb/box1/reply/raw".into()])
        .await
        .unwrap();
    let sk = signing::parse_signing_key(&private).unwrap();
    let topic = "rb/box1/cmd/request-keyframe";
    let now = roombox::model::now_ms();
    let with_id = |id: &str, mut props: Vec<(String, String)>| {
        props.push(("id".into(), id.into()));
        props
    };

    // Signed by another key.
    let (other, _) = signing::generate();
    let other = signing::parse_signing_key(&other).unwrap();
    let forged = signing::sign(&other, topic, now, "nonce-forged-1", "f1", b"");
    let line = raw_call(
        &unsigned,
        &mut replies,
        "request-keyframe",
        with_id("f1", forged),
        "c1",
    )
    .await;
    let e = line.error.unwrap();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Unauthorized, "bad signature")
    );

    // A good one, then the very same bytes again.
    let good = signing::sign(&sk, topic, now, "nonce-good-0001", "g1", b"");
    let line = raw_call(
        &unsigned,
        &mut replies,
        "request-keyframe",
        with_id("g1", good.clone()),
        "c2",
    )
    .await;
    assert!(line.ok, "{line:?}");
    let line = raw_call(
        &unsigned,
        &mut replies,
        "request-keyframe",
        with_id("g1", good),
        "c3",
    )
    .await;
    let e = line.error.unwrap();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(e.message.contains("replayed"), "{}", e.message);

    // Signed, but ten minutes old.
    let stale = signing::sign(&sk, topic, now - 600_000, "nonce-stale-01", "s1", b"");
    let line = raw_call(
        &unsigned,
        &mut replies,
        "request-keyframe",
        with_id("s1", stale),
        "c4",
    )
    .await;
    let e = line.error.unwrap();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(e.message.contains("window"), "{}", e.message);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.media_count("RequestKeyframe"),
        2,
        "only the two signed commands ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_validates_applies_and_rolls_back() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("roombox.toml");
    std::fs::write(
        &main,
        format!(
            "[device]\nid = \"box1\"\nstate_dir = \"{}\"\n[fleet]\nbroker = \"{}\"\nprefix = \"rb\"\nset_config_timeout = \"3s\"\n[fleet.reconnect]\ninitial = \"100ms\"\nmax = \"500ms\"\n",
            dir.path().join("state").display(),
            broker.url()
        ),
    )
    .unwrap();
    let config = roombox::config::load(Some(&main)).unwrap().config;
    let sim = SimBox::start(&config, Some(main.clone()), &dir.path().join("state"))
        .await
        .unwrap();
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "box1").await;
    let dropin = dir.path().join("config.d/90-fleet.toml");
    let set = |toml: &str| serde_json::json!({ "toml": toml }).to_string();

    let good = "[device]\nname = \"Lobby\"\n";
    let line = call(&mut op, "box1", "set-config", &set(good)).await;
    assert!(line.ok, "{line:?}");
    assert_eq!(std::fs::read_to_string(&dropin).unwrap(), good);
    assert_eq!(sim.agent.state().borrow().device_name, "Lobby");

    let line = call(
        &mut op,
        "box1",
        "set-config",
        &set("[media.video]\nfps = 120\n"),
    )
    .await;
    let e = line.error.unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("media.video.fps"), "{}", e.message);
    assert_eq!(
        std::fs::read_to_string(&dropin).unwrap(),
        good,
        "nothing written"
    );
}

/// The rollback on the real agent: `roombox run` with its real media engine takes a config whose
/// camera does not exist, turns unhealthy because capture really cannot open it, and the fleet
/// puts the previous config back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_config_whose_camera_is_missing_rolls_back_on_the_real_agent() {
    let broker = Mosquitto::start();
    let agent = AgentProcess::start(&format!(
        "{}\n[fleet]\nbroker = \"{}\"\nprefix = \"rb\"\nset_config_timeout = \"5s\"\n[fleet.reconnect]\ninitial = \"100ms\"\nmax = \"500ms\"\n",
        support::agent::SMALL_MEDIA,
        broker.url()
    ));
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "test-box").await;
    agent
        .wait_state("media playing and healthy", LONG, |s| {
            s["media"]["state"] == "PLAYING" && s["health"]["ok"] == true
        })
        .await;
    let dropin = agent.dir.path().join("config.d/90-fleet.toml");
    let set = |toml: &str| serde_json::json!({ "toml": toml }).to_string();

    let good = "[device]\nname = \"Lobby\"\n";
    let line = call(&mut op, "test-box", "set-config", &set(good)).await;
    assert!(line.ok, "{line:?}\nlog:\n{}", agent.log());

    let broken = "[device]\nname = \"Broken\"\n[media.video]\nsource = \"v4l2\"\ndevice = \"/dev/video-roombox-missing\"\n";
    let line = call(&mut op, "test-box", "set-config", &set(broken)).await;
    let e = line
        .error
        .expect("a config whose camera is missing is refused");
    assert_eq!(e.code, ErrorCode::Internal);
    assert!(e.message.contains("rolled back"), "{}", e.message);
    assert!(
        e.message.contains("/dev/video-roombox-missing"),
        "the reply names what was wrong: {}",
        e.message
    );
    assert_eq!(std::fs::read_to_string(&dropin).unwrap(), good);
    agent
        .wait_state("healthy again on the previous config", LONG, |s| {
            s["health"]["ok"] == true
                && s["deviceName"] == "Lobby"
                && s["media"]["state"] == "PLAYING"
                && s["media"]["videoSource"] == "test"
        })
        .await;
}

/// Sends `command` with `id` to box1 and returns its reply message (with its user properties).
async fn send_with_id(op: &mut Operator, command: &str, id: &str) -> Received {
    let corr = uuid::Uuid::new_v4().as_bytes().to_vec();
    op.send(&To::Device("box1".into()), command, b"", id, &corr)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let m = op.next_until(deadline).await.expect("a reply");
        if m.correlation.as_deref() == Some(&corr[..]) {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_id_redelivered_after_a_restart_is_answered_from_the_cache() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = box_config(&broker.url(), "box1", dir.path());
    let sim = SimBox::start(&config, None, dir.path()).await.unwrap();
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "box1").await;
    let first = send_with_id(&mut op, "request-keyframe", "restart-1").await;
    assert_eq!(first.prop("cached"), None);
    assert_eq!(sim.media_count("RequestKeyframe"), 1);
    // The agent dies as in a crash: no clean stop, nothing flushed on the way out.
    drop(sim);

    let sim = SimBox::start(&config, None, dir.path()).await.unwrap();
    wait_online(&mut op, "box1").await;
    let again = send_with_id(&mut op, "request-keyframe", "restart-1").await;
    assert_eq!(
        again.prop("cached"),
        Some("true"),
        "answered from the cache"
    );
    assert_eq!(again.payload, first.payload, "with the same reply");
    let fresh = send_with_id(&mut op, "request-keyframe", "restart-2").await;
    assert_eq!(fresh.prop("cached"), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.media_count("RequestKeyframe"),
        1,
        "the re-delivered command did not run again; the new one did"
    );
}

/// Issues `<name>.pem` for `<name>.key`/`<name>.csr` (made by [`make_pki`] or here) from
/// `ca`: version 3 with `ext`, or version 1, as a plain `openssl x509 -req` makes it.
fn issue(dir: &Path, name: &str, ca: &str, ext: Option<&str>) {
    let (key, csr, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("/CN={name}"),
    );
    if !dir.join(&csr).exists() {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
        );
    }
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
    ];
    if let Some(ext) = ext {
        args.extend(["-extfile", ext]);
    }
    openssl(dir, &args);
}

/// A mosquitto that wants a client certificate from the test CA, with box1's certificate
/// issued as X.509 version 1 and a second, unrelated CA beside it.
fn tls_broker() -> Mosquitto {
    Mosquitto::start_with(|dir, port| {
        make_pki(dir, &["operator"]);
        issue(dir, "box1", "ca", None);
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "other-ca.key",
                "-out",
                "other-ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=some-other-ca",
            ],
        );
        format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\n",
            d = dir.display()
        )
    })
}

/// The real `roombox run` with only a fleet (`fleet` is the `[fleet]` body), retrying fast.
fn fleet_agent(fleet: &str) -> AgentProcess {
    AgentProcess::start(&format!(
        "[media.video]\nsource = \"none\"\n[media.audio]\nsource = \"none\"\n[fleet]\nprefix = \"rb\"\n{fleet}\n[fleet.reconnect]\ninitial = \"100ms\"\nmax = \"300ms\"\n"
    ))
}

fn roombox(args: &[&str], config_or_socket: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
        .args(args)
        .arg(config_or_socket)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `roombox check`'s lines about the fleet.
fn fleet_check(agent: &AgentProcess) -> Vec<String> {
    let (_, out) = roombox(&["check", "--config"], &agent.config);
    out.lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|c| c.starts_with("fleet"))
        })
        .map(str::to_string)
        .collect()
}

/// Waits until the box reports its link down, and returns the fleet block of its state.
async fn wait_refused(agent: &AgentProcess) -> serde_json::Value {
    let s = agent
        .wait_state("the fleet link to go down", LONG, |s| {
            s["fleet"]["state"] == "DISCONNECTED"
        })
        .await;
    assert_eq!(s["health"]["ok"], false, "a refused box is not healthy");
    let problems = s["health"]["problems"].to_string();
    assert!(problems.contains("fleet"), "{problems}");
    s["fleet"].clone()
}

/// Lets the box retry several times (100–300 ms apart), then counts how often it logged the
/// failure.
async fn logged_failures(agent: &AgentProcess) -> usize {
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.log().matches("fleet: cannot connect").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_certificate_is_named_with_its_fix_and_a_reissued_one_connects() {
    let broker = tls_broker();
    let d = broker.dir.path();
    let agent = fleet_agent(&format!(
        "broker = \"mqtts://127.0.0.1:{}\"\n[fleet.tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/box1.pem\"\nkey = \"{d}/box1.key\"\n",
        broker.port,
        d = d.display()
    ));
    let fleet = wait_refused(&agent).await;
    let error = fleet["lastError"].as_str().unwrap();
    assert!(error.contains("version 1"), "{error}");
    assert!(error.contains("box1.pem"), "names the file: {error}");
    let fix = fleet["fix"].as_str().unwrap();
    assert!(
        fix.contains("-extfile") && fix.contains("-copy_extensions"),
        "{fix}"
    );

    let (_, status) = roombox(&["status", "--socket"], &agent.socket);
    assert!(status.contains("health       PROBLEMS: fleet"), "{status}");
    assert!(status.contains("fleet        DISCONNECTED"), "{status}");
    assert!(
        status.contains("version 1") && status.contains("fix: "),
        "{status}"
    );

    let check = fleet_check(&agent);
    assert!(
        check
            .iter()
            .any(|l| l.starts_with("failed   fleet-cert") && l.contains("version 1")),
        "{check:#?}"
    );
    assert!(
        check.iter().any(|l| l.starts_with("failed   fleet ")),
        "the handshake is tried and fails: {check:#?}"
    );
    assert!(
        check.iter().any(|l| l.starts_with("ok       fleet-key")),
        "{check:#?}"
    );

    assert_eq!(logged_failures(&agent).await, 1, "{}", agent.log());

    // Re-issued as v3 at the same path: the box picks it up on its next retry, no restart.
    issue(d, "box1", "ca", Some("client.ext"));
    agent
        .wait_state("the fleet link to come up", LONG, |s| {
            s["fleet"]["state"] == "CONNECTED"
        })
        .await;
    let s = agent.state().await;
    assert_eq!(s["health"]["ok"], true, "{s:#}");
    let check = fleet_check(&agent);
    assert!(check.iter().all(|l| l.starts_with("ok ")), "{check:#?}");
    assert!(agent.log().contains("fleet: connected to the broker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_ca_is_named_in_status_and_check() {
    let broker = tls_broker();
    let d = broker.dir.path();
    let agent = fleet_agent(&format!(
        "broker = \"mqtts://127.0.0.1:{}\"\n[fleet.tls]\nca = \"{d}/other-ca.pem\"\ncert = \"{d}/operator.pem\"\nkey = \"{d}/operator.key\"\n",
        broker.port,
        d = d.display()
    ));
    let fleet = wait_refused(&agent).await;
    let error = fleet["lastError"].as_str().unwrap();
    assert!(
        error.contains("broker's certificate") && error.contains("other-ca.pem"),
        "{error}"
    );
    let (_, status) = roombox(&["status", "--socket"], &agent.socket);
    assert!(status.contains("not signed by the CA"), "{status}");
    let check = fleet_check(&agent);
    assert!(
        check
            .iter()
            .any(|l| l.starts_with("failed   fleet ") && l.contains("broker's certificate")),
        "{check:#?}"
    );
    assert_eq!(logged_failures(&agent).await, 1, "{}", agent.log());
    drop(agent);

    // The other way round: the box's certificate comes from a CA the broker does not trust.
    issue(d, "stranger", "other-ca", Some("client.ext"));
    let agent = fleet_agent(&format!(
        "broker = \"mqtts://127.0.0.1:{}\"\n[fleet.tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/stranger.pem\"\nkey = \"{d}/stranger.key\"\n",
        broker.port,
        d = d.display()
    ));
    let fleet = wait_refused(&agent).await;
    let error = fleet["lastError"].as_str().unwrap();
    assert!(
        error.contains("refused this box's certificate") && error.contains("some-other-ca"),
        "{error}"
    );
    let check = fleet_check(&agent);
    assert!(
        check
            .iter()
            .any(|l| l.starts_with("warning  fleet-cert") && l.contains("some-other-ca")),
        "{check:#?}"
    );
    assert!(
        check
            .iter()
            .any(|l| l.starts_with("failed   fleet ")
                && l.contains("refused this box's certificate")),
        "{check:#?}"
    );
    assert_eq!(logged_failures(&agent).await, 1, "{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_named_in_status_and_check() {
    let broker = Mosquitto::start_with(|dir, port| {
        let out = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(dir.join("passwd"))
            .args(["box1", "right-password"])
            .output()
            .expect("mosquitto_passwd is installed with mosquitto");
        assert!(out.status.success());
        std::fs::write(dir.join("box1.password"), "wrong-password\n").unwrap();
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
            dir.join("passwd").display()
        )
    });
    let agent = fleet_agent(&format!(
        "broker = \"{}\"\n[fleet.auth]\nusername = \"box1\"\npassword_file = \"{}\"\n",
        broker.url(),
        broker.dir.path().join("box1.password").display()
    ));
    let fleet = wait_refused(&agent).await;
    let error = fleet["lastError"].as_str().unwrap();
    assert!(
        error.contains("refused the login of user `box1`") && error.contains("password"),
        "{error}"
    );
    assert!(fleet["fix"].as_str().unwrap().contains("box1.password"));
    let (_, status) = roombox(&["status", "--socket"], &agent.socket);
    assert!(status.contains("refused the login"), "{status}");
    let check = fleet_check(&agent);
    assert!(
        check
            .iter()
            .any(|l| l.starts_with("failed   fleet ") && l.contains("refused the login")),
        "{check:#?}"
    );
    assert_eq!(logged_failures(&agent).await, 1, "{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_config_that_cuts_the_box_off_its_broker_rolls_back_and_still_replies() {
    let broker = Mosquitto::start();
    let agent = fleet_agent(&format!(
        "broker = \"{}\"\nset_config_timeout = \"3s\"\n",
        broker.url()
    ));
    let mut op = operator(&broker.url()).await;
    wait_online(&mut op, "test-box").await;
    let dead = support::mosquitto::free_port();
    let toml = format!("[fleet]\nbroker = \"mqtt://127.0.0.1:{dead}\"\n");
    let payload = serde_json::json!({ "toml": toml }).to_string();
    let r = op
        .request(
            &To::Device("test-box".into()),
            "set-config",
            payload.as_bytes(),
            None,
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "the reply survives the reconnections");
    let line = &r[0].1;
    assert!(!line.ok);
    let message = &line.error.as_ref().unwrap().message;
    assert!(
        message.contains("rolled back") && message.contains(&format!("127.0.0.1:{dead}")),
        "{message}"
    );
    let s = agent.state().await;
    assert_eq!(s["fleet"]["state"], "CONNECTED", "{s:#}");
    assert_eq!(s["fleet"]["broker"], broker.url().as_str());
    assert!(!agent.dir.path().join("config.d/90-fleet.toml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brokers_version_1_certificate_is_named_as_the_brokers() {
    let broker = Mosquitto::start_with(|dir, port| {
        make_pki(dir, &["box1"]);
        // The broker's certificate re-issued the plain way: version 1, no subjectAltName.
        issue(dir, "server", "ca", None);
        format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\n",
            d = dir.display()
        )
    });
    let d = broker.dir.path();
    let agent = fleet_agent(&format!(
        "broker = \"mqtts://127.0.0.1:{}\"\n[fleet.tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/box1.pem\"\nkey = \"{d}/box1.key\"\n",
        broker.port,
        d = d.display()
    ));
    let fleet = wait_refused(&agent).await;
    let error = fleet["lastError"].as_str().unwrap();
    assert!(
        error.contains("broker's certificate") && error.contains("version 1"),
        "{error}"
    );
    let fix = fleet["fix"].as_str().unwrap();
    assert!(
        fix.contains("-extfile") && fix.contains("subjectAltName=IP:127.0.0.1"),
        "{fix}"
    );
    let check = fleet_check(&agent);
    assert!(
        check.iter().any(|l| l.starts_with("ok       fleet-cert")),
        "the box's own certificate is fine: {check:#?}"
    );
    assert!(
        check
            .iter()
            .any(|l| l.starts_with("failed   fleet ") && l.contains("version 1")),
        "{check:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_whose_certificate_is_not_there_yet_starts_says_so_and_connects_once_it_is() {
    let broker = tls_broker();
    let d = broker.dir.path();
    let late = tempfile::tempdir().unwrap();
    let l = late.path();
    let agent = fleet_agent(&format!(
        "broker = \"mqtts://127.0.0.1:{}\"\n[fleet.tls]\nca = \"{}/ca.pem\"\ncert = \"{}/box.pem\"\nkey = \"{}/box.key\"\n",
        broker.port,
        d.display(),
        l.display(),
        l.display()
    ));
    let fleet = wait_refused(&agent).await;
    let error = fleet["lastError"].as_str().unwrap();
    assert!(
        error.contains("cannot read") && error.contains("box.pem"),
        "{error}"
    );
    // The installer provisions the files later; the box picks them up on its next try.
    std::fs::copy(d.join("operator.pem"), l.join("box.pem")).unwrap();
    std::fs::copy(d.join("operator.key"), l.join("box.key")).unwrap();
    agent
        .wait_state("the fleet link to come up", LONG, |s| {
            s["fleet"]["state"] == "CONNECTED"
        })
        .await;
    assert_eq!(logged_failures(&agent).await, 1, "{}", agent.log());
}

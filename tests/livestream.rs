//! RTMP simulcast against a real nginx-rtmp on loopback: what it records, outputs that fail
//! alone, an ingest that restarts, bad input, and a stream key that never leaks.

mod support;

use roombox::command::Command;
use roombox::event::Event;
use roombox::model::ServiceState;
use std::path::Path;
use std::time::{Duration, Instant};
use support::agent::{wait_event, AgentProcess, SMALL_MEDIA};
use support::mosquitto::{free_port, Mosquitto};
use support::nginx::NginxRtmp;

const KEY: &str = "s3cret-Key-4242";

fn config(extra: &str) -> String {
    format!("{SMALL_MEDIA}\n[livestream.reconnect]\ninitial = \"200ms\"\nmax = \"2s\"\n{extra}")
}

fn start_cmd(outputs: serde_json::Value) -> Command {
    Command::from_parts(
        "start-livestream",
        serde_json::json!({ "outputs": outputs })
            .to_string()
            .as_bytes(),
    )
    .expect("a valid command")
}

fn output(name: &str, url: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "url": url, "streamKey": KEY})
}

/// Every event seen, and which of them a wait has already taken.
#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    taken: Vec<bool>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.events.fmt(f)
    }
}

fn output_state<'a>(ev: &'a Event, name: &str, state: ServiceState) -> Option<&'a Option<String>> {
    match ev {
        Event::LivestreamStateChanged {
            state: s,
            output: Some(o),
            reason,
            ..
        } if o == name && *s == state => Some(reason),
        _ => None,
    }
}

/// Waits for a livestream-state-changed of `output` in `state` not taken by an earlier wait
/// (it may have come already, while waiting for another); returns its reason.
async fn wait_output(
    events: &mut roombox::api::EventStream,
    seen: &mut Seen,
    name: &str,
    state: ServiceState,
    timeout: Duration,
) -> Option<String> {
    for (i, ev) in seen.events.iter().enumerate() {
        if !seen.taken[i] {
            if let Some(reason) = output_state(ev, name, state) {
                seen.taken[i] = true;
                return Some(reason.clone().unwrap_or_default());
            }
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = wait_event(events, left, |_| true).await?;
        let found = output_state(&ev, name, state).map(|r| r.clone().unwrap_or_default());
        seen.events.push(ev);
        seen.taken.push(found.is_some());
        if found.is_some() {
            return found;
        }
    }
}

/// What ffprobe says of a file: its codec names, and the time its video packets span (FLV
/// metadata carries no useful duration for a live publish, so the packets are read).
fn ffprobe(path: &Path) -> (Vec<String>, Duration) {
    let run = |args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args(["-of", "json"])
            .arg(path)
            .output()
            .expect("run ffprobe");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "ffprobe failed on {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let v = run(&["-show_entries", "stream=codec_name"]);
    let codecs = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let p = run(&["-select_streams", "v", "-show_entries", "packet=pts_time"]);
    let times: Vec<f64> = p["packets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["pts_time"].as_str().and_then(|t| t.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    let span = match (
        times.iter().cloned().reduce(f64::min),
        times.iter().cloned().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => hi - lo,
        _ => 0.0,
    };
    (codecs, Duration::from_secs_f64(span.max(0.0)))
}

/// The x264enc elements that have encoded in the agent so far, by name (`GST_DEBUG=x264enc:4`
/// logs `gstx264enc.c:…:<name>` lines when an encoder opens).
fn encoders_created(agent: &AgentProcess) -> std::collections::BTreeSet<String> {
    agent
        .log()
        .lines()
        .filter(|l| l.contains("gstx264enc.c"))
        .filter_map(|l| l.split(":<").nth(1))
        .filter_map(|rest| rest.split('>').next())
        .map(str::to_string)
        .collect()
}

fn assert_no_key(what: &str, text: &str) {
    assert!(
        !text.contains(KEY),
        "the stream key leaked into {what}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_reaches_nginx_as_h264_and_aac_from_the_one_encode() {
    let nginx = NginxRtmp::start();
    let broker = Mosquitto::start();
    let mqtt_log = broker.dir.path().join("all-messages.txt");
    let mut sub = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-v",
            "-t",
            "#",
        ])
        .stdout(std::fs::File::create(&mqtt_log).expect("log"))
        .spawn()
        .expect("mosquitto_sub");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = AgentProcess::start_with_env(
        dir,
        &config(&format!(
            "[fleet]\nbroker = \"{}\"\ntelemetry_interval = \"1s\"\n",
            broker.url()
        )),
        &[("GST_DEBUG", "x264enc:4"), ("GST_DEBUG_NO_COLOR", "1")],
    );
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let encoders_before = encoders_created(&agent);
    assert!(
        encoders_before.contains("venc"),
        "the capture's encoder: {encoders_before:?}; log:\n{}",
        agent.log()
    );

    let mut events = agent.events().await;
    let mut seen = Seen::default();
    let reply = agent
        .call(start_cmd(serde_json::json!([output("main", &nginx.url())])))
        .await;
    assert!(reply.ok, "{reply:?}");
    wait_output(
        &mut events,
        &mut seen,
        "main",
        ServiceState::Started,
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|| panic!("never STARTED; log:\n{}", agent.log()));
    let started = Instant::now();
    let state = agent.state().await;
    assert_eq!(state["livestream"]["state"], "STARTED");
    assert_eq!(
        state["livestream"]["outputs"]["main"]["url"],
        format!("{}/****", nginx.url())
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
        .args(["status", "--config"])
        .arg(&agent.config)
        .output()
        .expect("roombox status");
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.contains("main"),
        "status lists the output:\n{status}"
    );
    assert_no_key("roombox status", &status);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(agent.call(Command::StopLivestream { name: None }).await.ok);
    wait_output(
        &mut events,
        &mut seen,
        "main",
        ServiceState::Stopped,
        Duration::from_secs(10),
    )
    .await
    .expect("STOPPED");
    let streamed = started.elapsed();

    assert_eq!(
        encoders_created(&agent),
        encoders_before,
        "RTMP must take the one encode, not start a second encoder"
    );
    let flvs = nginx.recordings();
    assert_eq!(flvs.len(), 1, "one publish recorded: {flvs:?}");
    // nginx names a recording after the stream: the key reached the ingest, and only there.
    let file = flvs[0]
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    assert!(file.starts_with(KEY), "{file}");
    let (codecs, duration) = ffprobe(&flvs[0]);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(codecs.contains(&"aac".to_string()), "{codecs:?}");
    let (lo, hi) = (streamed.mul_f64(0.9), streamed.mul_f64(1.1));
    assert!(
        duration >= lo && duration <= hi,
        "recorded {duration:?}, streamed {streamed:?}"
    );
    // The key appears nowhere a person or the fleet can see.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = sub.kill();
    let _ = sub.wait();
    let mqtt = std::fs::read_to_string(&mqtt_log).unwrap_or_default();
    assert!(
        mqtt.contains("livestream"),
        "the fleet saw the livestream:\n{mqtt}"
    );
    assert_no_key("MQTT", &mqtt);
    assert_no_key("the log", &agent.log());
    assert_no_key("the events", &format!("{seen:?}"));
    assert_no_key("the state", &agent.state().await.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_output_fails_and_retries_while_the_good_one_streams() {
    let nginx = NginxRtmp::start();
    let dead = format!("rtmp://127.0.0.1:{}/live", free_port());
    // An ingest that accepts the connection and never answers: a stalled consumer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stalled = format!("rtmp://{}/live", silent.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten().take(8) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let agent = AgentProcess::start(&config(""));
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let mut events = agent.events().await;
    let mut seen = Seen::default();
    let reply = agent
        .call(start_cmd(serde_json::json!([
            output("good", &nginx.url()),
            output("dead", &dead),
            output("stalled", &stalled)
        ])))
        .await;
    assert!(reply.ok, "{reply:?}");
    let reason = wait_output(
        &mut events,
        &mut seen,
        "dead",
        ServiceState::Failed,
        Duration::from_secs(20),
    )
    .await
    .expect("the dead output reports FAILED");
    assert!(reason.contains("retrying"), "{reason}");
    assert_no_key("the reason", &reason);
    wait_output(
        &mut events,
        &mut seen,
        "good",
        ServiceState::Started,
        Duration::from_secs(20),
    )
    .await
    .expect("the good output STARTED");
    // It keeps retrying, and the good one is never disturbed.
    let mut fails = 0;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        if let Some(ev) = wait_event(&mut events, Duration::from_millis(500), |_| true).await {
            seen.events.push(ev.clone());
            seen.taken.push(false);
            if let Event::LivestreamStateChanged {
                output: Some(o),
                state,
                ..
            } = &ev
            {
                if o == "dead" && *state == ServiceState::Failed {
                    fails += 1;
                }
                assert!(o != "good", "the good output changed: {ev:?}");
            }
        }
    }
    assert!(fails >= 2, "the dead output retried {fails} times in 6 s");
    // The stalled one gives up on its silent ingest and retries too; nothing else notices.
    let reason = wait_output(
        &mut events,
        &mut seen,
        "stalled",
        ServiceState::Failed,
        Duration::from_secs(20),
    )
    .await
    .expect("the stalled output reports FAILED");
    assert!(reason.contains("retrying"), "{reason}");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let flv = nginx.recordings().pop().expect("a recording");
    let before = size(&flv);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(size(&flv) > before, "the good output keeps streaming");
    let state = agent.state().await;
    assert_eq!(state["livestream"]["outputs"]["good"]["state"], "STARTED");
    assert_eq!(state["livestream"]["outputs"]["dead"]["state"], "FAILED");
    assert!(
        state["livestream"]["outputs"]["dead"]["retries"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
    assert!(!state["health"]["ok"].as_bool().unwrap_or(true));
    assert_no_key("the log", &agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_after_the_ingest_restarts() {
    let mut nginx = NginxRtmp::start();
    let agent = AgentProcess::start(&config(""));
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let mut events = agent.events().await;
    let mut seen = Seen::default();
    assert!(
        agent
            .call(start_cmd(serde_json::json!([output("main", &nginx.url())])))
            .await
            .ok
    );
    wait_output(
        &mut events,
        &mut seen,
        "main",
        ServiceState::Started,
        Duration::from_secs(20),
    )
    .await
    .expect("STARTED");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    nginx.restart();
    wait_output(
        &mut events,
        &mut seen,
        "main",
        ServiceState::Failed,
        Duration::from_secs(15),
    )
    .await
    .expect("the lost ingest is reported");
    wait_output(
        &mut events,
        &mut seen,
        "main",
        ServiceState::Started,
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|| panic!("never resumed; log:\n{}", agent.log()));
    let resumed = killed.elapsed();
    println!(
        "stream resumed {} ms after the ingest restarted",
        resumed.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flvs = nginx.recordings();
    assert!(flvs.len() >= 2, "a second publish was recorded: {flvs:?}");
    let (codecs, _) = ffprobe(flvs.last().expect("flv"));
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_livestream_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-key");
    let agent = AgentProcess::start_in(
        dir,
        &config(&format!(
            "[[livestream.outputs]]\nname = \"yt\"\nurl = \"rtmp://127.0.0.1:1935/live\"\nstream_key_file = \"{}\"\n",
            missing.display()
        )),
    );
    let before = agent.state().await["livestream"].clone();
    let cases: Vec<(Command, &str)> = vec![
        (
            start_cmd(serde_json::json!([])),
            "cannot read stream_key_file",
        ),
        (
            start_cmd(serde_json::json!([output(
                "x",
                "rtmp://no-such-host.invalid/live"
            )])),
            "cannot resolve host",
        ),
    ];
    for (cmd, expect) in cases {
        let r = agent.call(cmd).await;
        assert!(!r.ok, "{r:?}");
        let msg = r.error.map(|e| e.message).unwrap_or_default();
        assert!(msg.contains(expect), "{msg}");
        assert_no_key("an error", &msg);
    }
    for (payload, expect) in [
        (
            serde_json::json!({"outputs": [{"url": "http://h/live/abc", "streamKey": KEY}]}),
            "not an rtmp",
        ),
        (
            serde_json::json!({"outputs": [output("a", "rtmp://127.0.0.1/live"), output("a", "rtmp://127.0.0.1/live")]}),
            "used twice",
        ),
    ] {
        let e =
            Command::from_parts("start-livestream", payload.to_string().as_bytes()).unwrap_err();
        assert!(e.message.contains(expect), "{}", e.message);
    }
    assert_eq!(agent.state().await["livestream"], before, "nothing changed");
    assert!(!agent.call(Command::StopLivestream { name: None }).await.ok);
}

/// The fallback, end to end in the test's own network namespace: Janus dies, RTMP starts on its
/// own within `after` plus 3 s; Janus returns, the box rejoins and the fallback stops; the local
/// recording runs across both switches without a gap.
#[test]
fn fallback_streams_while_the_room_is_gone_and_the_recording_never_stops() {
    support::netns::isolated_async(
        "fallback_streams_while_the_room_is_gone_and_the_recording_never_stops",
        fallback_scenario,
    );
}

async fn fallback_scenario() {
    use roombox::config::{FallbackConfig, FallbackReturn, OutputConfig};
    use roombox::media::rtmp::StreamKey;
    use roombox::model::MeetingState;
    use roombox::room::janus::server::{JanusProcess, ServerConfig};
    use support::inproc::InProcBox;
    use support::poll_until;

    const AFTER: Duration = Duration::from_secs(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let nginx = NginxRtmp::start();
    let sc = ServerConfig::new("127.0.0.1", tmp.path().join("rec")).expect("port");
    let url = sc.url();
    let mut janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut c = support::inproc::room_config(&url, tmp.path(), "4242", (320, 180));
    c.recording.autostart = true;
    c.recording.segment = Duration::from_secs(2);
    c.recording.fragment = Duration::from_millis(500);
    c.recording.min_free_mb = 0;
    c.recording.stop_free_mb = 0;
    c.livestream.outputs = vec![OutputConfig {
        name: "backup".into(),
        url: nginx.url(),
        stream_key: StreamKey::new(KEY),
        stream_key_file: Default::default(),
    }];
    c.livestream.reconnect.initial = Duration::from_millis(200);
    c.livestream.reconnect.max = Duration::from_secs(2);
    c.livestream.fallback = FallbackConfig {
        output: "backup".into(),
        after: AFTER,
        on_return: FallbackReturn::Stop,
    };
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let b = InProcBox::start(&c);
    assert!(
        poll_until(Duration::from_secs(30), || b.state().recording.state
            == ServiceState::Started)
        .await,
        "the recording started"
    );
    let rec_started = Instant::now();
    b.join().await;

    // The room goes away: the box streams to the fallback on its own.
    let lost = Instant::now();
    janus.kill();
    let backup_started = |b: &InProcBox| {
        b.state()
            .livestream
            .outputs
            .get("backup")
            .is_some_and(|o| o.state == ServiceState::Started)
    };
    assert!(
        poll_until(AFTER + Duration::from_secs(10), || backup_started(&b)).await,
        "the fallback never streamed: {:?}",
        b.state().livestream
    );
    let switch = lost.elapsed();
    println!(
        "fallback publishing {} ms after the room was lost (after = {} ms)",
        switch.as_millis(),
        AFTER.as_millis()
    );
    assert!(
        switch <= AFTER + Duration::from_secs(3),
        "the fallback took {switch:?}"
    );
    assert!(b.state().livestream.fallback.active);
    let reason = b.state().livestream.fallback.reason.unwrap_or_default();
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(b.saw(|e| matches!(e,
        Event::LivestreamStateChanged { output: Some(o), state: ServiceState::Starting, reason: Some(r), .. }
            if o == "backup" && r.contains("unreachable"))));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The room is back: the box rejoins and the fallback stops, saying why.
    janus.restart(Duration::from_secs(20)).expect("janus again");
    assert!(
        poll_until(Duration::from_secs(40), || b.state().meeting_state
            == MeetingState::Connected)
        .await,
        "the box did not rejoin"
    );
    assert!(
        poll_until(Duration::from_secs(15), || !b
            .state()
            .livestream
            .outputs
            .contains_key("backup"))
        .await,
        "the fallback did not stop: {:?}",
        b.state().livestream
    );
    assert!(b.saw(|e| matches!(e,
        Event::LivestreamStateChanged { output: Some(o), state: ServiceState::Stopping, reason: Some(r), .. }
            if o == "backup" && r == "the room is back")));
    let flv = nginx
        .recordings()
        .pop()
        .expect("the fallback reached the ingest");
    let (codecs, span) = ffprobe(&flv);
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(
        span >= Duration::from_secs(2),
        "the fallback streamed {span:?}"
    );

    // The local recording ran across both switches: one start, and segments that add up to
    // the time it ran.
    b.handle
        .send(Command::StopRecording {
            target: roombox::model::RecordingTarget::Local,
        })
        .await
        .expect("stop recording");
    assert!(
        poll_until(Duration::from_secs(20), || b.state().recording.state
            == ServiceState::Stopped)
        .await
    );
    let ran = rec_started.elapsed();
    let starts = b
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::RecordingStateChanged {
                    state: ServiceState::Started,
                    ..
                }
            )
        })
        .count();
    assert_eq!(starts, 1, "the recording restarted");
    let dir = c.recording_dir();
    let total: Duration = support::agent::files(&dir)
        .iter()
        .map(|p| {
            support::agent::discover(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .duration
        })
        .sum();
    println!("recorded {total:?} in segments over {ran:?}");
    assert!(
        total >= ran.mul_f64(0.9) && total <= ran.mul_f64(1.05),
        "segments add up to {total:?} over {ran:?}: a gap"
    );
}

/// GET of a URL on loopback: the status code and the body.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let r = support::http::get_url(url).await;
    (r.code, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_is_served_over_http_and_plays_in_ffprobe_and_hlsdemux() {
    let agent = AgentProcess::start(&format!(
        "{SMALL_MEDIA}\n[hls]\nsegment = \"1s\"\nplaylist_length = 4\n"
    ));
    let url = support::http::start_hls(&agent).await;
    let mut events = agent.events().await;
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/hls/index.m3u8"),
        "{url}"
    );
    assert_eq!(agent.state().await["hls"]["playbackUrl"], url.as_str());
    // Let a few segments exist.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, body) = http_get(&url).await;
    assert_eq!(code, 200);
    let playlist = String::from_utf8_lossy(&body).to_string();
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:1"), "{playlist}");
    let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= 2, "{playlist}");
    let base = url.trim_end_matches("index.m3u8");
    let (code, ts) = http_get(&format!("{base}{}", segments[0])).await;
    assert_eq!(code, 200);
    assert_eq!(ts.first(), Some(&0x47), "an MPEG-TS segment");

    // ffprobe reads it as H.264 and AAC.
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .expect("ffprobe");
    let codecs = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs}"
    );
    // GStreamer's hlsdemux plays it: count the frames it decodes in 10 s.
    let out = std::process::Command::new("timeout")
        .args(["10", "gst-launch-1.0", "-v", "souphttpsrc"])
        .arg(format!("location={url}"))
        .args([
            "!",
            "hlsdemux",
            "!",
            "tsdemux",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
        ])
        .args(["fakesink", "name=out", "silent=false"])
        .output()
        .expect("gst-launch");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("out: last-message = chain"))
        .count();
    assert!(frames >= 60, "hlsdemux decoded {frames} frames in 10 s");
    // Bad and stale requests: 404, never a hang.
    for path in [
        "segment99999.ts",
        "..%2Froombox.toml",
        "index.m3u8x",
        "segment.ts",
    ] {
        let (code, _) = http_get(&format!("{base}{path}")).await;
        assert_eq!(code, 404, "{path}");
    }
    // Many players at once.
    let gets: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { http_get(&url).await.0 }
            })
        })
        .collect();
    for g in gets {
        assert_eq!(g.await.expect("task"), 200);
    }
    // Old segments go.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (code, _) = http_get(&format!("{base}{}", segments[0])).await;
    assert_eq!(code, 404, "an old segment is removed");

    assert!(agent.call(Command::StopHls).await.ok);
    wait_event(&mut events, Duration::from_secs(10), |e| {
        matches!(
            e,
            Event::HlsStateChanged {
                state: ServiceState::Stopped,
                ..
            }
        )
    })
    .await
    .expect("HLS stopped");
}

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
    support::netns::isolated_async(crate::test_name!(), fallback_scenario);
}

/// A Janus, an nginx-rtmp and the config of a box in room 4242 with `[livestream.fallback]`
/// `after` to an nginx output named `backup`, for the fallback test and its bench. The Janus
/// and nginx are the caller's to keep alive.
fn fallback_rig(
    tmp: &Path,
    after: Duration,
) -> (
    support::janus::JanusProcess,
    NginxRtmp,
    roombox::config::Config,
) {
    use roombox::config::{FallbackConfig, FallbackReturn, OutputConfig, StreamKey};
    use support::janus::{JanusProcess, ServerConfig};
    let nginx = NginxRtmp::start();
    let sc = ServerConfig::new("127.0.0.1", tmp.join("rec")).expect("port");
    let url = sc.url();
    let janus =
        JanusProcess::start(sc, &tmp.join("janus"), Duration::from_secs(20)).expect("janus");
    let mut c = support::inproc::room_config(&url, tmp, "4242", (320, 180));
    c.livestream.outputs = vec![OutputConfig {
        name: "backup".into(),
        url: nginx.url(),
        stream_key: StreamKey::new(KEY),
        stream_key_file: Default::default(),
        source: Default::default(),
    }];
    c.livestream.reconnect.initial = Duration::from_millis(200);
    c.livestream.reconnect.max = Duration::from_secs(2);
    c.livestream.fallback = FallbackConfig {
        output: "backup".into(),
        after,
        on_return: FallbackReturn::Stop,
    };
    (janus, nginx, c)
}

async fn fallback_scenario() {
    use roombox::model::MeetingState;
    use support::inproc::InProcBox;
    use support::poll_until;

    const AFTER: Duration = Duration::from_secs(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut janus, nginx, mut c) = fallback_rig(tmp.path(), AFTER);
    c.recording.autostart = true;
    c.recording.segment = Duration::from_secs(2);
    c.recording.fragment = Duration::from_millis(500);
    c.recording.min_free_mb = 0;
    c.recording.stop_free_mb = 0;
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

/// The part a playlist's `EXT-X-PRELOAD-HINT` names.
fn preload_hint(playlist: &str) -> String {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no preload hint in {playlist}"))
        .to_string()
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
    // Low-latency HLS: CMAF parts of 200 ms, blocking reload, a preload hint.
    assert!(
        playlist.contains("#EXT-X-PART-INF:PART-TARGET=0.200")
            && playlist.contains("CAN-BLOCK-RELOAD=YES")
            && playlist.contains("#EXT-X-MAP:URI=\"init.mp4\"")
            && playlist.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part"),
        "{playlist}"
    );
    let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert!(segments.len() >= 2, "{playlist}");
    let base = url.trim_end_matches("index.m3u8");
    let (code, init) = http_get(&format!("{base}init.mp4")).await;
    assert_eq!(code, 200);
    assert_eq!(init.get(4..8), Some(&b"ftyp"[..]), "an MP4 init segment");
    let (code, seg) = http_get(&format!("{base}{}", segments[0])).await;
    assert_eq!(code, 200);
    assert_eq!(seg.get(4..8), Some(&b"moof"[..]), "a CMAF segment");
    // Every part listed is there, and the parts of a segment are the segment.
    let last = segments[segments.len() - 1];
    let msn: u64 = last["seg".len()..last.len() - ".m4s".len()]
        .parse()
        .expect("msn");
    let mut joined = Vec::new();
    for k in 0.. {
        let name = format!("part{msn}.{k}.m4s");
        if !playlist.contains(&format!("URI=\"{name}\"")) {
            break;
        }
        let (code, part) = http_get(&format!("{base}{name}")).await;
        assert_eq!(code, 200, "{name}");
        joined.extend(part);
    }
    let (_, whole) = http_get(&format!("{base}{last}")).await;
    assert!(
        !joined.is_empty() && joined == whole,
        "segment {msn} is not its parts"
    );

    // Blocking reload: a request for the next part returns once the playlist holds it, about
    // a part later; the hinted part itself is held until it is written.
    let hint = preload_hint(&playlist);
    let (m, k) = hint["part".len()..hint.len() - ".m4s".len()]
        .split_once('.')
        .expect("part name");
    // Held at most three target durations; past that the answer would be a 503.
    let (code, body) = http_get(&format!("{url}?_HLS_msn={m}&_HLS_part={k}")).await;
    assert_eq!(code, 200);
    let newer = String::from_utf8_lossy(&body).to_string();
    assert!(
        newer.contains(&format!("URI=\"{hint}\"")),
        "the blocking reload returned without {hint}: {newer}"
    );
    let next_hint = preload_hint(&newer);
    let (code, part) = http_get(&format!("{base}{next_hint}")).await;
    assert_eq!(code, 200, "the hinted part {next_hint}");
    assert_eq!(part.get(4..8), Some(&b"moof"[..]));

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
    // GStreamer's hlsdemux plays it, CMAF through qtdemux: count the frames it decodes in 10 s.
    let out = std::process::Command::new("timeout")
        .args(["10", "gst-launch-1.0", "-v", "souphttpsrc"])
        .arg(format!("location={url}"))
        .args([
            "!",
            "hlsdemux",
            "!",
            "qtdemux",
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
    assert!(
        frames >= 60,
        "hlsdemux decoded {frames} frames in 10 s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bad, stale and future requests: an error at once, never a hang.
    for (path, want) in [
        ("seg99999.m4s", 404),
        ("part99999.0.m4s", 404),
        ("part0.999999.m4s", 404),
        ("..%2Froombox.toml", 404),
        ("index.m3u8x", 404),
        ("segment00001.ts", 404),
        ("index.m3u8?_HLS_msn=99999", 400),
        ("index.m3u8?_HLS_msn=x", 400),
        ("index.m3u8?_HLS_part=1", 400),
        ("index.m3u8?_HLS_msn=0&_HLS_part=-1", 400),
    ] {
        let started = std::time::Instant::now();
        let (code, _) = http_get(&format!("{base}{path}")).await;
        assert_eq!(code, want, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} was held"
        );
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

// ---- Benchmarks (issue 9): ignored, run by `benches/outputs.sh` from `scripts/bench.sh`. ----

/// Video settings of the output benches: 720p30 at the default bitrate, as `bench_media` uses, and
/// wide enough (≥ 1024) for the capture-time stamp.
const BENCH_MEDIA: &str = r#"
[media.video]
width = 1280
height = 720
fps = 30
bitrate_kbps = 2500
keyframe_interval = "2s"
"#;

/// Seconds of each CPU window (`ROOMBOX_BENCH_SECONDS`, default 10).
fn bench_seconds() -> u64 {
    std::env::var("ROOMBOX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let p = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the name: state is 0, utime 11, stime 12.
    (p(11) + p(12)) / ticks
}

/// CPU of `pid` over `secs` of wall time, in % of one core.
async fn cpu_percent(pid: u32, secs: u64) -> f64 {
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    100.0 * (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64()
}

fn median_f(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    // An even count (two rounds) takes the mean of the middle two, not the larger.
    if n % 2 == 0 {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

/// The fan-out steps measured (the room step is not: see the section's text).
const FANOUT_STEPS: [(u8, &str); 4] = [
    (1, "capture and encode alone"),
    (2, "+ recording (MP4 segments)"),
    (4, "+ two RTMP outputs (nginx-rtmp, two stream keys)"),
    (5, "+ HLS (1 s segments of 200 ms CMAF parts)"),
];

/// `gst-launch-1.0` running the tee graph equivalent to the agent at `step`: the same sources,
/// x264enc settings (`src/media/encoder.rs`), the Opus encode the agent keeps ready for rooms, and
/// per output the elements the agent's consumer builds (parsers, flvmux + rtmp2sink, splitmuxsink
/// with mp4mux, hlssink2).
fn fanout_baseline(step: u8, dir: &Path, rtmp: &str, keys: [&str; 2]) -> std::process::Child {
    let mut p = String::from(
        "videotestsrc is-live=true pattern=smpte ! videoconvert ! videoscale ! videorate drop-only=true \
         ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
         ! queue max-size-buffers=3 max-size-bytes=0 max-size-time=0 ! videoconvert \
         ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=60 bitrate=2500 \
         ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! tee name=vt allow-not-linked=true \
         vt. ! queue ! fakesink sync=false async=false \
         audiotestsrc is-live=true freq=440 volume=0.5 ! audioconvert ! audioresample \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! volume ! tee name=raw \
         raw. ! queue ! audioconvert ! opusenc bitrate=64000 frame-size=20 ! fakesink sync=false async=false ",
    );
    if step >= 2 {
        p.push_str(
            "raw. ! queue ! audioconvert ! voaacenc bitrate=128000 ! aacparse ! tee name=at ",
        );
        p.push_str(&format!(
            "splitmuxsink name=s max-size-time=10000000000 send-keyframe-requests=true \
             muxer=\"mp4mux reserved-max-duration=70000000000 reserved-moov-update-period=1000000000\" \
             location={}/seg%05d.mp4 vt. ! queue ! h264parse ! s.video at. ! queue ! aacparse ! s.audio_0 ",
            dir.display()
        ));
    }
    if step >= 4 {
        for (i, key) in keys.iter().enumerate() {
            p.push_str(&format!(
                "flvmux name=f{i} streamable=true latency=100000000 \
                 ! rtmp2sink location={rtmp}/{key} async-connect=false sync=false \
                 vt. ! queue ! h264parse ! f{i}.video at. ! queue ! aacparse ! f{i}.audio "
            ));
        }
    }
    if step >= 5 {
        p.push_str(&format!(
            "hlssink2 name=h target-duration=1 playlist-length=4 max-files=7 \
             send-keyframe-requests=true location={d}/segment%05d.ts playlist-location={d}/index.m3u8 \
             vt. ! queue ! h264parse ! h.video at. ! queue ! aacparse ! h.audio ",
            d = dir.display()
        ));
    }
    std::process::Command::new("sh")
        .args(["-c", &format!("exec gst-launch-1.0 -e {p}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (gstreamer1.0-tools)")
}

/// The agent at `step`, with its outputs running; returns once every output is STARTED.
async fn fanout_agent(step: u8, rtmp: &str, keys: [&str; 2]) -> AgentProcess {
    let mut body = BENCH_MEDIA.to_string();
    if step >= 2 {
        body.push_str(
            "[recording]\nautostart = true\nformat = \"mp4\"\nsegment = \"10s\"\nfragment = \"1s\"\n\
             min_free_mb = 0\nstop_free_mb = 0\n",
        );
    }
    body.push_str("[hls]\nsegment = \"1s\"\nplaylist_length = 4\n");
    let agent = AgentProcess::start_with_env(
        tempfile::tempdir().expect("tempdir"),
        &body,
        &[("RUST_LOG", "warn")],
    );
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    if step >= 4 {
        let outs = serde_json::json!([
            {"name": "a", "url": rtmp, "streamKey": keys[0]},
            {"name": "b", "url": rtmp, "streamKey": keys[1]},
        ]);
        let r = agent.call(start_cmd(outs)).await;
        assert!(r.ok, "{r:?}");
    }
    if step >= 5 {
        assert!(agent.call(Command::StartHls).await.ok);
    }
    agent
        .wait_state("every output STARTED", Duration::from_secs(30), |s| {
            let out = |n: &str| s["livestream"]["outputs"][n]["state"] == "STARTED";
            (step < 2 || s["recording"]["state"] == "STARTED")
                && (step < 4 || (out("a") && out("b")))
                && (step < 5 || s["hls"]["state"] == "STARTED")
        })
        .await;
    agent
}

/// Fan-out cost: the agent's CPU at each step beside gst-launch's equivalent tee graph, alternating
/// in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: benches/outputs.sh"]
async fn bench_fanout_cpu() {
    let nginx = NginxRtmp::start();
    let secs = bench_seconds();
    let rounds: usize = std::env::var("ROOMBOX_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    const WARM: Duration = Duration::from_secs(4);
    // [step][round] → (baseline %, roombox %)
    let mut base: Vec<Vec<f64>> = vec![Vec::new(); FANOUT_STEPS.len()];
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); FANOUT_STEPS.len()];
    for round in 0..rounds {
        for (i, &(step, _)) in FANOUT_STEPS.iter().enumerate() {
            // Fresh stream keys each time: nginx-rtmp refuses a key whose last publisher it has
            // not yet dropped.
            let k = |who: &str, n: u8| format!("{who}-{round}-{step}-{n}");
            let dir = tempfile::tempdir().expect("tempdir");
            let (ka, kb) = (k("gst", 0), k("gst", 1));
            let mut g = fanout_baseline(step, dir.path(), &nginx.url(), [&ka, &kb]);
            tokio::time::sleep(WARM).await;
            let cpu = cpu_percent(g.id(), secs).await;
            assert!(
                g.try_wait().ok().flatten().is_none(),
                "gst-launch exited early at step {step}"
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(g.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = g.kill();
            let _ = g.wait();
            base[i].push(cpu);

            let (ka, kb) = (k("box", 0), k("box", 1));
            let agent = fanout_agent(step, &nginx.url(), [&ka, &kb]).await;
            tokio::time::sleep(WARM).await;
            let cpu = cpu_percent(agent.child.id(), secs).await;
            assert!(
                agent.state().await["media"]["state"] == "PLAYING",
                "the agent's capture stopped at step {step}"
            );
            if step >= 4 {
                let s = agent.state().await;
                for n in ["a", "b"] {
                    assert_eq!(
                        s["livestream"]["outputs"][n]["state"], "STARTED",
                        "output {n} at step {step}: {s:#}"
                    );
                }
            }
            drop(agent);
            ours[i].push(cpu);
        }
    }
    // Both publishers of the last step reached the ingest.
    let flvs = nginx.recordings();
    let published = |who: &str| {
        flvs.iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(who))
            })
            .count()
    };
    assert!(published("gst") >= 4 && published("box") >= 4, "{flvs:?}");

    println!("\n## Live outputs: fan-out cost (issue 9)\n");
    println!(
        "The agent (`roombox run`, release build, synthetic 1280x720@30 video at 2500 kb/s and a \
         test tone) with its outputs added step by step, each step a fresh process, beside \
         `gst-launch-1.0` running the equivalent tee graph (same sources and x264enc settings, the \
         Opus encode the agent keeps ready for rooms, voaacenc once an output needs AAC, \
         splitmuxsink + mp4mux, flvmux + rtmp2sink ×2, hlssink2 with 1 s MPEG-TS segments: the \
         closest graph GStreamer 1.22 has, as it has no CMAF muxer; the box writes CMAF parts \
         itself). RTMP goes to \
         nginx-rtmp on loopback (two stream keys, nginx recording both). Alternating baseline and \
         agent, {rounds} rounds; CPU is user+system time from /proc over {secs} s after a {} s \
         warm-up (100 % = one core). `cargo test --release --features test-util --test livestream \
         -- --ignored bench_fanout_cpu`.\n",
        WARM.as_secs()
    );
    println!("| step | gst-launch | roombox | ratio | added by this step (roombox) | added (gst-launch) |");
    println!("|---|---|---|---|---|---|");
    let mut prev: Option<(f64, f64)> = None;
    let mut worst_added = (0.0f64, "");
    for (i, &(step, what)) in FANOUT_STEPS.iter().enumerate() {
        let (b, o) = (median_f(&base[i]), median_f(&ours[i]));
        let (added, added_b) = match prev {
            Some((pb, po)) => (
                format!("{:+.1} points", o - po),
                format!("{:+.1} points", b - pb),
            ),
            None => ("–".into(), "–".into()),
        };
        if let Some((_, po)) = prev {
            // Two RTMP outputs are two outputs: the cost of each is half the step.
            let per = if step == 4 { (o - po) / 2.0 } else { o - po };
            if per > worst_added.0 {
                worst_added = (per, what);
            }
        }
        println!(
            "| {step}. {what} | {b:.1} % | {o:.1} % | {:.2} | {added} | {added_b} |",
            o / b
        );
        prev = Some((b, o));
    }
    let last = FANOUT_STEPS.len() - 1;
    let ratio = median_f(&ours[last]) / median_f(&base[last]);
    println!();
    println!(
        "Rounds (gst-launch / roombox, % of a core): {}.",
        FANOUT_STEPS
            .iter()
            .enumerate()
            .map(|(i, (s, _))| format!("step {s}: {:.1?} / {:.1?}", base[i], ours[i]))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!();
    println!(
        "- Everything on: **{ratio:.2}×** gst-launch; target ≤ 1.10×: **{}**.",
        if ratio <= 1.10 { "met" } else { "not met" }
    );
    println!(
        "- Largest cost of one added output (the RTMP step counted per output): **{:.1} % of a \
         core** ({}); target ≤ 3 %: **{}**. The recording step includes starting the AAC encoder, \
         which every AAC consumer then shares. Each step's added cost is a difference of two \
         medians on a machine shared with other builds: read it against the spread between \
         rounds above, and against the gst-launch column, what the same elements cost without \
         the agent.",
        worst_added.0,
        worst_added.1,
        if worst_added.0 <= 3.0 {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "- Step 3 (a room with one subscriber) was not measured: it needs Janus and a subscriber \
         in a network namespace, and the gst-launch side a webrtcbin graph with signalling, which \
         did not fit the time given to this bench. The room's own CPU is in the room section \
         (`bench_publish_cpu`)."
    );
}

/// Plays `launch` (a decoder chain ending in `fakesink name=out`) and collects, for each frame the
/// sink presents, the system clock now minus the capture-time stamp in its luma.
struct StampReader {
    pipeline: gstreamer::Pipeline,
    latencies: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
}

impl StampReader {
    fn start(launch: &str) -> StampReader {
        use gstreamer::prelude::*;
        gstreamer::init().expect("gst init");
        let pipeline = gstreamer::parse::launch(launch)
            .expect("reader pipeline")
            .downcast::<gstreamer::Pipeline>()
            .expect("a pipeline");
        // In playbin3, the sink is inside the bin given as its video-sink.
        let sink = pipeline
            .by_name("out")
            .or_else(|| {
                pipeline.find_property("video-sink")?;
                pipeline
                    .property::<Option<gstreamer::Element>>("video-sink")?
                    .downcast::<gstreamer::Bin>()
                    .ok()?
                    .by_name("out")
            })
            .expect("fakesink out");
        sink.set_property("signal-handoffs", true);
        let latencies: std::sync::Arc<std::sync::Mutex<Vec<u32>>> = Default::default();
        let l = latencies.clone();
        // handoff fires when the sink renders, after it waited for the frame's presentation
        // time: what a player would show, not just what it has decoded.
        sink.connect("handoff", false, move |v| {
            let now = gstreamer::SystemClock::obtain().time().mseconds() as u32;
            let buf = v.get(1).and_then(|x| x.get::<gstreamer::Buffer>().ok());
            let pad = v.get(2).and_then(|x| x.get::<gstreamer::Pad>().ok());
            if let (Some(buf), Some(pad)) = (buf, pad) {
                if let Some(t) = support::peer::read_stamp(&pad, &buf) {
                    let lat = now.wrapping_sub(t);
                    if lat < 60_000 {
                        if let Ok(mut l) = l.lock() {
                            l.push(lat);
                        }
                    }
                }
            }
            None
        });
        pipeline
            .set_state(gstreamer::State::Playing)
            .expect("reader PLAYING");
        StampReader {
            pipeline,
            latencies,
        }
    }

    fn count(&self) -> usize {
        self.latencies.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Waits for the first stamped frame, lets the start settle for `settle`, then collects over
    /// `secs`; returns the latencies sorted.
    async fn measure(&self, what: &str, settle: Duration, secs: u64) -> Vec<u32> {
        assert!(
            poll_until(Duration::from_secs(40), || self.count() > 0).await,
            "{what}: no stamped frame presented"
        );
        tokio::time::sleep(settle).await;
        let skip = self.count();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let mut v: Vec<u32> = self
            .latencies
            .lock()
            .map(|l| l[skip..].to_vec())
            .unwrap_or_default();
        assert!(v.len() > 30, "{what}: only {} stamped frames", v.len());
        v.sort_unstable();
        v
    }
}

impl Drop for StampReader {
    fn drop(&mut self) {
        use gstreamer::prelude::*;
        let _ = self.pipeline.set_state(gstreamer::State::Null);
    }
}

use support::poll_until;

fn pct(v: &[u32], p: f64) -> u32 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Latency from capture to a player, for RTMP (through nginx-rtmp) and for the box's HLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: benches/outputs.sh"]
async fn bench_output_latency() {
    let nginx = NginxRtmp::start();
    let secs = bench_seconds().max(10);
    let agent = AgentProcess::start_with_env(
        tempfile::tempdir().expect("tempdir"),
        &format!("{BENCH_MEDIA}\n[hls]\nsegment = \"1s\"\nplaylist_length = 4\n"),
        &[
            (roombox::media::pipeline::STAMP_ENV, "1"),
            ("RUST_LOG", "warn"),
        ],
    );
    agent
        .wait_state("media PLAYING", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let r = agent
        .call(start_cmd(serde_json::json!([output("main", &nginx.url())])))
        .await;
    assert!(r.ok, "{r:?}");
    assert!(agent.call(Command::StartHls).await.ok);
    let s = agent
        .wait_state("RTMP and HLS STARTED", Duration::from_secs(30), |s| {
            s["livestream"]["outputs"]["main"]["state"] == "STARTED"
                && s["hls"]["state"] == "STARTED"
        })
        .await;
    let hls_url = s["hls"]["playbackUrl"]
        .as_str()
        .expect("playback URL")
        .to_string();

    // One reader at a time: two 720p decodes beside the encoder would load the 2 cores.
    const SINK: &str = "videoconvert ! video/x-raw,format=I420 ! fakesink name=out sync=true";
    let rtmp = {
        let reader = StampReader::start(&format!(
            "rtmp2src location={}/{KEY} ! flvdemux name=d d.video ! queue ! h264parse \
             ! avdec_h264 ! {SINK} d.audio ! queue ! fakesink sync=false async=false",
            nginx.url()
        ));
        reader.measure("RTMP", Duration::from_secs(3), secs).await
    };
    // GStreamer's own player, playbin3 with hlsdemux2 (the older hlsdemux gives CMAF fragments
    // of a long-running stream timestamps its sink then waits minutes for).
    let hls = {
        let reader = StampReader::start(&format!(
            "playbin3 uri={hls_url} audio-sink=fakesink video-sink=\"{SINK}\""
        ));
        reader.measure("HLS", Duration::from_secs(3), secs).await
    };
    // A low-latency player: hls.js in headless Chromium loads parts and holds back three of
    // them. Capture to the compositor's expected display time, as in the room's browser bench.
    let browser = support::browser::read_stamps(serde_json::json!({
        "hls": hls_url,
        "settleS": 3,
        "measureS": secs,
        "minStamps": 50,
        "timeoutS": 40 + secs,
    }))
    .await;
    let mut ll: Vec<u32> = browser
        .column("display")
        .iter()
        .map(|&d| d.max(0.0).round() as u32)
        .collect();
    ll.sort_unstable();
    assert!(
        browser.ok && !ll.is_empty(),
        "hls.js read too few stamps: {}",
        browser.report
    );
    drop(agent);

    println!("\n## Live outputs: latency to a player (issue 9)\n");
    println!(
        "The agent's synthetic 1280x720@30 source (`ROOMBOX_TEST_STAMP=1`) writes each frame's \
         capture time into its luma, and each reader reads the stamp from every frame it \
         presents. RTMP: `rtmp2src ! flvdemux ! avdec_h264` reading the stream back from \
         nginx-rtmp on loopback, in the bench process (same CLOCK_MONOTONIC; `sync=true`, after \
         waiting for the frame's presentation time). HLS: the box's own playback URL \
         (low-latency HLS: 1 s CMAF segments of 200 ms parts, 4 segments in the playlist), \
         read by GStreamer's player (`playbin3`, hence `hlsdemux2`) and by hls.js 1.7.4 in low-latency mode in headless Chromium \
         (`tests/browser/g2g.mjs`: capture to the compositor's expected display time, the page's \
         clock mapped onto the stamp's). {secs} s per reader after a 3 s settle, one reader at a \
         time. `cargo test --release --features test-util --test livestream -- --ignored \
         bench_output_latency`.\n"
    );
    println!("| path | frames | median | p95 | min | max | target | |");
    println!("|---|---|---|---|---|---|---|---|");
    for (what, v, target) in [
        ("RTMP via nginx-rtmp", &rtmp, 1500),
        ("LL-HLS from the box, hls.js in Chromium", &ll, 3000),
        (
            "HLS from the box, GStreamer playbin3 (hlsdemux2)",
            &hls,
            3000,
        ),
    ] {
        let med = pct(v, 0.5);
        println!(
            "| {what} | {} | {med} ms | {} ms | {} ms | {} ms | ≤ {target} ms | {} |",
            v.len(),
            pct(v, 0.95),
            v[0],
            v[v.len() - 1],
            if med <= target { "met" } else { "not met" }
        );
    }
    println!();
    println!(
        "The HLS target (≤ 3 s) is for low-latency HLS: the hls.js row is the one it judges. A \
         player that does not load parts plays the same playlist as classic HLS, about three \
         segments behind."
    );
}

/// The fallback switch, repeated: Janus is killed, and the time from losing it to the fallback
/// output publishing is taken; Janus comes back, the box rejoins and the fallback stops; again.
#[test]
#[ignore = "benchmark: benches/outputs.sh"]
fn bench_fallback_switch() {
    support::netns::isolated_async(crate::test_name!(), fallback_bench);
}

async fn fallback_bench() {
    use roombox::model::MeetingState;
    use support::inproc::InProcBox;

    const AFTER: Duration = Duration::from_secs(3);
    let reps: usize = std::env::var("ROOMBOX_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut janus, nginx, c) = fallback_rig(tmp.path(), AFTER);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let b = InProcBox::start(&c);
    b.join().await;
    let backup = |b: &InProcBox| b.state().livestream.outputs.get("backup").map(|o| o.state);
    let mut switches = Vec::new();
    for rep in 0..reps {
        let lost = Instant::now();
        janus.kill();
        assert!(
            poll_until(AFTER + Duration::from_secs(15), || backup(&b)
                == Some(ServiceState::Started))
            .await,
            "repetition {rep}: the fallback never streamed: {:?}",
            b.state().livestream
        );
        switches.push(lost.elapsed().saturating_sub(AFTER).as_millis() as u64);
        tokio::time::sleep(Duration::from_secs(2)).await;
        janus.restart(Duration::from_secs(20)).expect("janus again");
        assert!(
            poll_until(Duration::from_secs(40), || b.state().meeting_state
                == MeetingState::Connected)
            .await,
            "repetition {rep}: the box did not rejoin"
        );
        assert!(
            poll_until(Duration::from_secs(15), || backup(&b).is_none()).await,
            "repetition {rep}: the fallback did not stop"
        );
        // nginx-rtmp refuses a re-publish of the same key until it drops the old session.
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let flvs = nginx.recordings();
    assert!(
        flvs.len() >= reps,
        "every switch reached the ingest: {flvs:?}"
    );
    let mut sorted = switches.clone();
    sorted.sort_unstable();
    let (med, max) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    println!("\n## Live outputs: fallback switch (issue 9)\n");
    println!(
        "In the bench's own network namespace: the box (in process, 320x180) in a Janus room with \
         `[livestream.fallback]` `after = 3s` to an nginx-rtmp output on loopback. Janus is \
         SIGKILLed; the figure is the time from the kill, minus `after`, to the fallback output \
         STARTED (rtmp2sink has rendered its second buffer: nginx accepted the publish). Janus is \
         then restarted, the box rejoins and the fallback stops, and the next repetition \
         begins. {reps} repetitions. `cargo test --release --features test-util --test \
         livestream -- --ignored bench_fallback_switch`.\n"
    );
    println!("| | median | min | max | target |\n|---|---|---|---|---|");
    println!(
        "| room lost (after `after`) → RTMP publishing | {med} ms | {} ms | {max} ms | ≤ 3000 ms ({}) |",
        sorted[0],
        if max <= 3000 { "met" } else { "not met" }
    );
    println!();
    println!("Each repetition, ms: {switches:?}. The target is judged on the maximum.");
}

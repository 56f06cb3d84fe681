//! Joining rooms over WebRTC with a real Janus and a webrtcbin participant, each test in a
//! network namespace of its own (see `support::netns`).

mod support;

use roombox::command::Command;
use roombox::config::Config;
use roombox::event::Event;
use roombox::model::{MeetingState, RecordingTarget, ServiceState};
use std::time::Duration;
use support::inproc::{join_cmd, InProcBox as Box_};
use support::janus::{JanusProcess, ServerConfig};
use support::peer::Peer;
use support::poll_until as eventually;

const ROOM: &str = "4242";
/// The aiortc publisher's room in the CPU benchmark: the box must not subscribe to it.
const OTHER_ROOM: &str = "4343";
const WAIT: Duration = Duration::from_secs(40);

/// A Janus in the test's network namespace, under `tmp`. Returns it, its WebSocket URL and
/// the directory it records into.
fn start_janus(tmp: &std::path::Path) -> (JanusProcess, String, std::path::PathBuf) {
    let rec = tmp.join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let janus =
        JanusProcess::start(sc, &tmp.join("janus"), Duration::from_secs(20)).expect("janus");
    (janus, url, rec)
}

fn room_config(url: &str, rec_dir: &std::path::Path) -> Config {
    support::inproc::room_config(url, rec_dir, ROOM, (640, 360))
}

async fn connected(b: &Box_) -> bool {
    eventually(WAIT, || b.state().meeting_state == MeetingState::Connected).await
}

/// The peer joins, subscribes to the box, and both sides decode each other.
async fn meet(b: &Box_, url: &str) -> Peer {
    let mut peer = Peer::join(url, ROOM, "peer").await;
    let pid = peer.id.clone();
    assert!(
        eventually(WAIT, || b.state().participants.contains_key(&pid)).await,
        "the box never listed the peer"
    );
    assert!(b.saw(
        |e| matches!(e, Event::ParticipantJoined { participant } if participant.participant_id == pid)
    ));
    let feed = b.feed_id().expect("meeting-joined carries the box's id");
    peer.subscribe(ROOM, &feed).await;
    assert!(
        eventually(WAIT, || peer.stats().video_frames > 30).await,
        "the peer decoded no video from the box: {:?}",
        peer.stats()
    );
    assert!(
        eventually(WAIT, || peer.stats().audio_dbfs.is_some_and(|d| d > -30.0)).await,
        "the peer heard no tone from the box: {:?}",
        peer.stats()
    );
    assert!(
        eventually(WAIT, || b.remote(&pid).video_frames > 30).await,
        "the box decoded no video from the peer: {:?}",
        b.remote(&pid)
    );
    assert!(
        eventually(WAIT, || b
            .remote(&pid)
            .audio_dbfs
            .is_some_and(|d| d > -30.0))
        .await,
        "the box heard no tone from the peer: {:?}",
        b.remote(&pid)
    );
    peer
}

fn mjr_files(dir: &std::path::Path, feed: &str) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let len = e.metadata().ok()?.len();
                    (name.ends_with(".mjr") && name.contains(&format!("-{feed}-")))
                        .then_some((name, len))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn box_and_webrtcbin_peer_meet_in_janus() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut janus, url, rec) = start_janus(tmp.path());
    let config = room_config(&url, &rec);
    let b = Box_::start(&config);

    // Join.
    b.join().await;
    assert!(b.saw(|e| matches!(e, Event::MeetingJoined { room_id, .. } if room_id == ROOM)));
    let feed = b.feed_id().expect("box id");

    // Media both ways.
    let peer = meet(&b, &url).await;

    // Mute: the peer's received level falls to silence, and state and event agree.
    b.handle.send(Command::DisableMic).await.expect("mute");
    assert!(eventually(WAIT, || !b.state().local_participant.mic_on).await);
    assert!(b.saw(|e| matches!(
        e,
        Event::StreamDisabled {
            kind: roombox::model::StreamKind::Audio,
            ..
        }
    )));
    assert!(
        eventually(WAIT, || peer.stats().audio_dbfs.is_some_and(|d| d < -60.0)).await,
        "muted, yet the peer still hears {:?}",
        peer.stats().audio_dbfs
    );
    b.handle.send(Command::EnableMic).await.expect("unmute");
    assert!(eventually(WAIT, || peer.stats().audio_dbfs.is_some_and(|d| d > -30.0)).await);
    assert!(b.state().local_participant.mic_on);

    // Camera off: state and event say so; the peer keeps decoding (black) frames.
    b.handle
        .send(Command::DisableWebcam)
        .await
        .expect("camera off");
    assert!(eventually(WAIT, || !b.state().local_participant.webcam_on).await);
    assert!(b.saw(|e| matches!(
        e,
        Event::StreamDisabled {
            kind: roombox::model::StreamKind::Video,
            ..
        }
    )));
    b.handle
        .send(Command::EnableWebcam)
        .await
        .expect("camera on");

    // Cloud recording: Janus writes .mjr files for the box's streams.
    let start = Command::StartRecording {
        target: RecordingTarget::Cloud,
    };
    b.handle.send(start).await.expect("start cloud recording");
    assert!(eventually(WAIT, || b.state().cloud_recording == ServiceState::Started).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.handle
        .send(Command::StopRecording {
            target: RecordingTarget::Cloud,
        })
        .await
        .expect("stop cloud recording");
    assert!(eventually(WAIT, || b.state().cloud_recording == ServiceState::Stopped).await);
    let files = mjr_files(&rec, &feed);
    assert!(
        files.iter().any(|(n, l)| n.contains("video") && *l > 1000)
            && files.iter().any(|(n, l)| n.contains("audio") && *l > 1000),
        "no .mjr recordings of the box in {}: {files:?}",
        rec.display()
    );

    // The peer leaves: participant-left on the box.
    let pid = peer.id.clone();
    peer.leave().await;
    assert!(
        eventually(WAIT, || b.saw(
            |e| matches!(e, Event::ParticipantLeft { participant_id } if *participant_id == pid)
        ))
        .await
    );
    assert!(!b.state().participants.contains_key(&pid));

    // Janus dies and returns: the box goes DISCONNECTED, then CONNECTED again by itself.
    b.clear_events();
    janus.kill();
    assert!(
        eventually(WAIT, || b.state().meeting_state != MeetingState::Connected).await,
        "the box did not notice Janus dying"
    );
    janus
        .restart(Duration::from_secs(20))
        .expect("janus restarts");
    assert!(
        connected(&b).await,
        "the box did not rejoin after Janus restarted"
    );
    assert!(b.saw(|e| matches!(
        e,
        Event::MeetingStateChanged {
            state: MeetingState::Disconnected
        }
    )));
    let peer = meet(&b, &url).await;
    assert_eq!(
        b.state().media.state,
        roombox::event::MediaState::Playing,
        "capture never stopped"
    );

    // Leave.
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    assert!(b.saw(|e| matches!(e, Event::MeetingLeft { .. })));
    peer.leave().await;
}

/// Benchmark (run by `benches/room.sh`): join command to the first frame of the box's video
/// decoded by a subscriber, over five joins. Prints a markdown section.
#[test]
#[ignore = "benchmark; run benches/room.sh"]
fn bench_room_join() {
    support::netns::isolated(crate::test_name!(), || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bench_join());
    });
}

/// Polls `cond` every 5 ms (benchmarks: finer than `eventually`'s 50 ms) until it holds or
/// `timeout` passes.
async fn until_fast(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while !cond() {
        if tokio::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// The viewer's jitter buffer in the join benchmark, ms: webrtcbin's default (200) holds the
/// first packet that long, where a browser starts playing at once.
const BENCH_JITTER_MS: u32 = 40;

async fn bench_join() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, url, rec) = start_janus(tmp.path());
    let config = room_config(&url, &rec);
    let b = Box_::start(&config);
    // The box creates the room on its first join; one untimed join and leave first, so every
    // timed join meets an existing room, as a box joining a scheduled meeting does.
    b.handle.send(join_cmd()).await.expect("join");
    assert!(until_fast(WAIT, || b.state().meeting_state == MeetingState::Connected).await);
    b.handle.send(Command::Leave).await.expect("leave");
    assert!(until_fast(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    let (mut joined, mut seen, mut sees_peer) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        // Someone is already in the room, publishing, when the box joins.
        let mut peer = Peer::join(&url, ROOM, "viewer").await;
        peer.jitter_ms = BENCH_JITTER_MS;
        b.clear_events();
        let t0 = std::time::Instant::now();
        // When the box first decodes the viewer's video, watched from the side.
        let mut stats = b.stats.clone();
        let pid = peer.id.clone();
        let box_sees = tokio::spawn(async move {
            loop {
                let got = stats
                    .borrow()
                    .participants
                    .get(&pid)
                    .is_some_and(|p| p.video_frames > 0);
                if got {
                    return t0.elapsed().as_secs_f64() * 1000.0;
                }
                let _ = tokio::time::timeout(Duration::from_millis(5), stats.changed()).await;
            }
        });
        b.handle.send(join_cmd()).await.expect("join");
        assert!(until_fast(WAIT, || b.feed_id().is_some()).await);
        let feed = b.feed_id().expect("feed");
        assert!(until_fast(WAIT, || b.state().meeting_state == MeetingState::Connected).await);
        joined.push(t0.elapsed().as_secs_f64() * 1000.0);
        // The viewer subscribes when Janus announces the box's feed (its `publishers` event,
        // sent once the box's media is up), as a browser does.
        assert!(until_fast(WAIT, || peer.stats().publishers.contains(&feed)).await);
        peer.subscribe(ROOM, &feed).await;
        assert!(until_fast(WAIT, || peer.stats().video_frames > 0).await);
        seen.push(t0.elapsed().as_secs_f64() * 1000.0);
        let sees = tokio::time::timeout(WAIT, box_sees).await;
        sees_peer.push(sees.expect("the box decodes the viewer").expect("watcher"));
        peer.leave().await;
        b.handle.send(Command::Leave).await.expect("leave");
        assert!(until_fast(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    }
    let row = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "{:.0} ms | {:.0} ms | {:.0} ms",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        )
    };
    let n = seen.len();
    println!("\n## Room join (Janus VideoRoom in a private network namespace)\n");
    println!(
        "A webrtcbin participant is already in the (existing) room, publishing. From the box's \
         join command: to meeting-state CONNECTED (signalling, ICE and DTLS done, media \
         flowing), and to the first frame of the box's video decoded by that participant, \
         which subscribes when Janus announces the box's feed (its subscription, ICE and DTLS, the \
         box's keyframe and a {BENCH_JITTER_MS} ms jitter buffer are inside the figure); and to \
         the box's first decoded frame of that participant (what the room's screen shows). \
         {n} joins:\n"
    );
    println!("| | median | min | max | target |\n|---|---|---|---|---|");
    println!("| CONNECTED | {} | |", row(&mut joined));
    println!(
        "| first remote-decoded frame | {} | ≤ 1000 ms |",
        row(&mut seen)
    );
    println!(
        "| the box's first decoded frame of the viewer | {} | |",
        row(&mut sees_peer)
    );
}

fn percentile<T: Copy + Ord>(v: &mut [T], p: f64) -> T {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Benchmark (run by `benches/room.sh`): glass-to-glass latency of the box's 1280x720@30 video
/// through Janus to a webrtcbin subscriber. Prints a markdown section.
#[test]
#[ignore = "benchmark; run benches/room.sh"]
fn bench_glass_to_glass() {
    support::netns::isolated(crate::test_name!(), || {
        // Before any engine starts: the synthetic source stamps capture times into its frames.
        std::env::set_var(roombox::media::pipeline::STAMP_ENV, "1");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bench_latency());
    });
}

async fn bench_latency() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, url, rec) = start_janus(tmp.path());
    let mut config = room_config(&url, &rec);
    config.media.video.width = 1280;
    config.media.video.height = 720;
    config.media.video.fps = 30;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.handle.send(join_cmd()).await.expect("join");
    assert!(eventually(WAIT, || b.feed_id().is_some()).await);
    let feed = b.feed_id().expect("feed");
    let mut peer = Peer::join(&url, ROOM, "viewer").await;
    peer.subscribe(ROOM, &feed).await;
    assert!(
        eventually(WAIT, || !peer.stats().latencies_ms.is_empty()).await,
        "no stamped frame decoded: {:?}",
        peer.stats().video_frames
    );
    // Let the first keyframe's burst settle, then measure over 15 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let skip = peer.stats().latencies_ms.len();
    let frames0 = peer.stats().video_frames;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let st = peer.stats();
    let mut l: Vec<u32> = st.latencies_ms[skip..].to_vec();
    let frames = st.video_frames - frames0;
    assert!(l.len() > 30, "too few stamped frames: {}", l.len());
    let (median, p95) = (percentile(&mut l, 0.5), percentile(&mut l, 0.95));
    let (min, max) = (l[0], l[l.len() - 1]);
    peer.leave().await;
    let _ = b.handle.send(Command::Leave).await;
    println!("\n## Glass-to-glass latency (1280x720@30, Janus on loopback)\n");
    println!(
        "The box's synthetic source (`ROOMBOX_TEST_STAMP=1`, off by default) writes each frame's \
         capture time (system clock, ms) into its luma as 32 bit blocks of 32x32 px plus their \
         complement; a webrtcbin subscriber in the same process (same CLOCK_MONOTONIC) reads the \
         stamp from every decoded frame and subtracts it from the clock. Covers capture, the box's \
         encoder, RTP through Janus, the subscriber's jitter buffer and decoder (not a display). \
         {} stamped frames of {} decoded over 15 s:\n",
        l.len(),
        frames
    );
    println!("| median | p95 | min | max | target |\n|---|---|---|---|---|");
    println!("| {median} ms | {p95} ms | {min} ms | {max} ms | ≤ 120 ms |");
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the name: state is 0, utime 11, stime 12.
    let p = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    p(11) + p(12)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn box_room_toml(url: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
[media.video]
source = "test"
width = 1280
height = 720
fps = 30

[media.audio]
source = "test"

[room]
backend = "janus"
url = "{url}"
room_id = "{ROOM}"
record_dir = "{}"

[room.playback]
audio_sink = "none"
video_sink = "none"
"#,
        dir.display()
    )
}

/// Benchmark (run by `benches/room.sh`): CPU of the box publishing 1280x720@30 to Janus beside an
/// aiortc publisher of the same (benches/aiortc_publisher.py), in one run. Prints a markdown
/// section.
#[test]
#[ignore = "benchmark; run benches/room.sh"]
fn bench_publish_cpu() {
    support::netns::isolated(crate::test_name!(), || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bench_cpu());
    });
}

/// Video bitrate both publishers are held to, kbit/s: the rooms' Janus REMB cap, and the box's
/// configured bitrate.
const CPU_BENCH_KBPS: u32 = 1500;
/// Pixels the synthetic picture scrolls each frame on both publishers (moving content makes
/// both encoders work as they would on a camera; a still picture costs next to nothing).
const CPU_BENCH_SCROLL: u32 = 4;

/// Writes one 1280x720 I420 frame of the box's own test pattern to `path`.
fn smpte_frame(path: &std::path::Path) {
    let ok = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=1",
            "pattern=smpte",
            "!",
            "video/x-raw,format=I420,width=1280,height=720",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "gst-launch-1.0 could not write the test frame");
}

async fn bench_cpu() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, url, rec) = start_janus(tmp.path());
    let frame = tmp.path().join("smpte.i420");
    smpte_frame(&frame);
    support::peer::create_room(&url, ROOM, Some(CPU_BENCH_KBPS)).await;
    let toml = box_room_toml(&url, &rec).replace(
        "fps = 30\n",
        &format!(
            "fps = 30\ntest_scroll = {CPU_BENCH_SCROLL}\nbitrate_kbps = {CPU_BENCH_KBPS}\n\
             max_bitrate_kbps = {CPU_BENCH_KBPS}\n"
        ),
    );
    let agent = support::agent::AgentProcess::start(&toml);
    agent.call(join_cmd()).await;
    agent
        .wait_state("the box in the meeting", WAIT, |s| {
            s["meetingState"] == "CONNECTED"
        })
        .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/aiortc_publisher.py");
    let mut py = std::process::Command::new("python3")
        .arg(script)
        .args([&url, OTHER_ROOM])
        .arg(&frame)
        .arg(CPU_BENCH_SCROLL.to_string())
        .arg((CPU_BENCH_KBPS * 1000).to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 benches/aiortc_publisher.py (pip install aiortc websockets)");
    let out = py.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let up = rx
        .recv_timeout(Duration::from_secs(60))
        .is_ok_and(|l| l == "connected");
    if !up {
        let _ = py.kill();
        panic!("the aiortc publisher never connected");
    }
    // Warm up (both rate controls settle on the cap), then measure both processes over the
    // same 20 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The aiortc publisher's latest `sent FRAMES BYTES SECONDS` line.
    let sent = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.try_iter()
            .filter_map(|l| {
                let mut w = l.strip_prefix("sent ")?.split_whitespace();
                Some((
                    w.next()?.parse::<u64>().ok()?,
                    w.next()?.parse::<u64>().ok()?,
                    w.next()?.parse::<f64>().ok()?,
                ))
            })
            .last()
    };
    let (bpid, ppid) = (agent.child.id(), py.id());
    let s0 = sent(&rx).unwrap_or_default();
    let (b0, p0, t0) = (cpu_ticks(bpid), cpu_ticks(ppid), std::time::Instant::now());
    // The box's measured encoder output, sampled each second.
    let mut box_kbps = Vec::new();
    let mut box_fps = Vec::new();
    while t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = agent.state().await;
        box_kbps.push(st["media"]["encodedKbps"].as_f64().unwrap_or(0.0));
        box_fps.push(st["media"]["fps"].as_f64().unwrap_or(0.0));
    }
    let (b1, p1, secs) = (cpu_ticks(bpid), cpu_ticks(ppid), t0.elapsed().as_secs_f64());
    // Python prints once a second: wait for the line that covers the window's end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s1 = sent(&rx).unwrap_or_default();
    // Rates over the span between the two lines, by the publisher's own clock.
    let span = (s1.2 - s0.2).max(1.0);
    let fps = s1.0.saturating_sub(s0.0) as f64 / span;
    let kbps = s1.1.saturating_sub(s0.1) as f64 * 8.0 / span / 1000.0;
    let still = py.try_wait().ok().flatten().is_none();
    let _ = py.kill();
    let _ = py.wait();
    assert!(still, "the aiortc publisher died during the measurement");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let hz = clk_tck();
    let bcpu = (b1 - b0) as f64 / hz / secs * 100.0;
    let pcpu = (p1 - p0) as f64 / hz / secs * 100.0;
    let encoder = agent.state().await["media"]["encoder"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    println!("\n## CPU per published stream (1280x720@30 + audio to Janus)\n");
    println!(
        "The roombox binary and an aiortc 1.16 publisher (benches/aiortc_publisher.py, H.264 \
         through PyAV's libx264 with aiortc's own settings, plus an Opus tone) publish the same \
         picture, the box's `videotestsrc pattern=smpte` frame scrolling {CPU_BENCH_SCROLL} px per \
         frame, to the same Janus at once, each in a room of its own (neither decodes the other). \
         Both rooms cap video at {CPU_BENCH_KBPS} kbit/s through Janus's REMB, and the box is \
         configured to the same. CPU is user+sys from /proc over {secs:.0} s (100% = one \
         core), including each side's own frame generation. The box used `{encoder}`.\n"
    );
    println!(
        "| | CPU | video frames/s | video kbit/s |\n|---|---|---|---|\n\
         | roombox | {bcpu:.1}% | {:.1} | {:.0} |\n| aiortc | {pcpu:.1}% | {fps:.1} | {kbps:.0} |\n",
        mean(&box_fps),
        mean(&box_kbps)
    );
    println!("| ratio (roombox / aiortc) | target |\n|---|---|");
    println!(
        "| {:.2} | ≤ 0.25 |",
        if pcpu > 0.0 { bcpu / pcpu } else { f64::NAN }
    );
}

/// Benchmark (run by `benches/room.sh`): a (simulated) join button press to the
/// `meeting-joined` event on the control socket, the real binary with a local Janus. Prints a
/// markdown section.
#[test]
#[ignore = "benchmark; run benches/room.sh"]
fn bench_button_join() {
    support::netns::isolated(crate::test_name!(), || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bench_button());
    });
}

async fn bench_button() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_janus, url, rec) = start_janus(tmp.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("panel");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let body = format!(
        "{}\n[controls]\nbackend = \"simulated\"\npanel_input = \"{}\"\n",
        box_room_toml(&url, &rec),
        fifo.display()
    );
    let agent = support::agent::AgentProcess::start_in(dir, &body);
    // Blocks until the agent opens the FIFO; kept open across presses.
    let fifo2 = fifo.clone();
    let mut panel = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(fifo2)
            .expect("open panel FIFO")
    })
    .await
    .expect("open");
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut events = agent.events().await;
        let t0 = std::time::Instant::now();
        panel.write_all(b"j\n").expect("press");
        let joined = support::agent::wait_event(&mut events, WAIT, |e| {
            matches!(e, Event::MeetingJoined { .. })
        })
        .await;
        assert!(joined.is_some(), "no meeting-joined; log:\n{}", agent.log());
        times.push(t0.elapsed().as_millis() as u64);
        agent
            .wait_state("the box in the meeting", WAIT, |s| {
                s["meetingState"] == "CONNECTED"
            })
            .await;
        panel.write_all(b"j\n").expect("press to leave");
        agent
            .wait_state("the box out of the meeting", WAIT, |s| {
                s["meetingState"] == "CLOSED"
            })
            .await;
    }
    let n = times.len();
    let median = percentile(&mut times, 0.5);
    println!("\n## Button press to meeting-joined (real binary, local Janus)\n");
    println!(
        "`roombox run` with the simulated controls backend: a short press of the join key written \
         to its panel FIFO, to the `meeting-joined` event read on its control socket; {n} joins, \
         leaving (second press) between:\n"
    );
    println!("| median | min | max |\n|---|---|---|");
    println!("| {median} ms | {} ms | {} ms |", times[0], times[n - 1]);
}

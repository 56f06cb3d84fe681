//! The meeting feed with a real participant: a webrtcbin peer in a Janus room publishes a solid
//! orange picture and a 1200 Hz tone; the box, recording with `source = "meeting"`, records
//! both pictures side by side (the grid's places, pixels sampled in each tile) and both tones
//! (its own 440 Hz mic and the peer's). The peer then leaves mid-recording: the layout closes
//! the gap (the box's camera fills the picture) and the recording goes on. In a network
//! namespace of its own (see `support::netns`).

mod support;

use roombox::command::Command;
use roombox::event::Event;
use roombox::model::{OutputSource, RecordingTarget};
use std::path::PathBuf;
use std::time::Duration;
use support::decoded::{decode, is_orange, SMALL};
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::{Peer, PeerOptions};
use support::poll_until as eventually;

const ROOM: &str = "4545";
const WAIT: Duration = Duration::from_secs(40);
/// The box's picture, and so the meeting's.
const SIZE: (u32, u32) = (640, 360);
/// The peer's picture: orange.
const ORANGE: u32 = 0xffff_8000;
const PEER_HZ: f64 = 1200.0;
const BOX_HZ: f64 = 440.0;

#[test]
fn a_recording_of_the_meeting_shows_and_sounds_both_participants_and_goes_on_when_one_leaves() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

fn closed(b: &Box_) -> Vec<PathBuf> {
    b.segments_closed()
}

/// Waits for `n` more segments than `after` and returns the newest.
async fn next_segment(b: &Box_, after: usize) -> PathBuf {
    assert!(
        eventually(WAIT, || closed(b).len() > after).await,
        "no segment closed"
    );
    closed(b).pop().expect("a segment")
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, SIZE);
    config.recording.source = OutputSource::Meeting;
    config.recording.segment = Duration::from_secs(3);
    config.recording.dir = tmp.path().join("recordings");
    config.recording.min_free_mb = 0;
    config.recording.stop_free_mb = 0;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    let opts = PeerOptions {
        tone_hz: Some(PEER_HZ as u32),
        colour: Some(ORANGE),
        ..PeerOptions::default()
    };
    let peer = Peer::join_with(&url, ROOM, "Orange", opts).await;
    b.lists(&peer.id).await;
    assert!(
        eventually(WAIT, || b.frames_from(&peer.id) > 30).await,
        "the box received no video from the peer"
    );

    b.handle
        .send(Command::StartRecording {
            target: RecordingTarget::Local,
        })
        .await
        .expect("start-recording");
    // The first segments hold the composition's start (each participant's picture from its
    // next keyframe); the third is the meeting running.
    let first = next_segment(&b, 0).await;
    let _second = next_segment(&b, closed(&b).len()).await;
    let seg = next_segment(&b, closed(&b).len()).await;
    eprintln!("segments {first:?} then {seg:?}");
    let d = decode(&seg, SIZE);
    // Two in a grid: the box on the left, the peer on the right (640x360 → two 320x360 tiles).
    let peer_px = d.pixel(480, 180);
    let box_px = d.pixel(20, 100);
    let box_right = d.pixel(300, 100);
    // The peer's label, bottom left of its tile on a shaded band: rows 336..348 of the picture.
    let band: Vec<[u8; 3]> = (324..420)
        .step_by(4)
        .flat_map(|x| [338, 342, 346].map(|y| d.pixel(x, y)))
        .collect();
    // Its letters are light (blue well above the orange's and its shade's 0).
    let letters = band.iter().filter(|p| p[1] > 100 && p[2] > 100).count();
    assert!(
        letters >= 3,
        "no label on the peer's tile: {letters} light pixels in {band:?}"
    );
    eprintln!(
        "with the peer: {} frames, peer tile {peer_px:?}, box tile {box_px:?} .. {box_right:?}, 440 Hz {:.1} dBFS, 1200 Hz {:.1} dBFS",
        d.frames.len(),
        d.tone_db(BOX_HZ),
        d.tone_db(PEER_HZ)
    );
    assert!(
        is_orange(peer_px),
        "the peer's tile is not orange: {peer_px:?}"
    );
    // The camera's SMPTE bars squeezed into the left half: its first bar (white) at the left
    // edge, its last (blue) at the tile's right edge, where the full picture has green.
    assert!(
        box_px.iter().all(|&c| c > 200),
        "the box's tile does not start with the camera's white bar: {box_px:?}"
    );
    let [r, g, b_] = box_right;
    assert!(
        b_ > 200 && r < 80 && g < 80,
        "the box's tile does not end with the camera's blue bar: {box_right:?}"
    );
    assert!(d.tone_db(BOX_HZ) > -20.0, "the box's own tone is missing");
    assert!(d.tone_db(PEER_HZ) > -20.0, "the peer's tone is missing");

    // The peer leaves: the box's camera fills the picture again, and segments keep coming.
    let before = closed(&b).len();
    peer.leave().await;
    assert!(
        eventually(WAIT, || !b
            .state()
            .participants
            .values()
            .any(|p| p.display_name == "Orange"))
        .await,
        "the box still lists the peer"
    );
    // The segment the peer left in, and one more: the mixer may still hold a few tens of
    // milliseconds of the peer's last audio after the leave (measured -40 dBFS in the segment
    // right after on a loaded machine).
    let _gap = next_segment(&b, closed(&b).len()).await;
    let _tail = next_segment(&b, closed(&b).len()).await;
    let after = next_segment(&b, closed(&b).len()).await;
    let d = decode(&after, SIZE);
    let right = d.pixel(480, 180);
    eprintln!(
        "after the peer left: {} frames, right half {right:?}, 440 Hz {:.1} dBFS, 1200 Hz {:.1} dBFS",
        d.frames.len(),
        d.tone_db(BOX_HZ),
        d.tone_db(PEER_HZ)
    );
    assert!(closed(&b).len() >= before + 2, "the recording stopped");
    assert!(!is_orange(right), "the peer's tile stayed: {right:?}");
    assert!(
        d.frames.len() >= 30,
        "the recording went on with few frames"
    );
    assert!(d.tone_db(BOX_HZ) > -20.0, "the box's tone is gone");
    assert!(d.tone_db(PEER_HZ) < -50.0, "the peer's tone stayed");
    // Full-frame camera: SMPTE's seven bars across the whole width again, so the right half
    // holds a bar of the top row (cyan, green, magenta, red or blue at x=480), not black.
    assert!(
        right.iter().any(|&c| c > 100),
        "the right half is black: {right:?}"
    );
}

#[test]
fn spotlight_follows_the_speaker_into_the_large_tile() {
    support::netns::isolated_async(crate::test_name!(), spotlight);
}

/// The large tile of a 640x360 spotlight (the strip below is 72 high).
const BIG_CENTRE: (u32, u32) = (320, 144);
const BLUE: u32 = 0xff00_40ff;

fn is_blue([r, g, b]: [u8; 3]) -> bool {
    b > 200 && r < 60 && g < 120
}

/// Two participants take turns to talk (their tones, whose RFC 6464 levels make Janus report
/// them talking); the recording's large tile shows whoever talks, a moment after the box's
/// `speaker-changed`.
async fn spotlight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, SIZE);
    config.recording.source = OutputSource::Meeting;
    config.recording.segment = Duration::from_secs(2);
    config.recording.dir = tmp.path().join("recordings");
    config.recording.min_free_mb = 0;
    config.recording.stop_free_mb = 0;
    config.media.meeting.layout = roombox::model::LayoutKind::Spotlight;
    config.media.meeting.speaker_hold = Duration::from_millis(500);
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    let talker = |colour, hz| PeerOptions {
        audio_level: true,
        tone_hz: Some(hz),
        colour: Some(colour),
        ..PeerOptions::default()
    };
    let ana = Peer::join_with(&url, ROOM, "Ana", talker(ORANGE, 1200)).await;
    let bo = Peer::join_with(&url, ROOM, "Bo", talker(BLUE, 900)).await;
    bo.set_tone(false);
    for p in [&ana, &bo] {
        b.lists(&p.id).await;
    }
    let speaker = |id: &str| {
        let id = id.to_string();
        move |e: &Event| matches!(e, Event::SpeakerChanged { participant_id: Some(p) } if *p == id)
    };
    assert!(
        eventually(WAIT, || b.saw(speaker(&ana.id))).await,
        "Ana's tone never made her the speaker"
    );
    b.handle
        .send(Command::StartRecording {
            target: RecordingTarget::Local,
        })
        .await
        .expect("start-recording");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::RecordingStateChanged {
                state: roombox::model::ServiceState::Started,
                ..
            }
        )))
        .await
    );
    let started = std::time::Instant::now();
    // The meeting's picture of Ana starts at her next keyframe after the recording asked for it.
    let (_, lag) = big_tile_turns(&b, is_orange, started, started).await;
    eprintln!("Ana talks: the large tile is hers {lag:?} after the recording started");

    // Ana stops, Bo talks: once the box names Bo the speaker, the large tile turns blue.
    ana.set_tone(false);
    bo.set_tone(true);
    let asked = std::time::Instant::now();
    assert!(
        eventually(WAIT, || b.saw(speaker(&bo.id))).await,
        "Bo's tone never made him the speaker"
    );
    let named = std::time::Instant::now();
    eprintln!(
        "speaker-changed to Bo {:?} after his tone started",
        named - asked
    );
    let (px, lag) = big_tile_turns(&b, is_blue, started, named).await;
    eprintln!(
        "the large tile turned to Bo ({px:?}) about {lag:?} after speaker-changed (hold 500 ms)"
    );
    assert!(
        lag < Duration::from_secs(2),
        "the large tile followed speaker-changed only after {lag:?}"
    );
    // Bo talks on, but a `pin` puts silent Ana back in the large tile.
    b.handle
        .send(Command::Pin {
            participant_id: Some(ana.id.clone()),
        })
        .await
        .expect("pin");
    let pinned = std::time::Instant::now();
    let (_, lag) = big_tile_turns(&b, is_orange, started, pinned).await;
    eprintln!("pinned Ana: the large tile is hers {lag:?} after the pin");
    assert!(lag < Duration::from_secs(1), "the pin took {lag:?}");
    assert_eq!(b.state().pinned.as_deref(), Some(ana.id.as_str()));
}

/// Waits (10 s at most) for a recorded frame, after `since`, whose large tile `is`; returns its
/// pixel and about how long after `since` it was captured. A frame's capture time is the
/// recording's start plus its media time (the segments before it and its place in its own):
/// segments are written a keyframe interval late (splitmuxsink holds a whole GOP), so the
/// moment a segment closes says little.
async fn big_tile_turns(
    b: &Box_,
    is: fn([u8; 3]) -> bool,
    recording_started: std::time::Instant,
    since: std::time::Instant,
) -> ([u8; 3], Duration) {
    let (sx, sy) = (
        BIG_CENTRE.0 as usize * SMALL.0 / SIZE.0 as usize,
        BIG_CENTRE.1 as usize * SMALL.1 / SIZE.1 as usize,
    );
    let px = |f: &Vec<u8>| {
        let i = (sy * SMALL.0 + sx) * 3;
        [f[i], f[i + 1], f[i + 2]]
    };
    let (mut seen, mut offset) = (0, Duration::ZERO);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let all = closed(b);
        for path in &all[seen..] {
            let d = decode(path, SIZE);
            let length = support::agent::discover(path)
                .map(|x| x.duration)
                .unwrap_or_default();
            let n = d.frames.len().max(1) as f64;
            last = d.frames.last().map(px);
            for (i, f) in d.frames.iter().enumerate() {
                let at = recording_started + offset + length.mul_f64(i as f64 / n);
                if at > since && is(px(f)) {
                    return (px(f), at.saturating_duration_since(since));
                }
            }
            offset += length;
        }
        seen = all.len();
    }
    panic!("the large tile never turned; it was {last:?}");
}

/// Benchmark: the box's CPU recording the room feed alone, then the meeting feed, with three
/// webrtcbin participants at 1280x720@30 in the room (the real `roombox` binary, its own
/// process; the participants run in the test's). Prints a markdown section for BENCHMARKS.md.
#[test]
#[ignore = "benchmark: cargo test --features test-util --test meeting -- --ignored bench_meeting_cpu --nocapture"]
fn bench_meeting_cpu() {
    support::netns::isolated_async(crate::test_name!(), bench_cpu);
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let p = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    p(11) + p(12)
}

/// What one round measured.
struct Round {
    cpu: f64,
    fps: f64,
    /// Frames per second in the last closed segment (the output's own rate).
    out_fps: f64,
}

async fn bench_round(url: &str, source: &str, secs: u64) -> Round {
    use support::agent::AgentProcess;
    let dir = tempfile::tempdir().expect("tempdir");
    let recordings = dir.path().join("recordings");
    let toml = format!(
        r#"
[media.video]
source = "test"
width = 1280
height = 720
fps = 30
adapt_to_cpu = false

[media.audio]
source = "test"

[recording]
source = "{source}"
segment = "4s"
dir = "{}"
min_free_mb = 0
stop_free_mb = 0

[room]
backend = "janus"
url = "{url}"
room_id = "{ROOM}"
record_dir = "{}"

[room.playback]
audio_sink = "none"
video_sink = "none"
"#,
        recordings.display(),
        dir.path().join("janus-rec").display()
    );
    let agent = AgentProcess::start(&toml);
    agent.call(support::inproc::join_cmd()).await;
    agent
        .wait_state("three participants", WAIT, |s| {
            s["meetingState"] == "CONNECTED"
                && s["participants"].as_object().is_some_and(|p| p.len() >= 3)
        })
        .await;
    let reply = agent
        .call(Command::StartRecording {
            target: RecordingTarget::Local,
        })
        .await;
    assert!(reply.ok, "start-recording: {reply:?}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let pid = agent.child.id();
    let (c0, t0) = (cpu_ticks(pid), std::time::Instant::now());
    let mut fps = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        fps.push(agent.state().await["media"]["fps"].as_f64().unwrap_or(0.0));
    }
    let cpu = (cpu_ticks(pid) - c0) as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&recordings)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    segs.sort();
    // The newest is still open: the one before it is whole.
    let seg = segs.iter().rev().nth(1).expect("a closed segment").clone();
    let length = support::agent::discover(&seg)
        .map(|d| d.duration.as_secs_f64())
        .unwrap_or(0.0);
    let frames = decode(&seg, SIZE).frames.len() as f64 / length.max(0.1);
    Round {
        cpu,
        fps: fps.iter().sum::<f64>() / fps.len().max(1) as f64,
        out_fps: frames,
    }
}

async fn bench_cpu() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sc = ServerConfig::new("127.0.0.1", tmp.path().join("rec")).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    support::peer::create_room(&url, ROOM, None).await;
    let mut peers = Vec::new();
    for (i, colour) in [0xffff_0000u32, 0xff00_ff00, 0xff00_00ff]
        .into_iter()
        .enumerate()
    {
        let opts = PeerOptions {
            colour: Some(colour),
            tone_hz: Some(600 + 300 * i as u32),
            video: Some((1280, 720, 30, 1500)),
            ..PeerOptions::default()
        };
        peers.push(Peer::join_with(&url, ROOM, &format!("peer {i}"), opts).await);
    }
    let secs = 15;
    let mut rounds: Vec<(&str, Round)> = Vec::new();
    for source in ["room", "meeting", "room", "meeting"] {
        let r = bench_round(&url, source, secs).await;
        eprintln!(
            "{source}: CPU {:.1} %, capture {:.1} fps, recording {:.1} fps",
            r.cpu, r.fps, r.out_fps
        );
        rounds.push((source, r));
    }
    let median = |source: &str, f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds
            .iter()
            .filter(|(s, _)| *s == source)
            .map(|(_, r)| f(r))
            .collect();
        v.sort_by(f64::total_cmp);
        (v.iter().sum::<f64>() / v.len().max(1) as f64, v)
    };
    println!(
        "\n## The meeting feed: CPU with three remote participants at 1280x720@30 (issue 22)\n"
    );
    println!(
        "The `roombox` binary (debug build) in a Janus room with three webrtcbin participants, \
         each publishing 1280x720@30 H.264 (1.5 Mbit/s) and a tone; its own camera is the \
         synthetic 1280x720@30 source (`adapt_to_cpu = false`). It records with \
         `source = \"room\"` (its own camera and mic: remote video is not decoded, \
         `video_sink = \"none\"`) or `source = \"meeting\"` (the three decoded, composed with \
         the camera in a 2x2 grid with labels, mixed, encoded once more), alternating, 2 rounds \
         each, CPU over {secs} s after an 8 s warm-up (user+sys from /proc; 100 % = one core; \
         the participants' own encodes run in the test process and are not counted). Capture \
         fps is the engine's encoded frames per second; recording fps is a closed segment's \
         frames over its duration.\n"
    );
    println!("| source | CPU (mean; rounds) | capture fps | recording fps |\n|---|---|---|---|");
    for source in ["room", "meeting"] {
        let (cpu, v) = median(source, |r| r.cpu);
        let (fps, _) = median(source, |r| r.fps);
        let (out, _) = median(source, |r| r.out_fps);
        let rounds: Vec<String> = v.iter().map(|c| format!("{c:.1}")).collect();
        println!(
            "| {source} | {cpu:.1} % ({}) | {fps:.1} | {out:.1} |",
            rounds.join(", ")
        );
    }
    drop(peers);
}

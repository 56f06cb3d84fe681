//! The meeting feed over RTMP and HLS: a webrtcbin participant in a Janus room publishes an
//! orange picture and a 1200 Hz tone; the box streams the meeting (`source = "meeting"`) to
//! nginx-rtmp and serves it as HLS, and both the FLV nginx recorded and the box's newest HLS
//! segment hold both pictures in their grid places and both tones. And HLS in hls.js (headless
//! Chromium) playing on while `set-output-source` switches it from the room to the meeting. In
//! a network namespace of its own (see `support::netns`).

mod support;

use roombox::command::Command;
use roombox::config::OutputConfig;
use roombox::event::Event;
use roombox::model::{OutputSource, ServiceState, StreamKey};
use std::time::Duration;
use support::decoded::{decode, is_orange};
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::{Peer, PeerOptions};
use support::poll_until as eventually;

const ROOM: &str = "4646";
const WAIT: Duration = Duration::from_secs(40);
const SIZE: (u32, u32) = (640, 360);

#[test]
fn rtmp_and_hls_outputs_of_the_meeting_carry_both_participants() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

#[test]
fn hls_js_plays_on_while_hls_switches_from_the_room_to_the_meeting() {
    support::netns::isolated_async(crate::test_name!(), hls_switch);
}

async fn hls_switch() {
    use roombox::model::OutputKind;
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, SIZE);
    config.http.enabled = true;
    config.http.port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    config.hls.segment = Duration::from_secs(1);
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    let http = b.serve_http(&config).await;
    b.join().await;
    let opts = PeerOptions {
        colour: Some(0xffff_8000),
        ..PeerOptions::default()
    };
    let peer = Peer::join_with(&url, ROOM, "Orange", opts).await;
    b.lists(&peer.id).await;
    b.handle.send(Command::StartHls).await.expect("start-hls");
    assert!(
        eventually(WAIT, || b.state().hls.state == ServiceState::Started).await,
        "HLS did not start"
    );
    let playlist = format!("{http}/hls/index.m3u8");
    let player =
        tokio::spawn(
            async move { support::browser::play_for(&playlist, 40, 300, "hlsjs", 22).await },
        );
    // Some of the room's own picture first.
    tokio::time::sleep(Duration::from_secs(8)).await;
    b.handle
        .send(Command::SetOutputSource {
            output: OutputKind::Hls,
            name: None,
            source: OutputSource::Meeting,
        })
        .await
        .expect("set-output-source");
    let played = player.await.expect("the player");
    let r = &played.report;
    assert!(played.ok, "Chromium decoded too few frames: {r:#}");
    let fatal: Vec<_> = r["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.as_str().is_some_and(|e| e.contains("fatal")))
        .collect();
    assert!(fatal.is_empty(), "hls.js failed at the switch: {r:#}");
    assert!(
        r["currentTime"].as_f64().unwrap_or(0.0) > 15.0,
        "playback did not go on through the switch: {r:#}"
    );
    // The picture shown at the end, in 4x4 cells: the meeting's grid, the peer's orange 4:3
    // picture in the right half (cell column 2, row 1), the box's camera in the left.
    let cell = |col: usize, row: usize| -> [u8; 3] {
        let c = &r["grid"][row * 4 + col];
        [0, 1, 2].map(|i| c[i].as_u64().unwrap_or(0) as u8)
    };
    eprintln!(
        "hls.js shows: peer cell {:?}, box cell {:?}",
        cell(2, 1),
        cell(1, 1)
    );
    assert!(
        is_orange(cell(2, 1)),
        "hls.js does not show the meeting: {r:#}"
    );
    assert!(!is_orange(cell(1, 1)), "{r:#}");
    assert_eq!(b.state().hls.source, OutputSource::Meeting);
    drop(peer);
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let nginx = support::nginx::NginxRtmp::start();
    let mut config = support::inproc::room_config(&url, &rec, ROOM, SIZE);
    config.livestream.outputs = vec![OutputConfig {
        name: "main".into(),
        url: nginx.url(),
        stream_key: StreamKey::new("meeting"),
        stream_key_file: Default::default(),
        source: OutputSource::Meeting,
    }];
    config.hls.source = OutputSource::Meeting;
    // HLS is written for the HTTP server; the segments are read from the disk here.
    config.http.enabled = true;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    let opts = PeerOptions {
        tone_hz: Some(1200),
        colour: Some(0xffff_8000),
        ..PeerOptions::default()
    };
    let peer = Peer::join_with(&url, ROOM, "Orange", opts).await;
    b.lists(&peer.id).await;
    assert!(
        eventually(WAIT, || b.frames_from(&peer.id) > 30).await,
        "the box received no video from the peer"
    );
    b.handle
        .send(Command::StartLivestream { outputs: vec![] })
        .await
        .expect("start-livestream");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::LivestreamStateChanged {
                state: ServiceState::Started,
                ..
            }
        )))
        .await,
        "the RTMP output never started; nginx: {}",
        nginx.log()
    );
    b.handle.send(Command::StartHls).await.expect("start-hls");
    // The participant's picture joins at its next keyframe (2 s apart); then some of the meeting.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let hls = hls_segment(&config.hls_dir(), &tmp.path().join("hls.mp4"));
    b.handle
        .send(Command::StopLivestream { name: None })
        .await
        .expect("stop-livestream");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::LivestreamStateChanged {
                state: ServiceState::Stopped,
                ..
            }
        )))
        .await
    );
    // nginx finishes its FLV when the publisher goes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flv = nginx.recordings().pop().expect("nginx recorded the stream");
    let d = decode(&flv, SIZE);
    let n = d.frames.len();
    // The last frames: the peer's keyframe has long come.
    let at = |x: u32, y: u32| {
        let f = &d.frames[n - 10];
        let sx = x as usize * 160 / SIZE.0 as usize;
        let sy = y as usize * 90 / SIZE.1 as usize;
        let i = (sy * 160 + sx) * 3;
        [f[i], f[i + 1], f[i + 2]]
    };
    let (peer_px, box_px) = (at(480, 180), at(300, 100));
    eprintln!(
        "RTMP: {n} frames, peer tile {peer_px:?}, box tile's right edge {box_px:?}, \
         440 Hz {:.1} dBFS, 1200 Hz {:.1} dBFS",
        d.tone_db(440.0),
        d.tone_db(1200.0)
    );
    assert!(n >= 100, "only {n} frames in 8 s");
    assert!(is_orange(peer_px), "the peer's tile is {peer_px:?}");
    // The camera's SMPTE bars squeezed into the left half end in blue at its right edge.
    assert!(
        box_px[2] > 200 && box_px[0] < 80 && box_px[1] < 80,
        "the box's tile is {box_px:?}"
    );
    assert!(d.tone_db(440.0) > -20.0, "the box's tone is missing");
    assert!(d.tone_db(1200.0) > -20.0, "the peer's tone is missing");

    // HLS: the newest whole segment, after its init segment.
    let d = decode(&hls, SIZE);
    let (peer_px, box_px) = (d.pixel(480, 180), d.pixel(300, 100));
    eprintln!(
        "HLS: {} frames, peer tile {peer_px:?}, box tile's right edge {box_px:?}, \
         440 Hz {:.1} dBFS, 1200 Hz {:.1} dBFS",
        d.frames.len(),
        d.tone_db(440.0),
        d.tone_db(1200.0)
    );
    // 1 s segments at 30 fps: HLS's keyframe requests reach the meeting's encoder (its own
    // keyframes come only every 2 s).
    assert!(
        (25..=35).contains(&d.frames.len()),
        "an HLS segment of {} frames: the keyframe requests missed the meeting's encoder",
        d.frames.len()
    );
    assert!(is_orange(peer_px), "HLS: the peer's tile is {peer_px:?}");
    assert!(
        box_px[2] > 200 && box_px[0] < 80 && box_px[1] < 80,
        "HLS: the box's tile is {box_px:?}"
    );
    assert!(d.tone_db(440.0) > -20.0, "HLS: the box's tone is missing");
    assert!(d.tone_db(1200.0) > -20.0, "HLS: the peer's tone is missing");
    drop(peer);
}

/// The HLS directory's init segment and its newest whole segment, written together to `out`.
fn hls_segment(dir: &std::path::Path, out: &std::path::Path) -> std::path::PathBuf {
    let newest = std::fs::read_dir(dir)
        .expect("the HLS directory")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u64 = name
                .strip_prefix("seg")?
                .strip_suffix(".m4s")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .max()
        .expect("a whole HLS segment");
    let mut bytes = std::fs::read(dir.join("init.mp4")).expect("init.mp4");
    bytes.extend(std::fs::read(&newest.1).expect("the segment"));
    std::fs::write(out, bytes).expect("write");
    out.to_path_buf()
}

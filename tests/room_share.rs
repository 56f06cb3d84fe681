//! The box's content share in a real Janus room: a second video stream of the box's publisher,
//! described "share", that a webrtcbin participant (not the box's WebRTC stack) sees listed
//! and decodes at the share's own size beside the camera; stopping it marks it disabled. In a
//! network namespace of its own (see `support::netns`).

mod support;

use roombox::command::Command;
use roombox::config::ShareSource;
use roombox::event::Event;
use roombox::model::StreamKind;
use std::time::Duration;
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::Peer;
use support::poll_until as eventually;

const ROOM: &str = "4545";
const WAIT: Duration = Duration::from_secs(40);
const CAMERA: (i32, i32) = (320, 240);
const SHARE: (i32, i32) = (640, 360);

#[test]
fn the_share_reaches_a_janus_subscriber_as_a_described_second_video() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config =
        support::inproc::room_config(&url, &rec, ROOM, (CAMERA.0 as u32, CAMERA.1 as u32));
    config.media.share.source = ShareSource::Test;
    (config.media.share.width, config.media.share.height) = (SHARE.0 as u32, SHARE.1 as u32);
    config.media.share.fps = 10;
    // Keyframes 20 s apart: a subscriber that had to wait for one would wait long.
    config.media.share.keyframe_interval = Duration::from_secs(20);
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    let feed = b.feed_id().expect("the box's id");
    let mut peer = Peer::join(&url, ROOM, "peer").await;

    // The box shares: its own events, then Janus tells the room of a second, described video.
    b.handle
        .send(Command::StartShare)
        .await
        .expect("start-share");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::StreamEnabled {
                kind: StreamKind::Share,
                ..
            }
        )))
        .await
    );
    assert!(b.saw(|e| matches!(
        e,
        Event::PresenterChanged {
            participant_id: Some(_)
        }
    )));
    // Janus lists a disabled stream without its description: stopped, the share is the
    // box's second video, disabled, beside its camera.
    let described = |peer: &Peer, disabled: bool| {
        peer.stats().feeds.iter().any(|f| {
            let videos: Vec<bool> = f
                .streams
                .iter()
                .filter(|(k, _)| k == "video")
                .map(|(_, d)| *d)
                .collect();
            f.id == feed
                && videos == [false, disabled]
                && (disabled || f.descriptions.contains(&("share".to_string(), false)))
        })
    };
    assert!(
        eventually(WAIT, || described(&peer, false)).await,
        "Janus never listed the box's share: {:?}",
        peer.stats().feeds
    );

    // A subscriber decodes both: the camera at its size, the share at its own. Its keyframe
    // request (Janus's PLI as it connects) reaches the share's encoder, so its first share
    // picture does not wait for the next interval.
    let asked = std::time::Instant::now();
    peer.subscribe(ROOM, &feed).await;
    let frames = |size| peer.stats().video_sizes.get(&size).copied().unwrap_or(0);
    assert!(
        eventually(WAIT, || frames(SHARE) > 0).await,
        "no share frame"
    );
    let first = asked.elapsed();
    eprintln!("the subscriber's first share frame came {first:?} after it subscribed");
    assert!(
        first < Duration::from_secs(3),
        "the first share frame waited {first:?}: the keyframe request did not reach the share"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        eventually(WAIT, || frames(SHARE) >= 20 && frames(CAMERA) >= 30).await,
        "decoded by size: {:?}",
        peer.stats().video_sizes
    );
    eprintln!("decoded by size: {:?}", peer.stats().video_sizes);

    // Stop: Janus marks the share disabled for the room; the camera goes on.
    b.handle.send(Command::StopShare).await.expect("stop-share");
    assert!(
        eventually(WAIT, || described(&peer, true)).await,
        "Janus never marked the share disabled: {:?}",
        peer.stats().feeds
    );
    assert!(b.saw(|e| matches!(
        e,
        Event::PresenterChanged {
            participant_id: None
        }
    )));
    let before = frames(CAMERA);
    assert!(
        eventually(WAIT, || frames(CAMERA) > before + 30).await,
        "the camera stopped with the share"
    );
    assert_eq!(b.state().media.restarts, 0, "the camera was restarted");
}

/// Benchmark (run by `benches/share.sh`): `start-share` to the first share frame decoded in
/// headless Chromium (janus.js, subscribed to the box in a Janus room: Janus adds the share to
/// its subscription by an update, janus.js answers it). Repeated with the share stopped between;
/// prints a markdown section.
#[test]
#[ignore = "benchmark; run benches/share.sh"]
fn bench_share_start_to_chromium() {
    support::netns::isolated_async(crate::test_name!(), bench_scenario);
}

async fn bench_scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, (1280, 720));
    config.device.name = "Share bench".into();
    config.media.share.source = ShareSource::Test;
    (config.media.share.width, config.media.share.height) = (1920, 1080);
    config.media.share.fps = 5;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;

    let opts = serde_json::json!({"janus": url, "room": ROOM.parse::<u64>().unwrap(),
        "display": "Share bench", "frames": 30, "timeoutS": 400, "shares": true});
    let mut watch = support::browser::Script::start("janus_watch.mjs", &opts);
    let first = watch.next().await;
    assert_eq!(first["phase"], "receiving", "{first:#}");
    let mut ms = Vec::new();
    let mut size = (0, 0);
    for _ in 0..7 {
        watch.send("arm").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        b.handle
            .send(Command::StartShare)
            .await
            .expect("start-share");
        let seen = watch.next().await;
        assert_eq!(seen["phase"], "share", "{seen:#}");
        ms.push(seen["t"].as_f64().unwrap_or(0.0) - t0);
        if let Some(v) = seen["stats"]["videos"]
            .as_array()
            .and_then(|v| v.iter().max_by_key(|v| v["width"].as_u64()))
        {
            size = (
                v["width"].as_u64().unwrap_or(0),
                v["height"].as_u64().unwrap_or(0),
            );
        }
        b.handle.send(Command::StopShare).await.expect("stop-share");
        assert!(
            eventually(WAIT, || b.state().media.share == "off").await,
            "the share did not stop"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    watch.finish("quit").await;
    let mut sorted = ms.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    println!("## Content share: start to the first share frame in Chromium (issue 18)\n");
    println!(
        "`start-share` (the agent's command) to the first frame of the share decoded by headless \
         Chromium (Debian's, janus.js, polling its WebRTC stats every 20 ms) subscribed to the box \
         in a Janus VideoRoom in a private network namespace: the box renegotiates its publisher \
         with the share's m-line, Janus lists it, janus.js adds it to its subscription with an \
         update and answers the new offer, and the share's first keyframe comes. Camera 1280x720@30, share {}x{}@5, release build, {} rounds with the share stopped between; `bash benches/share.sh`.\n",
        size.0,
        size.1,
        ms.len()
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| start to first share frame, median | **{median:.0} ms** | ≤ 1000 ms {} |",
        if median <= 1000.0 {
            "(met)"
        } else {
            "(missed)"
        }
    );
    println!(
        "\nRounds (ms): {:?}.\n",
        ms.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
}

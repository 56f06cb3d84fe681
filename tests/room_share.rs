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

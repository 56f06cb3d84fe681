//! The box's content share as a person in the room sees it: headless Chromium with Janus's own
//! janus.js, subscribed to the box in a Janus room, gets a second video listed by the room with
//! the description "share", decodes it at the share's size and about its frame rate beside the
//! camera, and sees it disabled once the share stops. In a network namespace of its own (see
//! `support::netns`). Needs `tests/browser/setup.sh`.

mod support;

use roombox::command::Command;
use roombox::config::ShareSource;
use serde_json::Value;
use std::time::Duration;
use support::browser::Script;
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::poll_until as eventually;

const ROOM: &str = "4747";
const WAIT: Duration = Duration::from_secs(40);
const CAMERA: (u32, u32) = (320, 240);
const SHARE: (u64, u64) = (640, 360);
const SHARE_FPS: u32 = 10;

#[test]
fn chromium_gets_the_share_as_a_second_video_described_share_until_it_stops() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

/// Asks the page for the publisher's streams and its stats until `done` holds (30 s at most);
/// returns the last answer.
async fn streams_until(watch: &mut Script, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        watch.send("streams").await;
        let r = watch.next().await;
        assert_eq!(r["phase"], "streams", "{r:#}");
        if done(&r) || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The room's listing of the box's share: a video stream described "share".
fn share_stream(r: &Value) -> Option<&Value> {
    r["streams"]
        .as_array()?
        .iter()
        .find(|s| s["type"] == "video" && s["description"] == "share")
}

/// The decoded video at the share's size, as Chromium's stats say.
fn share_video(r: &Value) -> Option<&Value> {
    r["stats"]["videos"]
        .as_array()?
        .iter()
        .find(|v| (v["width"].as_u64(), v["height"].as_u64()) == (Some(SHARE.0), Some(SHARE.1)))
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, CAMERA);
    config.device.name = "Share watch".into();
    config.media.share.source = ShareSource::Test;
    (config.media.share.width, config.media.share.height) = (SHARE.0 as u32, SHARE.1 as u32);
    config.media.share.fps = SHARE_FPS;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;

    let opts = serde_json::json!({"janus": url, "room": ROOM.parse::<u64>().unwrap(),
        "display": "Share watch", "frames": 30, "timeoutS": 150, "shares": true});
    let mut watch = Script::start("janus_watch.mjs", &opts);
    let first = watch.next().await;
    assert_eq!(first["phase"], "receiving", "{first:#}");
    let before = streams_until(&mut watch, |_| true).await;
    assert!(
        share_stream(&before).is_none(),
        "a share listed before sharing: {before:#}"
    );

    b.handle
        .send(Command::StartShare)
        .await
        .expect("start-share");
    // Listed, decoded at its size, and at about its rate once it has run a few seconds.
    let sharing = streams_until(&mut watch, |r| {
        share_stream(r).is_some_and(|s| s["disabled"] != true)
            && share_video(r).is_some_and(|v| {
                v["frames"].as_u64().unwrap_or(0) > 3 * u64::from(SHARE_FPS)
                    && v["fps"].as_f64().unwrap_or(0.0) > 0.0
            })
    })
    .await;
    let listed = share_stream(&sharing).unwrap_or_else(|| panic!("no share listed: {sharing:#}"));
    assert_ne!(listed["disabled"], true, "{sharing:#}");
    let video = share_video(&sharing)
        .unwrap_or_else(|| panic!("no video decoded at the share's size: {sharing:#}"));
    let fps = video["fps"].as_f64().unwrap_or(0.0);
    eprintln!("Chromium decodes the share: {video}");
    assert!(
        (f64::from(SHARE_FPS) * 0.6..=f64::from(SHARE_FPS) * 1.4).contains(&fps),
        "the share decodes at {fps} fps, not about {SHARE_FPS}: {sharing:#}"
    );
    let cameras = sharing["stats"]["videos"]
        .as_array()
        .map(|v| v.len())
        .unwrap_or(0);
    assert_eq!(cameras, 2, "the camera and the share: {sharing:#}");

    b.handle.send(Command::StopShare).await.expect("stop-share");
    assert!(
        eventually(WAIT, || b.state().media.share == "off").await,
        "the share did not stop"
    );
    // The share's m-line stays, disabled (Janus keeps the mid for the next share).
    let mid = listed["mid"].clone();
    let by_mid = |r: &Value| -> Option<Value> {
        r["streams"]
            .as_array()?
            .iter()
            .find(|s| s["mid"] == mid)
            .cloned()
    };
    let stopped = streams_until(&mut watch, |r| {
        by_mid(r).is_some_and(|s| s["disabled"] == true)
    })
    .await;
    assert!(
        by_mid(&stopped).is_some_and(|s| s["disabled"] == true),
        "the room still lists the share (mid {mid}) as live: {stopped:#}"
    );
    watch.finish("quit").await;
}

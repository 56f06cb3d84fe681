//! A remote participant's share on the box's screen, in a real Janus room: a person with
//! janus.js in headless Chromium publishes a camera and a screen (getDisplayMedia; Chromium's
//! fake capture stands in for both: its screen a green picture, its camera a blue one made by
//! GStreamer) described "screen". The box
//! reports them as presenter, and its screen (the playback's compositor, written frame by frame
//! to files through `multifilesink` for the test) shows the share as the main picture with the
//! camera in a strip below; when the share stops, the camera alone fills the screen again. The
//! box records the meeting meanwhile: there too the share is the large tile. And a presenter
//! whose video is VP8, which the box cannot decode: tiles saying so, where the share and the
//! camera would be, and playback running on. In a network namespace of its own (see
//! `support::netns`). Needs `tests/browser/setup.sh`.

mod support;

use roombox::event::Event;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::browser::Script;
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::poll_until as eventually;

const ROOM: &str = "4545";
const WAIT: Duration = Duration::from_secs(40);
/// The box's screen.
const SCREEN: (usize, usize) = (640, 360);

#[test]
fn a_remote_share_fills_the_screen_with_the_cameras_in_a_strip() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

#[test]
fn a_share_in_a_codec_the_box_cannot_decode_is_a_tile_saying_so() {
    support::netns::isolated_async(crate::test_name!(), vp8_scenario);
}

/// The placeholder tile's dark slate (0x2b3440) in I420: Y about 60, U 135, V 123.
fn slate((y, u, v): (f64, f64, f64)) -> bool {
    (45.0..80.0).contains(&y) && (u - 135.0).abs() < 10.0 && (v - 123.0).abs() < 10.0
}

/// The brightest luma over the rectangle (the tile's words).
fn max_luma(frame: &[u8], (x, y, w, h): (usize, usize, usize, usize)) -> u8 {
    (y..y + h)
        .flat_map(|r| (x..x + w).map(move |c| frame[r * SCREEN.0 + c]))
        .max()
        .unwrap_or(0)
}

async fn vp8_scenario() {
    const VP8_ROOM: u64 = 4848;
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let screen = tmp.path().join("screen");
    std::fs::create_dir_all(&screen).unwrap();
    let mut sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    sc.rooms.push(support::janus::StaticRoom {
        id: VP8_ROOM,
        description: "vp8 and h264".into(),
        secret: String::new(),
        pin: String::new(),
        publishers: 6,
        videocodec: "h264,vp8".into(),
    });
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, &VP8_ROOM.to_string(), (320, 180));
    config.room.playback.video_sink = format!(
        "multifilesink location={}/f%06d.i420 max-files=4",
        screen.display()
    );
    (config.room.playback.width, config.room.playback.height) = (SCREEN.0 as u32, SCREEN.1 as u32);
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    let opts = serde_json::json!({"janus": url, "room": VP8_ROOM, "display": "Ana",
        "videocodec": "vp8", "audio": true, "timeoutS": 90});
    let mut presenter = Script::start("janus_present.mjs", &opts);
    let sharing = presenter.next().await;
    assert_eq!(sharing["phase"], "sharing", "{sharing:#}");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::PresenterChanged {
                participant_id: Some(_)
            }
        )))
        .await,
        "no presenter-changed"
    );
    // The share's tile as the main picture (480x270 above the strip), the camera's in the strip.
    let (main_corner, words, strip_tile) =
        ((100, 20, 80, 40), (90, 110, 460, 50), (270, 290, 100, 50));
    let shown = eventually(WAIT, || {
        newest_frame(&screen).is_some_and(|f| {
            slate(mean_yuv(&f, main_corner))
                && max_luma(&f, words) > 150
                && slate(mean_yuv(&f, strip_tile))
        })
    })
    .await;
    let f = newest_frame(&screen).expect("a frame of the screen");
    assert!(
        shown,
        "no tiles saying the VP8 video cannot be shown: main {:?}, words {}, strip {:?}",
        mean_yuv(&f, main_corner),
        max_luma(&f, words),
        mean_yuv(&f, strip_tile)
    );
    // Playback runs on: the screen keeps writing frames.
    let count = || std::fs::read_dir(&screen).map(|d| d.count()).unwrap_or(0);
    let newest = || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&screen)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files.pop()
    };
    let before = newest();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(count() > 0 && newest() != before, "the screen stopped");
    presenter.finish("leave").await;
}

/// The newest whole frame the screen wrote (I420), as (Y, U, V) planes' means over the
/// rectangle `(x, y, w, h)`.
fn mean_yuv(frame: &[u8], (x, y, w, h): (usize, usize, usize, usize)) -> (f64, f64, f64) {
    let (sw, sh) = SCREEN;
    let luma = &frame[..sw * sh];
    let u = &frame[sw * sh..sw * sh + sw * sh / 4];
    let v = &frame[sw * sh + sw * sh / 4..];
    let (mut sy, mut su, mut sv, mut n, mut nc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for r in y..y + h {
        for c in x..x + w {
            sy += luma[r * sw + c] as f64;
            n += 1.0;
            if r % 2 == 0 && c % 2 == 0 {
                su += u[(r / 2) * (sw / 2) + c / 2] as f64;
                sv += v[(r / 2) * (sw / 2) + c / 2] as f64;
                nc += 1.0;
            }
        }
    }
    (sy / n, su / nc, sv / nc)
}

/// The newest complete frame in `dir` (multifilesink writes the next while the test reads).
fn newest_frame(dir: &Path) -> Option<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let size = SCREEN.0 * SCREEN.1 * 3 / 2;
    files
        .iter()
        .rev()
        .filter_map(|f| std::fs::read(f).ok())
        .find(|b| b.len() == size)
}

/// Chromium's fake screen: green (about RGB 0,135,0): chroma well below neutral on both axes.
fn green((_, u, v): (f64, f64, f64)) -> bool {
    u < 110.0 && v < 110.0
}

/// The camera's picture: videotestsrc's blue, chroma U high and V low.
fn blue((_, u, v): (f64, f64, f64)) -> bool {
    u > 180.0 && v < 140.0
}

/// A blue picture for Chromium's fake camera, made with GStreamer's own elements.
fn blue_camera(path: &Path) {
    let ok = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "pattern=blue", "num-buffers=30", "!"])
        .args([
            "video/x-raw,format=I420,width=320,height=240,framerate=15/1",
            "!",
        ])
        .args(["y4menc", "!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("run gst-launch-1.0");
    assert!(ok.success(), "the camera's picture was not made");
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let screen = tmp.path().join("screen");
    std::fs::create_dir_all(&screen).unwrap();
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = support::inproc::room_config(&url, &rec, ROOM, (320, 180));
    config.room.playback.video_sink = format!(
        "multifilesink location={}/f%06d.i420 max-files=4",
        screen.display()
    );
    (config.room.playback.width, config.room.playback.height) = (SCREEN.0 as u32, SCREEN.1 as u32);
    config.recording.source = roombox::model::OutputSource::Meeting;
    config.recording.segment = Duration::from_secs(2);
    config.recording.dir = tmp.path().join("recordings");
    config.recording.min_free_mb = 0;
    config.recording.stop_free_mb = 0;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    b.handle
        .send(roombox::command::Command::StartRecording {
            target: roombox::model::RecordingTarget::Local,
        })
        .await
        .expect("start-recording");

    let camera = tmp.path().join("camera.y4m");
    blue_camera(&camera);
    let opts = serde_json::json!({"janus": url, "room": ROOM.parse::<u64>().unwrap(), "display": "Ana",
        "camera": camera, "timeoutS": 120});
    let mut presenter = Script::start("janus_present.mjs", &opts);
    let sharing = presenter.next().await;
    assert_eq!(sharing["phase"], "sharing", "{sharing:#}");

    // The box names the presenter.
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::PresenterChanged {
                participant_id: Some(_)
            }
        )))
        .await,
        "no presenter-changed"
    );
    // The screen: the share (green) in the main area at 16:9 (480x270, centred, above a
    // 90-pixel strip); the camera (blue) in the strip; the strip's sides black.
    let (main, strip_tile, strip_side) =
        ((200, 60, 240, 150), (270, 280, 100, 70), (10, 280, 100, 70));
    let shown = eventually(WAIT, || {
        newest_frame(&screen)
            .is_some_and(|f| green(mean_yuv(&f, main)) && blue(mean_yuv(&f, strip_tile)))
    })
    .await;
    let f = newest_frame(&screen).expect("a frame of the screen");
    assert!(
        shown,
        "the share is not the main picture: main {:?}, strip tile {:?}, strip side {:?}",
        mean_yuv(&f, main),
        mean_yuv(&f, strip_tile),
        mean_yuv(&f, strip_side)
    );
    assert!(
        mean_yuv(&f, strip_side).0 < 24.0,
        "the strip's side is not black: {:?}",
        mean_yuv(&f, strip_side)
    );

    // The meeting's recording (320x180): the share in the large tile (320x144), the cameras in
    // the strip below.
    let closed = || b.segments_closed();
    let target = closed().len() + 2;
    assert!(
        eventually(WAIT, || closed().len() >= target).await,
        "the meeting's recording closed no segment"
    );
    let d = support::decoded::decode(&closed()[target - 1], (320, 180));
    let big = d.pixel(160, 70);
    eprintln!("the meeting's large tile while Ana shares: {big:?}");
    let [r, g, b_] = big;
    assert!(
        g > r.saturating_add(60) && g > b_.saturating_add(60),
        "the meeting's large tile is not Ana's green share: {big:?}"
    );

    // The share stops: the presenter is gone, and the camera alone fills the screen.
    presenter.send("stop").await;
    let stopped = presenter.next().await;
    assert_eq!(stopped["phase"], "stopped", "{stopped:#}");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::PresenterChanged {
                participant_id: None
            }
        )))
        .await,
        "the presenter was not cleared"
    );
    let back = eventually(WAIT, || {
        newest_frame(&screen)
            .is_some_and(|f| blue(mean_yuv(&f, main)) && blue(mean_yuv(&f, strip_side)))
    })
    .await;
    let f = newest_frame(&screen).expect("a frame");
    assert!(
        back,
        "the camera did not fill the screen again: main {:?}, corner {:?}",
        mean_yuv(&f, main),
        mean_yuv(&f, strip_side)
    );
    presenter.finish("leave").await;
}

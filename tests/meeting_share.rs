//! The meeting feed with a share in it, and pictures that keep their aspect: the box, in a real
//! Janus room with a webrtcbin peer (a solid orange 4:3 picture), records the meeting.
//! - In the grid, each picture keeps its aspect in its tile: the box's 16:9 camera and the
//!   peer's 4:3 picture both have black bars in their 320x360 tiles.
//! - The box starts sharing (the test pattern: a white ball on black): the share takes the
//!   large tile and the two cameras move to a strip below it, labelled as before.
//! - The share stops: back to the grid.
//!
//! And a running recording switched between the room's picture and the meeting's by
//! `set-output-source`, without stopping.
//!
//! In a network namespace of its own (see `support::netns`).

mod support;

use roombox::command::Command;
use roombox::config::ShareSource;
use roombox::event::Event;
use roombox::model::{OutputSource, RecordingTarget, StreamKind};
use std::path::PathBuf;
use std::time::Duration;
use support::decoded::{decode, is_orange, Decoded};
use support::inproc::InProcBox as Box_;
use support::janus::{JanusProcess, ServerConfig};
use support::peer::{Peer, PeerOptions};
use support::poll_until as eventually;

const ROOM: &str = "4545";
const WAIT: Duration = Duration::from_secs(40);
/// The box's picture, and so the meeting's.
const SIZE: (u32, u32) = (640, 360);
const ORANGE: u32 = 0xffff_8000;

#[test]
fn a_share_takes_the_large_tile_of_the_meeting_and_pictures_keep_their_aspect() {
    support::netns::isolated_async(crate::test_name!(), scenario);
}

fn closed(b: &Box_) -> Vec<PathBuf> {
    b.segments_closed()
}

/// Skips `n` segments closed from now on and decodes the one after them.
async fn segment_after(b: &Box_, n: usize) -> Decoded {
    let target = closed(b).len() + n + 1;
    assert!(
        eventually(WAIT, || closed(b).len() >= target).await,
        "no segment closed"
    );
    let path = closed(b)[target - 1].clone();
    eprintln!("decoding {path:?}");
    decode(&path, SIZE)
}

fn black([r, g, b]: [u8; 3]) -> bool {
    r < 40 && g < 40 && b < 40
}

fn white([r, g, b]: [u8; 3]) -> bool {
    r > 180 && g > 180 && b > 180
}

/// The share of the middle frame's pixels, sampled every 16 px over `(x, y, w, h)`, that `is`.
fn share_of(d: &Decoded, (x0, y0, w, h): (u32, u32, u32, u32), is: fn([u8; 3]) -> bool) -> f64 {
    let mut n = 0;
    let mut yes = 0;
    for y in (y0..y0 + h).step_by(16) {
        for x in (x0..x0 + w).step_by(16) {
            n += 1;
            yes += usize::from(is(d.pixel(x, y)));
        }
    }
    yes as f64 / n.max(1) as f64
}

#[test]
fn a_running_recording_switches_between_the_room_and_the_meeting_without_stopping() {
    support::netns::isolated_async(crate::test_name!(), switching);
}

/// The box's config for these tests, recording into `tmp`.
fn config(url: &str, tmp: &std::path::Path) -> roombox::config::Config {
    let mut config = support::inproc::room_config(url, &tmp.join("rec"), ROOM, SIZE);
    config.recording.segment = Duration::from_secs(2);
    config.recording.dir = tmp.join("recordings");
    config.recording.min_free_mb = 0;
    config.recording.stop_free_mb = 0;
    config
}

async fn switching() {
    use roombox::model::{OutputKind, ServiceState};
    let tmp = tempfile::tempdir().expect("tempdir");
    let sc = ServerConfig::new("127.0.0.1", tmp.path().join("rec")).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let config = config(&url, tmp.path());
    assert_eq!(config.recording.source, OutputSource::Room);
    let b = Box_::start(&config);
    b.join().await;
    let opts = PeerOptions {
        colour: Some(ORANGE),
        ..PeerOptions::default()
    };
    let peer = Peer::join_with(&url, ROOM, "Orange", opts).await;
    b.lists(&peer.id).await;
    b.handle
        .send(Command::StartRecording {
            target: RecordingTarget::Local,
        })
        .await
        .expect("start-recording");
    let started = std::time::Instant::now();
    // The room's own picture: the camera's bars across the whole width, no peer.
    let d = segment_after(&b, 1).await;
    let (left, right) = (d.pixel(20, 150), d.pixel(480, 180));
    eprintln!("room: {left:?} .. {right:?}");
    assert!(
        white(left) && !is_orange(right),
        "not the camera alone: {left:?} {right:?}"
    );

    let set = |source| Command::SetOutputSource {
        output: OutputKind::Recording,
        name: None,
        source,
    };
    b.handle
        .send(set(OutputSource::Meeting))
        .await
        .expect("set-output-source");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::OutputSourceChanged {
                source: OutputSource::Meeting,
                ..
            }
        )))
        .await,
        "no output-source-changed"
    );
    // Segments are written a keyframe interval late, and the new picture's first keyframe
    // ends the one being written: the second to close after the switch is the meeting's.
    let d = segment_after(&b, 2).await;
    let right = d.pixel(480, 180);
    eprintln!("meeting: peer's tile {right:?}");
    assert!(
        is_orange(right),
        "the recording did not switch to the meeting: {right:?}"
    );
    assert_eq!(b.state().recording.source, OutputSource::Meeting);

    b.handle
        .send(set(OutputSource::Room))
        .await
        .expect("set-output-source");
    let d = segment_after(&b, 2).await;
    let (left, right) = (d.pixel(20, 150), d.pixel(480, 180));
    eprintln!("room again: {left:?} .. {right:?}");
    assert!(
        white(left) && !is_orange(right),
        "not back to the room: {left:?} {right:?}"
    );
    // It never stopped: started once, and no segment lost between the switches.
    let states: Vec<ServiceState> = b
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::RecordingStateChanged { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [ServiceState::Starting, ServiceState::Started],
        "the recording restarted"
    );
    let elapsed = started.elapsed();
    let recorded: Duration = closed(&b)
        .iter()
        .map(|p| {
            let length = support::agent::discover(p)
                .map(|x| x.duration)
                .unwrap_or_default();
            eprintln!("{p:?}: {length:?}");
            length
        })
        .sum();
    // All but what is still being written (up to a segment and a keyframe interval).
    assert!(
        recorded + Duration::from_secs(5) >= elapsed,
        "{recorded:?} recorded in {elapsed:?}: time was lost at a switch"
    );
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sc = ServerConfig::new("127.0.0.1", tmp.path().join("rec")).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let mut config = config(&url, tmp.path());
    config.recording.source = OutputSource::Meeting;
    config.media.share.source = ShareSource::Test;
    config.media.share.width = 640;
    config.media.share.height = 360;
    config.media.share.fps = 10;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let b = Box_::start(&config);
    b.join().await;
    // 320x240 by default: 4:3.
    let opts = PeerOptions {
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

    // The grid: the box left, the peer right, each 320x360. The box's 640x360 camera is
    // 320x180 in its tile (black above and below); the peer's 320x240 is 320x240 (black
    // bands of 60 px).
    let d = segment_after(&b, 2).await;
    let (box_top, box_mid, peer_top, peer_mid) = (
        d.pixel(160, 40),
        d.pixel(20, 150),
        d.pixel(480, 24),
        d.pixel(480, 180),
    );
    eprintln!("grid: box {box_top:?} over {box_mid:?}, peer {peer_top:?} over {peer_mid:?}");
    assert!(is_orange(peer_mid), "the peer's tile: {peer_mid:?}");
    assert!(
        white(box_mid),
        "the box's camera (its white bar): {box_mid:?}"
    );
    assert!(
        black(box_top),
        "the box's 16:9 camera was stretched to its tall tile: {box_top:?} at its top"
    );
    assert!(
        black(peer_top),
        "the peer's 4:3 picture was stretched to its tall tile: {peer_top:?} at its top"
    );

    // The box shares: the share is the large tile (640x288), the two cameras in a strip of
    // 72 px below it: the box's at x 160..320, the peer's at 320..480.
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
        .await,
        "the share did not start"
    );
    let d = segment_after(&b, 1).await;
    let big = (0, 0, 640, 270);
    let (dark, orange) = (share_of(&d, big, black), share_of(&d, big, is_orange));
    let (strip_box, strip_peer) = (d.pixel(240, 324), d.pixel(400, 324));
    eprintln!(
        "sharing: large tile {:.0} % black, {:.0} % orange; strip box {strip_box:?}, peer {strip_peer:?}",
        dark * 100.0,
        orange * 100.0
    );
    assert!(
        dark > 0.8,
        "the large tile is not the share's black pattern ({:.0} % black)",
        dark * 100.0
    );
    assert!(orange == 0.0, "the peer is still in the large tile");
    assert!(
        is_orange(strip_peer),
        "the peer is not in the strip: {strip_peer:?}"
    );
    assert!(
        !black(strip_box) && !is_orange(strip_box),
        "the box's camera is not in the strip: {strip_box:?}"
    );
    let white_anywhere = d.frames.iter().any(|f| {
        // The ball: some white in the large tile of some frame (rows 0..68 of 90).
        f.chunks(3)
            .take(160 * 68)
            .any(|p| p[0] > 200 && p[1] > 200 && p[2] > 200)
    });
    assert!(white_anywhere, "no ball: the share's frames never arrived");

    // The share stops: the grid again.
    b.handle.send(Command::StopShare).await.expect("stop-share");
    assert!(
        eventually(WAIT, || b.saw(|e| matches!(
            e,
            Event::StreamDisabled {
                kind: StreamKind::Share,
                ..
            }
        )))
        .await,
        "the share did not stop"
    );
    // The grid within a few segments: on a loaded machine the compose runs seconds behind, and
    // the segment after the stop can still be all share (seen on a 2-core CI machine building
    // beside it).
    let mut seen = Vec::new();
    for _ in 0..4 {
        let d = segment_after(&b, 0).await;
        let (peer_mid, box_mid) = (d.pixel(480, 180), d.pixel(20, 150));
        eprintln!("after the share: peer {peer_mid:?}, box {box_mid:?}");
        seen.push((peer_mid, box_mid));
        if is_orange(peer_mid) {
            assert!(white(box_mid), "the box's camera: {box_mid:?}");
            return;
        }
    }
    panic!("the grid did not come back in four segments: (peer, box) {seen:?}");
}

//! The meeting feed over RTMP: a webrtcbin participant in a Janus room publishes an orange
//! picture and a 1200 Hz tone; the box streams the meeting (`source = "meeting"`) to
//! nginx-rtmp, and the FLV nginx recorded holds both pictures in their grid places and both
//! tones. In a network namespace of its own (see `support::netns`).

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
fn an_rtmp_output_of_the_meeting_carries_both_participants() {
    support::netns::isolated_async(crate::test_name!(), scenario);
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
    // The participant's picture joins at its next keyframe (2 s apart); then some of the meeting.
    tokio::time::sleep(Duration::from_secs(8)).await;
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
    drop(peer);
}

//! Joining rooms over WebRTC with a real Janus and a webrtcbin participant, each test in a
//! network namespace of its own (see `support::netns`).

mod support;

use roombox::agent::Agent;
use roombox::command::Command;
use roombox::config::{Config, RoomBackendKind};
use roombox::event::Event;
use roombox::model::{MeetingState, RecordingTarget, ServiceState};
use roombox::room::janus::server::{JanusProcess, ServerConfig};
use roombox::room::RoomStats;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::media::TestMedia;
use support::peer::Peer;
use support::poll_until as eventually;
use tokio::sync::watch;

const ROOM: &str = "4242";
const WAIT: Duration = Duration::from_secs(40);

/// Passes the stand-in engine's notices on.
fn forward(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<roombox::media::MediaNotice>,
    tx: tokio::sync::mpsc::UnboundedSender<roombox::media::MediaNotice>,
) {
    tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            let _ = tx.send(n);
        }
    });
}

fn room_config(url: &str, rec_dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.media.video.width = 640;
    c.media.video.height = 360;
    c.device.state_dir = rec_dir.join("state");
    c.device.name = "box".into();
    c.room.backend = RoomBackendKind::Janus;
    c.room.url = url.into();
    c.room.room_id = ROOM.into();
    c.room.record_dir = rec_dir.to_path_buf();
    c.room.playback.audio_sink = "none".into();
    c.room.playback.video_sink = "none".into();
    c.room.reconnect.initial = Duration::from_millis(200);
    c.room.reconnect.max = Duration::from_secs(2);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

struct Box_ {
    handle: roombox::agent::AgentHandle,
    events: Arc<Mutex<Vec<Event>>>,
    stats: watch::Receiver<RoomStats>,
}

impl Box_ {
    fn start(config: &Config) -> Box_ {
        // The engine expects GStreamer initialised, as run.rs does.
        gstreamer::init().expect("gstreamer");
        let (notices_tx, notices) = tokio::sync::mpsc::unbounded_channel();
        let media: Box<dyn roombox::media::MediaControl> =
            if std::env::var_os("ROOMBOX_TEST_MEDIA").is_some() {
                let (m, rx) = TestMedia::new(640, 360, 30);
                forward(rx, notices_tx);
                Box::new(m)
            } else {
                Box::new(roombox::media::engine::Engine::spawn(
                    config.clone(),
                    notices_tx,
                ))
            };
        let (handle, mut agent) = Agent::new(config, None, media, notices);
        let link = roombox::room::spawn(config).expect("a janus backend is configured");
        let stats = link.stats.clone();
        agent.attach_room(link);
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut rx = handle.subscribe();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                sink.lock().unwrap().push(e);
            }
        });
        tokio::spawn(agent.run(None));
        Box_ {
            handle,
            events,
            stats,
        }
    }

    fn state(&self) -> roombox::agent::state::AgentState {
        self.handle.state().borrow().clone()
    }

    fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.lock().unwrap().iter().any(f)
    }

    fn clear_events(&self) {
        self.events.lock().unwrap().clear();
    }

    /// The server id of the last join.
    fn feed_id(&self) -> Option<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::MeetingJoined { participant_id, .. } => Some(participant_id.clone()),
                _ => None,
            })
    }

    fn remote(&self, id: &str) -> roombox::room::RemoteStats {
        self.stats
            .borrow()
            .participants
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
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
    support::netns::isolated("box_and_webrtcbin_peer_meet_in_janus", || {
        support::init_logs();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(scenario());
    });
}

async fn scenario() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let mut janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let config = room_config(&url, &rec);
    let b = Box_::start(&config);

    // Join.
    b.handle
        .send(Command::Join {
            room_id: None,
            display_name: None,
            metadata: None,
            mic: None,
            webcam: None,
            mode: None,
        })
        .await
        .expect("join accepted");
    assert!(
        connected(&b).await,
        "the box did not connect: {:?}",
        b.state().meeting_state
    );
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
    support::netns::isolated("bench_room_join", || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(bench_join());
    });
}

async fn bench_join() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    let sc = ServerConfig::new("127.0.0.1", rec.clone()).expect("port");
    let url = sc.url();
    let _janus =
        JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20)).expect("janus");
    let config = room_config(&url, &rec);
    let b = Box_::start(&config);
    let mut times = Vec::new();
    for _ in 0..5 {
        b.clear_events();
        let t0 = std::time::Instant::now();
        b.handle
            .send(Command::Join {
                room_id: None,
                display_name: None,
                metadata: None,
                mic: None,
                webcam: None,
                mode: None,
            })
            .await
            .expect("join");
        assert!(eventually(WAIT, || b.feed_id().is_some()).await);
        let feed = b.feed_id().expect("feed");
        let mut peer = Peer::join(&url, ROOM, "viewer").await;
        peer.subscribe(ROOM, &feed).await;
        assert!(eventually(WAIT, || peer.stats().video_frames > 0).await);
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        peer.leave().await;
        b.handle.send(Command::Leave).await.expect("leave");
        assert!(eventually(WAIT, || b.state().meeting_state == MeetingState::Closed).await);
    }
    times.sort_by(f64::total_cmp);
    println!("\n## Room join (Janus VideoRoom in a private network namespace)\n");
    println!(
        "Join command to the first frame of the box's video decoded by a webrtcbin subscriber"
    );
    println!("(includes the subscriber's own Janus join, publish and subscription), 5 joins:\n");
    println!("| median | min | max | target |\n|---|---|---|---|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} ms | ≤ 1000 ms |",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

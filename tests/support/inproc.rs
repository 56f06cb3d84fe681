//! The box in-process for room tests: the agent with a room session and the real media engine
//! (or, with `ROOMBOX_TEST_MEDIA` set, the synthetic `roombox::media::sim::SimMedia`), its events
//! recorded, and the room session's receive counters at hand.

use super::poll_until;
use roombox::agent::state::AgentState;
use roombox::agent::{Agent, AgentHandle};
use roombox::command::Command;
use roombox::config::{Config, RoomBackendKind};
use roombox::event::Event;
use roombox::model::MeetingState;
use roombox::room::{RemoteStats, RoomLink, RoomStats};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long the helpers below wait for the room.
const WAIT: Duration = Duration::from_secs(40);

/// A config for a box in `room` on the Janus at `url`, at `size`, playing nothing, with its
/// state and recordings under `dir` and a quick rejoin.
pub fn room_config(url: &str, dir: &std::path::Path, room: &str, size: (u32, u32)) -> Config {
    let mut c = Config::default();
    (c.media.video.width, c.media.video.height) = size;
    c.device.state_dir = dir.join("state");
    c.device.name = "box".into();
    c.room.backend = RoomBackendKind::Janus;
    c.room.url = url.into();
    c.room.room_id = room.into();
    c.room.record_dir = dir.to_path_buf();
    c.room.playback.audio_sink = "none".into();
    c.room.playback.video_sink = "none".into();
    c.room.reconnect.initial = Duration::from_millis(200);
    c.room.reconnect.max = Duration::from_secs(1);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

/// `join` with everything from the config.
pub fn join_cmd() -> Command {
    Command::Join {
        room_id: None,
        display_name: None,
        metadata: None,
        mic: None,
        webcam: None,
        mode: None,
    }
}

/// The box, running on the test's tokio runtime.
pub struct InProcBox {
    /// The agent.
    pub handle: AgentHandle,
    /// Every event so far.
    pub events: Arc<Mutex<Vec<Event>>>,
    /// What the room session received from each participant.
    pub stats: watch::Receiver<RoomStats>,
}

impl InProcBox {
    /// The box with the room session `config` names.
    pub fn start(config: &Config) -> InProcBox {
        let link = roombox::room::spawn(config).expect("a janus backend is configured");
        Self::start_with(config, link)
    }

    /// The box with a room session of the test's choosing.
    pub fn start_with(config: &Config, room: RoomLink) -> InProcBox {
        // The engine expects GStreamer initialised, as run.rs does.
        gstreamer::init().expect("gstreamer");
        let (notices_tx, notices) = tokio::sync::mpsc::unbounded_channel();
        let media: Box<dyn roombox::media::MediaControl> =
            if std::env::var_os("ROOMBOX_TEST_MEDIA").is_some() {
                stand_in(config, notices_tx)
            } else {
                Box::new(roombox::media::engine::Engine::spawn(
                    config.clone(),
                    notices_tx,
                ))
            };
        let (handle, mut agent) = Agent::new(config, None, media, notices);
        let stats = room.stats.clone();
        agent.attach_room(room);
        // No HTTP server runs in-process: with `[http]` on, HLS is written for one all the
        // same, and tests read its files from the disk.
        if config.http.enabled {
            agent.set_http_base(Some(format!(
                "http://{}:{}",
                config.http.bind, config.http.port
            )));
        }
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut rx = handle.subscribe();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                sink.lock().unwrap().push(e);
            }
        });
        tokio::spawn(agent.run(None));
        InProcBox {
            handle,
            events,
            stats,
        }
    }

    /// Serves the box's HTTP front door (`[http]`, on the port `config` names) for as long as
    /// the test runs; returns its base URL.
    pub async fn serve_http(&self, config: &Config) -> String {
        let server = roombox::http::bind(config, self.handle.clone())
            .await
            .expect("the HTTP server binds")
            .expect("[http] is on");
        let base = roombox::http::base_url(&config.http, server.addr);
        tokio::spawn(server.serve());
        base
    }

    /// The recording's segments closed so far, in order.
    pub fn segments_closed(&self) -> Vec<std::path::PathBuf> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::RecordingSegmentClosed { path, .. } => Some(path.into()),
                _ => None,
            })
            .collect()
    }

    /// The agent's state now.
    pub fn state(&self) -> AgentState {
        self.handle.state().borrow().clone()
    }

    /// True if an event so far matches `f`.
    pub fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.lock().unwrap().iter().any(f)
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Forgets the events so far.
    pub fn clear_events(&self) {
        self.events.lock().unwrap().clear();
    }

    /// The server's id for the box in its last join.
    pub fn feed_id(&self) -> Option<String> {
        self.events().into_iter().rev().find_map(|e| match e {
            Event::MeetingJoined { participant_id, .. } => Some(participant_id),
            _ => None,
        })
    }

    /// What the box received from participant `id`.
    pub fn remote(&self, id: &str) -> RemoteStats {
        self.stats
            .borrow()
            .participants
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Video frames the box decoded from participant `id`.
    pub fn frames_from(&self, id: &str) -> u64 {
        self.remote(id).video_frames
    }

    /// Joins the configured room and waits for CONNECTED.
    pub async fn join(&self) {
        self.handle.send(join_cmd()).await.expect("join accepted");
        assert!(
            poll_until(WAIT, || self.state().meeting_state
                == MeetingState::Connected)
            .await,
            "the box did not connect: {:?}",
            self.state().meeting_state
        );
        // meeting-joined follows CONNECTED: the box's id is known once it is seen.
        assert!(
            poll_until(WAIT, || self.feed_id().is_some()).await,
            "no meeting-joined after CONNECTED"
        );
    }

    /// Waits until the box lists participant `id`.
    pub async fn lists(&self, id: &str) {
        assert!(
            poll_until(WAIT, || self.state().participants.contains_key(id)).await,
            "the box never listed participant {id}"
        );
    }
}

/// The synthetic engine `ROOMBOX_TEST_MEDIA` asks for.
#[cfg(feature = "test-util")]
fn stand_in(
    config: &Config,
    notices: tokio::sync::mpsc::UnboundedSender<roombox::media::MediaNotice>,
) -> Box<dyn roombox::media::MediaControl> {
    Box::new(roombox::media::sim::SimMedia::encoding(config, notices))
}

/// Without the `test-util` feature the library has no synthetic engine to give.
#[cfg(not(feature = "test-util"))]
fn stand_in(
    _: &Config,
    _: tokio::sync::mpsc::UnboundedSender<roombox::media::MediaNotice>,
) -> Box<dyn roombox::media::MediaControl> {
    panic!("ROOMBOX_TEST_MEDIA needs the synthetic engine: run with `--features test-util`")
}

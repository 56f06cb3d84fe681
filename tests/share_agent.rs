//! The content share as a person drives it: commands and a button reach the real agent and
//! engine (synthetic camera and share), and the events and state say what happened:
//! `stream-enabled`/`stream-disabled` of kind `share`, `presenter-changed`, the camera never
//! restarted. With `auto = true` the share starts by itself once the source has a signal.

use roombox::agent::{Agent, AgentHandle};
use roombox::command::Command;
use roombox::config::Config;
use roombox::controls::backend::sim::SimPanel;
use roombox::controls::{self, Button, Controls};
use roombox::event::{Event, MediaState};
use roombox::media::engine::Engine;
use roombox::model::StreamKind;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const WAIT: Duration = Duration::from_secs(30);
const ID: &str = "share-box";

struct Rig {
    agent: AgentHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    controls: Controls,
    panel: SimPanel,
    events: broadcast::Receiver<Event>,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path, share: &str) -> Config {
    let toml = format!(
        r#"
[device]
id = "{ID}"
state_dir = "{}"
[media.video]
source = "test"
width = 320
height = 240
fps = 15
bitrate_kbps = 500
min_bitrate_kbps = 100
max_bitrate_kbps = 1000
[media.audio]
source = "none"
[media.share]
source = "test"
width = 640
height = 360
fps = 10
{share}
[controls]
backend = "simulated"
long_press = "300ms"
[controls.buttons.camera]
long = "toggle-share"
"#,
        dir.display()
    );
    roombox::config::load_str("share.toml", &toml)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .config
}

async fn rig(share: &str) -> Rig {
    gstreamer::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), share);
    let (tx, notices) = mpsc::unbounded_channel();
    let engine = Engine::spawn(c.clone(), tx);
    let (agent, task) = Agent::new(&c, None, Box::new(engine), notices);
    let events = agent.subscribe();
    let task = tokio::spawn(task.run(None));
    let controls = controls::spawn(&c.controls, agent.clone()).await.unwrap();
    let panel = controls.panel().expect("the simulated backend has a panel");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !panel.connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the panel never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut state = agent.state();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| s.media.state == MediaState::Playing),
    )
    .await
    .expect("media plays")
    .unwrap();
    Rig {
        agent,
        task,
        controls,
        panel,
        events,
        _dir: dir,
    }
}

impl Rig {
    /// Waits for an event `f` accepts, failing with the events seen meanwhile.
    async fn event(&mut self, what: &str, f: impl Fn(&Event) -> bool) -> Event {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(e)) if f(&e) => return e,
                Ok(Ok(e)) => seen.push(e),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("events ended: {e}"),
                Err(_) => panic!("no {what}; saw {seen:?}"),
            }
        }
    }

    async fn shared(&mut self, on: bool) {
        let what = if on {
            "stream-enabled share"
        } else {
            "stream-disabled share"
        };
        self.event(what, |e| match e {
            Event::StreamEnabled {
                kind,
                participant_id,
                ..
            } if on => *kind == StreamKind::Share && participant_id == ID,
            Event::StreamDisabled {
                kind,
                participant_id,
                ..
            } if !on => *kind == StreamKind::Share && participant_id == ID,
            _ => false,
        })
        .await;
        let presenter = on.then(|| ID.to_string());
        self.event("presenter-changed", |e| {
            matches!(e, Event::PresenterChanged { participant_id } if *participant_id == presenter)
        })
        .await;
        // The state follows the events it was changed with.
        let want = if on { "on" } else { "off" };
        let mut state = self.agent.state();
        tokio::time::timeout(
            WAIT,
            state.wait_for(|s| s.media.share == want && s.presenter == presenter),
        )
        .await
        .unwrap_or_else(|_| panic!("the state never showed the share {want}"))
        .unwrap();
    }

    async fn stop(self) {
        let restarts = self.agent.state().borrow().media.restarts;
        assert_eq!(restarts, 0, "the camera was restarted");
        self.agent.send(Command::Restart).await.unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the agent stops")
            .unwrap()
            .unwrap();
        drop(self.controls);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_the_button_start_and_stop_the_share() {
    let mut r = rig("").await;
    assert_eq!(r.agent.state().borrow().media.share, "off");

    r.agent.send(Command::StartShare).await.unwrap();
    r.shared(true).await;
    // A second start changes nothing and is no error.
    r.agent.send(Command::StartShare).await.unwrap();
    r.agent.send(Command::StopShare).await.unwrap();
    r.shared(false).await;

    // The camera button's long press is `toggle-share` here.
    r.panel
        .press(Button::Camera, Duration::from_millis(600))
        .await;
    r.shared(true).await;
    r.panel
        .press(Button::Camera, Duration::from_millis(600))
        .await;
    r.shared(false).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_starts_the_share_when_its_source_has_a_signal() {
    let mut r = rig("auto = true").await;
    // Nothing asked: the pattern always has a signal.
    r.shared(true).await;
    r.agent.send(Command::StopShare).await.unwrap();
    r.shared(false).await;
    r.stop().await;
}

#[test]
fn roombox_check_reports_the_share_source() {
    gstreamer::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines = |share: &str| {
        let c = roombox::config::load_str(
            "share.toml",
            &format!(
                "[device]\nstate_dir = \"{}\"\n[media.video]\nsource = \"none\"\n[media.audio]\nsource = \"none\"\n[media.share]\n{share}\n",
                dir.path().display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
        .config;
        let mut out = Vec::new();
        roombox::check::environment(&c, &mut out);
        out.into_iter()
            .filter(|l| l.check == "share")
            .collect::<Vec<_>>()
    };
    let test = lines("source = \"test\"");
    assert_eq!(test.len(), 1, "{test:?}");
    assert_eq!(test[0].status, roombox::check::Status::Warning);
    assert!(test[0].detail.contains("synthetic"), "{test:?}");
    let absent =
        lines("source = \"v4l2\"\ndevice = \"/dev/v4l/by-id/usb-roombox-absent-video-index0\"");
    assert_eq!(absent.len(), 1, "{absent:?}");
    assert_eq!(absent[0].status, roombox::check::Status::Warning);
    assert!(absent[0].detail.contains("not plugged in"), "{absent:?}");
    assert!(lines("").is_empty(), "no share, no line");
}

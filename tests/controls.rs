//! Buttons and LEDs end to end on the simulated backend: an edge goes through the debouncer and
//! classifier, becomes a command, reaches a real agent driving the real media engine (synthetic
//! sources), and the agent's new state comes back onto the LEDs.

mod support;

use roombox::agent::{Agent, AgentHandle};
use roombox::command::Command;
use roombox::config::controls::{Action, BackendKind, Color, Look, Pattern};
use roombox::config::{AudioSource, Config, VideoSource};
use roombox::controls::backend::sim::SimPanel;
use roombox::controls::{self, Button, Controls};
use roombox::event::{Event, MediaState};
use roombox::media::engine::Engine;
use roombox::model::{RecordingTarget, ServiceState};
use std::time::Duration;
use tokio::sync::mpsc;

/// Generous: the machine is shared and loaded.
const WAIT: Duration = Duration::from_secs(30);

struct Rig {
    agent: AgentHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    controls: Controls,
    panel: SimPanel,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.device.state_dir = dir.to_path_buf();
    c.device.id = "controls-test".into();
    c.media.video.source = VideoSource::None;
    c.media.audio.source = AudioSource::Test;
    c.controls.backend = BackendKind::Simulated;
    // Idle dark, so "off" is a steady level rather than a blip.
    c.controls.leds.looks.idle = Look {
        color: Color::Off,
        pattern: Pattern::Off,
    };
    c
}

async fn rig(tweak: impl FnOnce(&mut Config)) -> Rig {
    gstreamer::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    tweak(&mut c);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let (tx, notices) = mpsc::unbounded_channel();
    let engine = Engine::spawn(c.clone(), tx);
    let (agent, task) = Agent::new(&c, None, Box::new(engine), notices);
    let task = tokio::spawn(task.run(None));
    let controls = controls::spawn(&c.controls, agent.clone()).await.unwrap();
    let panel = controls.panel().expect("the simulated backend has a panel");
    // The controls task attaches the panel as it starts: presses before that are refused.
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
        state.wait_for(|s| s.media.state == MediaState::Playing && s.local_participant.mic_on),
    )
    .await
    .expect("media reaches PLAYING with the mic live")
    .unwrap();
    Rig {
        agent,
        task,
        controls,
        panel,
        _dir: dir,
    }
}

impl Rig {
    /// Stops the agent cleanly, so the engine takes its pipeline down before the runtime goes.
    async fn stop(self) {
        self.agent.send(Command::Restart).await.unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the agent stops")
            .unwrap()
            .unwrap();
    }
}

async fn wait_led(panel: &SimPanel, what: &str, f: impl Fn([f64; 3]) -> bool) {
    let mut leds = panel.watch_leds();
    if tokio::time::timeout(WAIT, leds.wait_for(|l| f(*l)))
        .await
        .is_err()
    {
        panic!("LEDs never showed {what}; they are {:?}", panel.leds());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_press_mutes_the_mic_and_lights_the_red_led() {
    let r = rig(|_| {}).await;
    wait_led(&r.panel, "red off while the mic is live", |l| l[0] == 0.0).await;

    r.panel.press(Button::Mute, Duration::from_millis(60)).await;
    wait_led(&r.panel, "red on once muted", |l| l[0] == 1.0).await;
    assert!(
        !r.agent.state().borrow().local_participant.mic_on,
        "red must not light before the engine has muted"
    );
    assert_eq!(r.panel.leds(), [1.0, 0.0, 0.0], "muted is red alone");

    r.panel.press(Button::Mute, Duration::from_millis(60)).await;
    wait_led(&r.panel, "red off once unmuted", |l| l[0] == 0.0).await;
    assert!(r.agent.state().borrow().local_participant.mic_on);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_mapped_to_recording_lights_the_call_led_and_a_long_press_stops_it() {
    let r = rig(|c| {
        let join = &mut c.controls.buttons.join;
        join.short = Action(Some(Command::StartRecording {
            target: RecordingTarget::Local,
        }));
        join.long = Action(Some(Command::StopRecording {
            target: RecordingTarget::Local,
        }));
        c.controls.long_press = Duration::from_millis(400);
    })
    .await;
    r.panel.press(Button::Join, Duration::from_millis(60)).await;
    let mut state = r.agent.state();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| s.recording.state == ServiceState::Started),
    )
    .await
    .expect("a join press starts the recording")
    .unwrap();
    wait_led(&r.panel, "blue on while recording", |l| {
        l == [0.0, 0.0, 1.0]
    })
    .await;

    // Held past long_press: the long action fires while still held.
    r.panel.edge(Button::Join, true);
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| s.recording.state == ServiceState::Stopped),
    )
    .await
    .expect("a long press stops the recording")
    .unwrap();
    r.panel.edge(Button::Join, false);
    wait_led(&r.panel, "blue off once stopped", |l| l[2] == 0.0).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_bouncing_presses_while_the_agent_is_busy_run_exactly_fifty_commands() {
    let r = rig(|c| {
        c.controls.buttons.camera.short = Action(Some(Command::Identify { seconds: 1 }));
    })
    .await;
    let mut events = r.agent.subscribe();
    // Edges stamped in the past, 300 ms apart, each press bouncing on both edges: they all
    // arrive at once, far faster than the agent answers, and must queue.
    let t0 = roombox::controls::backend::mono_ns() - 60_000_000_000;
    let ms = 1_000_000;
    for i in 0..50u64 {
        let t = t0 + i * 300 * ms;
        for (dt, p) in [
            (0, true),
            (1, false),
            (2, true),
            (4, false),
            (5, true),
            (100, false),
            (101, true),
            (103, false),
            (104, true),
            (106, false),
        ] {
            assert!(r.panel.edge_at(Button::Camera, p, t + dt * ms));
        }
    }
    let mut status = r.controls.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.commands_sent >= 50))
        .await
        .expect("every press reaches the agent")
        .unwrap();
    // Every command the agent ran is one identify event; give stragglers time to show up.
    let mut identifies = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if matches!(ev, Event::Identify { .. }) {
            identifies += 1;
        }
    }
    assert_eq!(identifies, 50);
    assert_eq!(r.controls.status().borrow().commands_sent, 50);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_blinks_every_led() {
    let r = rig(|_| {}).await;
    r.agent
        .send(Command::Identify { seconds: 30 })
        .await
        .unwrap();
    wait_led(&r.panel, "white on", |l| l == [1.0; 3]).await;
    wait_led(&r.panel, "white off (blinking)", |l| l == [0.0; 3]).await;
    wait_led(&r.panel, "white on again", |l| l == [1.0; 3]).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_gpio_chip_is_a_warning_and_the_agent_carries_on() {
    gstreamer::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.controls.backend = BackendKind::Gpiocdev;
    c.controls.chip = "/dev/gpiochip-roombox-absent".into();
    c.controls.buttons.join.line = "btn-join".into();
    c.controls.leds.red.line = "led-red".into();
    c.controls.retry.initial = Duration::from_millis(20);
    c.controls.retry.max = Duration::from_millis(100);

    let lines = roombox::check::controls(&c.controls);
    assert_eq!(
        lines[0].status,
        roombox::check::Status::Warning,
        "{lines:?}"
    );
    assert!(
        lines[0].detail.contains("gpiochip-roombox-absent"),
        "{lines:?}"
    );

    let (tx, notices) = mpsc::unbounded_channel();
    let engine = Engine::spawn(c.clone(), tx);
    let (agent, task) = Agent::new(&c, None, Box::new(engine), notices);
    let task = tokio::spawn(task.run(None));
    let controls = controls::spawn(&c.controls, agent.clone()).await.unwrap();
    assert!(controls.running(), "keeps retrying in the background");
    let mut status = controls.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap();
    let err = status.borrow().last_error.clone().unwrap();
    assert!(err.contains("gpiochip-roombox-absent"), "{err}");
    assert!(!status.borrow().open);
    assert!(agent.send(Command::Ping).await.is_ok());
    let r = Rig {
        agent,
        task,
        controls,
        panel: SimPanel::new(),
        _dir: dir,
    };
    r.stop().await;
}

#[tokio::test]
async fn nothing_configured_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config {
        device: roombox::config::DeviceConfig {
            state_dir: dir.path().to_path_buf(),
            ..Default::default()
        },
        ..Default::default()
    };
    let (_tx, notices) = mpsc::unbounded_channel();
    struct Nothing;
    impl roombox::media::MediaControl for Nothing {
        fn apply(&mut self, _: roombox::media::MediaAction) {}
    }
    let (agent, _task) = Agent::new(&c, None, Box::new(Nothing), notices);
    let controls = controls::spawn(&c.controls, agent).await.unwrap();
    assert!(!controls.running());
    assert!(controls.panel().is_none());
    let lines = roombox::check::controls(&c.controls);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].status, roombox::check::Status::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keyboard_panel_presses_buttons_of_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("panel");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let body = format!(
        "{}\n[media.audio]\nsource = \"test\"\n[controls]\nbackend = \"simulated\"\npanel_input = \"{}\"\n",
        support::agent::SMALL_MEDIA,
        fifo.display()
    );
    let agent = support::agent::AgentProcess::start_in(dir, &body);
    agent
        .wait_state("mic live", WAIT, |s| {
            s["media"]["state"] == "PLAYING" && s["localParticipant"]["micOn"] == true
        })
        .await;
    let muted_shown = |log: &str| log.matches("LEDs: Some(Muted)").count();
    let before = muted_shown(&agent.log());
    // What a person types: `m` and Enter.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"m\n"))
        .unwrap();
    agent
        .wait_state("muted by the panel", WAIT, |s| {
            s["localParticipant"]["micOn"] == false
        })
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    while muted_shown(&agent.log()) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no LED change logged:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The daemon as systemd and an operator see it: notify protocol, unit file, reload, bad input,
//! a missing camera, `check` and `probe`.

mod support;

use nix::sys::signal::Signal;
use roombox::command::Command;
use roombox::event::Event;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::agent::{wait_event, AgentProcess, SMALL_MEDIA};

fn roombox() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
}

/// Runs `roombox check [extra...] --config <dir>/roombox.toml` on `body`; `{state}` in the body
/// becomes a state dir inside `dir`. Returns whether it passed and what it printed.
fn check(dir: &Path, body: &str, extra: &[&str]) -> (bool, String) {
    let cfg = dir.join("roombox.toml");
    let state = dir.join("state");
    std::fs::write(&cfg, body.replace("{state}", &state.display().to_string())).unwrap();
    let out = roombox()
        .arg("check")
        .args(extra)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/roombox.service"
    ))
    .unwrap()
    .replace("/usr/bin/roombox", env!("CARGO_BIN_EXE_roombox"));
    let path = dir.path().join("roombox.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("roombox.service"))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");

    let sec = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sec.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for roombox.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} (the README says 1.8)");
}

/// Collects sd_notify datagrams sent to a socket of our own.
struct Notify {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Notify {
    fn new() -> Notify {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notify {
            sock,
            _dir: dir,
            path,
        }
    }

    fn wait_for(&self, what: &str, timeout: Duration, seen: &mut Vec<String>) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let hit = msg.lines().any(|l| l.starts_with(what));
                seen.push(msg);
                if hit {
                    return true;
                }
            }
        }
        false
    }
}

#[test]
fn systemd_hears_ready_watchdog_status_and_stopping() {
    let notify = Notify::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roombox.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nstate_dir = \"{}\"\n{SMALL_MEDIA}",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = roombox()
        .args(["run", "--live", "false", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "10000000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    assert!(
        notify.wait_for("READY=1", Duration::from_secs(30), &mut seen),
        "{seen:?}"
    );
    assert!(
        notify.wait_for("WATCHDOG=1", Duration::from_secs(5), &mut seen),
        "{seen:?}"
    );
    assert!(
        notify.wait_for("STATUS=media PLAYING", Duration::from_secs(5), &mut seen),
        "{seen:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        notify.wait_for("STOPPING=1", Duration::from_secs(10), &mut seen),
        "{seen:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let agent = AgentProcess::start(SMALL_MEDIA);
    agent
        .wait_state("playing", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let mut events = agent.events().await;
    let original = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(
        &agent.config,
        original.replace(
            "id = \"test-box\"",
            "id = \"test-box\"\nname = \"Room 4.12\"",
        ),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    wait_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, Event::ConfigReloaded)
    })
    .await
    .expect("config-reloaded");
    assert_eq!(agent.state().await["deviceName"], "Room 4.12");

    std::fs::write(
        &agent.config,
        format!("{original}\n[media.video]\nfps = 500\n"),
    )
    .unwrap();
    assert!(agent.call(Command::ReloadConfig).await.ok);
    let ev = wait_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, Event::Error { .. })
    })
    .await
    .expect("error event");
    let Event::Error { code, message } = ev else {
        unreachable!()
    };
    assert_eq!(code, "config");
    assert!(message.contains("roombox.toml"), "{message}");
    let s = agent.state().await;
    assert_eq!(s["deviceName"], "Room 4.12", "the running config is kept");
    assert_eq!(
        s["media"]["state"], "PLAYING",
        "a name change does not restart capture"
    );
    assert_eq!(s["media"]["restarts"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_control_input_gets_a_clear_error_and_changes_nothing() {
    let agent = AgentProcess::start(SMALL_MEDIA);
    agent
        .wait_state("playing", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING"
        })
        .await;
    let before = agent.state().await;
    let mut c = agent.client().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json\n".to_vec(), "bad-json"),
        (
            b"{\"command\":\"self-destruct\"}\n".to_vec(),
            "unknown-command",
        ),
        (
            b"{\"command\":\"set-bitrate\",\"kbps\":\"lots\"}\n".to_vec(),
            "invalid-argument",
        ),
        (
            b"{\"command\":\"set-bitrate\",\"kbps\":99999999}\n".to_vec(),
            "out-of-range",
        ),
        (b"{\"command\":\"leave\"}\n".to_vec(), "unavailable"),
        (
            [vec![b'x'; 200_000], b"\n".to_vec()].concat(),
            "payload-too-large",
        ),
    ];
    for (line, code) in cases {
        let r = c.call_raw(&line).await.unwrap();
        assert!(!r.ok);
        let e = r.error.unwrap();
        assert_eq!(serde_json::to_value(e.code).unwrap(), code, "{}", e.message);
        assert!(!e.message.is_empty());
    }
    let after = agent.state().await;
    assert_eq!(before["localParticipant"], after["localParticipant"]);
    assert_eq!(before["recording"], after["recording"]);
    assert_eq!(after["media"]["state"], "PLAYING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_camera_off_show_in_state_and_events() {
    let agent = AgentProcess::start(SMALL_MEDIA);
    agent
        .wait_state("mic on", Duration::from_secs(30), |s| {
            s["localParticipant"]["micOn"] == true
        })
        .await;
    let mut events = agent.events().await;
    assert!(agent.call(Command::DisableMic).await.ok);
    wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(
            e,
            Event::StreamDisabled {
                kind: roombox::model::StreamKind::Audio,
                ..
            }
        )
    })
    .await
    .expect("stream-disabled audio");
    assert_eq!(agent.state().await["localParticipant"]["micOn"], false);
    assert!(agent.call(Command::ToggleWebcam).await.ok);
    wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(
            e,
            Event::StreamDisabled {
                kind: roombox::model::StreamKind::Video,
                ..
            }
        )
    })
    .await
    .expect("stream-disabled video");
    assert_eq!(agent.state().await["localParticipant"]["webcamOn"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_is_retried_and_the_agent_stays_up() {
    let agent = AgentProcess::start(
        "[media.video]\nsource = \"v4l2\"\ndevice = \"/dev/video-not-plugged-in\"\nwidth = 320\nheight = 180\n\n[media.restart]\ninitial = \"100ms\"\nmax = \"400ms\"\n",
    );
    let s = agent
        .wait_state("restarts", Duration::from_secs(30), |s| {
            s["media"]["restarts"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert_eq!(s["health"]["ok"], false);
    let problems = s["health"]["problems"].to_string();
    assert!(problems.contains("video-not-plugged-in"), "{problems}");
    assert!(agent.call(Command::Ping).await.ok);
    assert!(agent.call(Command::DisableMic).await.ok);
}

#[test]
fn check_reports_each_problem_with_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(
        dir.path(),
        "[media.video]\nfps = 0\nwidth = 161\n\n[recording]\nformat = \"avi\"\n",
        &[],
    );
    assert!(!ok);
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("roombox.toml:6: recording.format"), "{text}");

    let (_, json) = check(
        dir.path(),
        "[media.video]\nfps = 0\nwidth = 161\n",
        &["--output", "json"],
    );
    let lines: serde_json::Value = serde_json::from_str(&json).unwrap();
    let details: Vec<String> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(
        details.iter().any(|d| d.contains(":2: media.video.fps")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains(":3: media.video.width")),
        "{details:?}"
    );
}

#[test]
fn check_passes_a_good_config_and_names_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[device]\nstate_dir = \"{{state}}\"\n{SMALL_MEDIA}[recording]\nmin_free_mb = 0\nstop_free_mb = 0\n"
    );
    let (ok, text) = check(dir.path(), &body, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("x264enc (software) reaches PLAYING"),
        "{text}"
    );
    assert!(text.lines().all(|l| !l.starts_with("failed")), "{text}");
    // A synthetic tone and no room: nothing for the mic's processing to do, and check says so.
    assert!(
        text.contains("audio processing") && text.contains("off: no speaker"),
        "{text}"
    );
}

#[test]
fn check_says_what_the_mics_processing_runs_and_fails_a_mic_that_cannot_hear_the_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let room = "[room]\nbackend = \"janus\"\nurl = \"ws://127.0.0.1:1\"\nroom_id = \"1234\"\n[room.playback]\naudio_sink = \"filesink location=/dev/null\"\n";
    let (_, text) = check(
        dir.path(),
        &format!(
            "[device]\nstate_dir = \"{{state}}\"\n{SMALL_MEDIA}[media.audio.processing]\necho_cancel = true\nnoise_suppression = false\n{room}"
        ),
        &[],
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("failed   echo cancellation")
                && l.contains("cannot hear the speaker")),
        "{text}"
    );
    assert!(
        text.contains("echo cancellation (aec3) on the mic at 48000 Hz, 1 channel, 10 ms frames; reference: the speaker (file /dev/null) at 48000 Hz mono"),
        "{text}"
    );
}

#[test]
fn check_fails_on_a_missing_camera_and_microphone() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(
        dir.path(),
        "[device]\nstate_dir = \"{state}\"\n[media.video]\nsource = \"v4l2\"\ndevice = \"/dev/video-missing\"\n[media.audio]\nsource = \"alsa\"\ndevice = \"hw:NoSuchCard\"\n",
        &[],
    );
    assert!(!ok);
    assert!(
        text.lines()
            .any(|l| l.starts_with("failed   camera") && l.contains("/dev/video-missing")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("failed   microphone") && l.contains("hw:NoSuchCard")),
        "{text}"
    );
}

#[test]
fn probe_lists_encoders_with_what_really_works() {
    let out = roombox()
        .args(["probe", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let enc = r["encoders"].as_array().unwrap();
    let names: Vec<&str> = enc.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "v4l2h264enc", "best first");
    let x264 = enc.iter().find(|e| e["name"] == "x264enc").unwrap();
    assert_eq!(x264["works"], true);
    let v4l2 = enc.iter().find(|e| e["name"] == "v4l2h264enc").unwrap();
    assert_eq!(v4l2["works"], false);
    assert!(r["cameras"].is_array() && r["audio"].is_array() && r["gpio"].is_array());
    let processing = r["processing"].as_array().unwrap();
    assert_eq!(processing.len(), 2, "16 and 48 kHz: {processing:?}");
    assert!(processing
        .iter()
        .all(|p| p["canceller"] == "aec3" && p["cpu_percent"].as_f64().unwrap() > 0.0));
}

/// True when something holds `fifo` open for reading (a non-blocking open for writing then
/// succeeds; with no reader it fails with ENXIO).
fn fifo_has_reader(fifo: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .is_ok()
}

/// Waits until the box answers a ping under `prefix` on `broker`.
async fn answers_under(broker: &str, prefix: &str) {
    use roombox::fleet::cli::{ConnArgs, Operator, To};
    let mut op = Operator::connect(&ConnArgs {
        broker: broker.into(),
        prefix: prefix.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = op
            .request(
                &To::Device("test-box".into()),
                "ping",
                b"",
                None,
                Duration::from_millis(500),
            )
            .await
            .unwrap();
        if r.first().is_some_and(|(_, l)| l.ok) {
            return;
        }
        assert!(Instant::now() < deadline, "no answer under {prefix}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reapplies_controls_and_fleet() {
    let broker = support::mosquitto::Mosquitto::start();
    let agent = AgentProcess::start("[media.video]\nsource = \"none\"\n");
    agent
        .wait_state("playing", Duration::from_secs(30), |s| {
            s["media"]["state"] == "PLAYING" && s["fleet"].is_null()
        })
        .await;
    let fifo = agent.dir.path().join("panel");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(!fifo_has_reader(&fifo), "no panel before the reload");

    let original = std::fs::read_to_string(&agent.config).unwrap();
    let with = |prefix: &str| {
        format!(
            "{original}\n[controls]\nbackend = \"simulated\"\npanel_input = \"{}\"\n[fleet]\nbroker = \"{}\"\nprefix = \"{prefix}\"\n[fleet.reconnect]\ninitial = \"100ms\"\nmax = \"300ms\"\n",
            fifo.display(),
            broker.url()
        )
    };
    std::fs::write(&agent.config, with("rb1")).unwrap();
    agent.signal(Signal::SIGHUP);
    agent
        .wait_state("the fleet link", Duration::from_secs(20), |s| {
            s["fleet"]["state"] == "CONNECTED"
        })
        .await;
    answers_under(&broker.url(), "rb1").await;

    // The simulated panel now reads the FIFO: a press of `m` toggles the microphone.
    let mic = agent.state().await["localParticipant"]["micOn"].clone();
    assert!(fifo_has_reader(&fifo), "the panel opened its input");
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    std::io::Write::write_all(&mut w, b"m\n").unwrap();
    agent
        .wait_state("the mute press", Duration::from_secs(10), |s| {
            s["localParticipant"]["micOn"] != mic
        })
        .await;
    drop(w);

    // A changed [fleet]: the client connects again under the new prefix.
    std::fs::write(&agent.config, with("rb2")).unwrap();
    agent.signal(Signal::SIGHUP);
    answers_under(&broker.url(), "rb2").await;

    // Both sections gone: the panel lets go of its input and the fleet is off.
    std::fs::write(&agent.config, &original).unwrap();
    agent.signal(Signal::SIGHUP);
    agent
        .wait_state("the fleet to stop", Duration::from_secs(10), |s| {
            s["fleet"].is_null()
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fifo_has_reader(&fifo) {
        assert!(
            Instant::now() < deadline,
            "the old panel still reads its input"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = agent.log();
    assert!(log.contains("controls: re-applied [controls]"), "{log}");
}

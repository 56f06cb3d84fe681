//! Runs the real `roombox` binary with a config in a temp dir, and talks to it over its control
//! socket.

use roombox::api::{Client, EventStream, ReplyLine};
use roombox::command::Command;
use roombox::event::Event;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running agent process; SIGKILLed on drop if still running.
pub struct AgentProcess {
    /// The child.
    pub child: Child,
    /// Its temp dir (config, state, socket).
    pub dir: tempfile::TempDir,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its config file.
    pub config: PathBuf,
}

/// Media settings small enough for a loaded 2-core machine.
pub const SMALL_MEDIA: &str = r#"
[media.video]
width = 320
height = 180
fps = 30
keyframe_interval = "1s"
bitrate_kbps = 500
min_bitrate_kbps = 100
"#;

impl AgentProcess {
    /// Starts `roombox run` with `config_body` (state_dir and socket are set to the temp dir
    /// unless the body sets `[device]`).
    pub fn start(config_body: &str) -> AgentProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config_body)
    }

    /// Like [`start`], in a given dir.
    pub fn start_in(dir: tempfile::TempDir, config_body: &str) -> AgentProcess {
        Self::start_with_env(dir, config_body, &[])
    }

    /// Like [`start_in`], with extra environment variables (`GST_DEBUG`, ...).
    pub fn start_with_env(
        dir: tempfile::TempDir,
        config_body: &str,
        env: &[(&str, &str)],
    ) -> AgentProcess {
        let socket = dir.path().join("control.sock");
        let config = dir.path().join("roombox.toml");
        let mut body = String::new();
        if !config_body.contains("[device]") {
            body.push_str(&format!(
                "[device]\nid = \"test-box\"\nstate_dir = \"{}\"\n",
                dir.path().join("state").display()
            ));
        }
        if !config_body.contains("[http]") {
            // Tests run side by side: each its own free port.
            body.push_str("[http]\nport = 0\n");
        }
        if !config_body.contains("[control]") {
            body.push_str(&format!("[control]\nsocket = \"{}\"\n", socket.display()));
        }
        body.push_str(config_body);
        std::fs::write(&config, body).expect("write config");
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
            .args(["run", "--live", "false", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,roombox=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn roombox");
        let p = AgentProcess {
            child,
            dir,
            socket,
            config,
        };
        p.wait_for_socket();
        p
    }

    fn wait_for_socket(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent socket never appeared; log:\n{}", self.log());
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The state dir.
    /// The port its HTTP front door listens on, from its log (waits for it).
    #[allow(dead_code)]
    pub fn http_port(&self) -> u16 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if let Some(p) = log
                .lines()
                .find(|l| l.contains("http server listening"))
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no http server in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Connects a control client.
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    /// Sends one command.
    pub async fn call(&self, cmd: Command) -> ReplyLine {
        self.client().await.call(&cmd).await.expect("call")
    }

    /// The agent's state as JSON.
    pub async fn state(&self) -> serde_json::Value {
        self.call(Command::GetState).await.result.expect("state")
    }

    /// Follows events.
    pub async fn events(&self) -> EventStream {
        self.client().await.follow().await.expect("follow")
    }

    /// Polls the state until `pred` holds.
    pub async fn wait_state(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.state().await;
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; state: {s:#}\nlog:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                panic!("agent did not exit; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for an event matching `pred`, with a timeout.
pub async fn wait_event(
    events: &mut EventStream,
    timeout: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Ok(Some(ev))) if pred(&ev) => return Some(ev),
            Ok(Ok(Some(_))) => continue,
            _ => return None,
        }
    }
}

/// Files in a directory, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What GStreamer's discoverer says of a media file.
#[derive(Debug)]
pub struct Discovered {
    /// Duration.
    pub duration: Duration,
    /// Caps names of the streams (`video/x-h264`, `audio/mpeg`, `audio/x-opus`).
    pub streams: Vec<String>,
}

/// The capture stamps (system clock, ms; `ROOMBOX_TEST_STAMP`, video at least 1024 wide) of
/// every frame of an MP4 recording, in order: what a recording holds in media time, to compare
/// with the moment a test stopped or killed the agent.
pub fn mp4_frame_stamps(path: &Path) -> Result<Vec<u32>, String> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().map_err(|e| e.to_string())?;
    let desc = format!(
        "filesrc location=\"{}\" ! qtdemux name=d d.video_0 ! queue ! h264parse ! avdec_h264 \
         ! videoconvert ! video/x-raw,format=I420 ! appsink name=s sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let sink = pipeline
        .by_name("s")
        .and_then(|e| e.downcast::<gstreamer_app::AppSink>().ok())
        .ok_or("no appsink")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let pad = sink.static_pad("sink").ok_or("no sink pad")?;
    let mut stamps = Vec::new();
    let mut unread = 0;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(20)) {
        let Some(buffer) = sample.buffer() else {
            continue;
        };
        match super::peer::read_stamp(&pad, buffer) {
            Some(t) => stamps.push(t),
            None => unread += 1,
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    if stamps.is_empty() {
        return Err(format!(
            "{}: no stamped frame ({unread} frames without a stamp)",
            path.display()
        ));
    }
    Ok(stamps)
}

/// Now on the clock the stamps use (`gst::SystemClock`, monotonic, ms, 32 bits).
pub fn stamp_now() -> u32 {
    use gstreamer::prelude::*;
    let _ = gstreamer::init();
    gstreamer::SystemClock::obtain().time().mseconds() as u32
}

/// Demuxes a file with GStreamer's discoverer.
pub fn discover(path: &Path) -> Result<Discovered, String> {
    use gstreamer_pbutils::prelude::*;
    gstreamer::init().map_err(|e| e.to_string())?;
    let d = gstreamer_pbutils::Discoverer::new(gstreamer::ClockTime::from_seconds(20))
        .map_err(|e| e.to_string())?;
    let uri = format!(
        "file://{}",
        path.canonicalize().map_err(|e| e.to_string())?.display()
    );
    let info = d
        .discover_uri(&uri)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let streams = info
        .stream_list()
        .iter()
        .filter_map(|s| s.caps())
        .filter_map(|c| c.structure(0).map(|s| s.name().to_string()))
        .filter(|n| n.starts_with("video/") || n.starts_with("audio/"))
        .collect();
    Ok(Discovered {
        duration: Duration::from_nanos(info.duration().map(|d| d.nseconds()).unwrap_or(0)),
        streams,
    })
}

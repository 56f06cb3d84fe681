//! Headless Chromium stepped from a test: `tests/browser/drive.mjs` (playwright-core, Debian's
//! chromium), one JSON request and reply a line. Killed on drop.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// A running driver.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Browser {
    /// Starts Chromium; panics with the fix when its npm packages or Chromium are missing.
    pub async fn start() -> Browser {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir()
                && std::path::Path::new("/usr/bin/chromium").exists(),
            "the browser tests need Chromium and playwright-core: run tests/browser/setup.sh"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("drive.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one request and returns the reply, whether ok or not.
    pub async fn try_call(&mut self, req: Value) -> Value {
        let mut line = serde_json::to_vec(&req).expect("json");
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .expect("write to the driver");
        let reply = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("the driver did not answer {req} within 60 s"))
            .expect("read the driver")
            .unwrap_or_else(|| panic!("the driver exited during {req}"));
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("driver said {reply:?}: {e}"))
    }

    /// Sends one request; panics with the page's log when it failed.
    pub async fn call(&mut self, req: Value) -> Value {
        let r = self.try_call(req.clone()).await;
        assert_eq!(r["ok"], true, "browser: {req} failed: {r:#}");
        r
    }

    /// Opens `url` in a page named `page` at `w`x`h`, waiting for its first snapshot.
    pub async fn open(&mut self, page: &str, url: &str, (w, h): (u32, u32)) -> Value {
        let r = self
            .call(json!({"op": "open", "page": page, "url": url, "width": w, "height": h}))
            .await;
        assert_eq!(r["status"], 200, "{url}: {r}");
        r
    }

    /// Clicks `selector`.
    pub async fn click(&mut self, page: &str, selector: &str) {
        self.call(json!({"op": "click", "page": page, "selector": selector}))
            .await;
    }

    /// Types `value` into `selector`.
    pub async fn fill(&mut self, page: &str, selector: &str, value: &str) {
        self.call(json!({"op": "fill", "page": page, "selector": selector, "value": value}))
            .await;
    }

    /// Waits until an element matching `selector` containing `text` is visible.
    pub async fn wait_text(&mut self, page: &str, selector: &str, text: &str) {
        self.call(json!({"op": "waitFor", "page": page, "selector": selector, "text": text, "timeout": 20000}))
            .await;
    }

    /// Waits until `selector`'s `attr` is `value`.
    pub async fn wait_attr(&mut self, page: &str, selector: &str, attr: &str, value: &str) {
        self.call(json!({"op": "waitAttr", "page": page, "selector": selector, "attr": attr, "value": value, "timeout": 20000}))
            .await;
    }

    /// Evaluates JavaScript in the page and returns its value.
    pub async fn eval(&mut self, page: &str, js: &str) -> Value {
        self.call(json!({"op": "eval", "page": page, "js": js}))
            .await["value"]
            .clone()
    }

    /// Saves a screenshot.
    pub async fn screenshot(&mut self, page: &str, path: &std::path::Path) {
        self.call(json!({"op": "screenshot", "page": page, "path": path}))
            .await;
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let _ = self.try_call_close().await;
        let _ = self.child.wait().await;
    }

    async fn try_call_close(&mut self) -> std::io::Result<()> {
        self.stdin.write_all(b"{\"op\":\"close\"}\n").await
    }
}

/// Wall clock (CLOCK_REALTIME) minus GStreamer's system clock (CLOCK_MONOTONIC, the stamp's
/// clock), in ms: `g2g.mjs` maps its page timestamps (wall clock) onto the stamp's clock with
/// it. Read between two monotonic readings; the closest of a few tries wins.
pub fn clock_offset_ms() -> f64 {
    use gstreamer::prelude::ClockExt;
    let clock = gstreamer::SystemClock::obtain();
    let mut best = (u64::MAX, 0.0);
    for _ in 0..20 {
        let m0 = clock.time().nseconds();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as f64;
        let m1 = clock.time().nseconds();
        if m1 - m0 < best.0 {
            best = (m1 - m0, (wall - (m0 as f64 + m1 as f64) / 2.0) / 1e6);
        }
    }
    best.1
}

/// What `g2g.mjs` reported.
pub struct Stamps {
    /// Whether it kept as many stamped frames as asked.
    pub ok: bool,
    /// Its JSON report.
    pub report: Value,
}

impl Stamps {
    /// One field of every kept frame.
    pub fn column(&self, field: &str) -> Vec<f64> {
        self.report["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f[field].as_f64())
            .collect()
    }
}

/// Runs `tests/browser/g2g.mjs` with `opts` (its options; `offsetMs` is added) and waits for
/// its report.
pub async fn read_stamps(mut opts: Value) -> Stamps {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and its npm packages: run tests/browser/setup.sh"
    );
    opts["offsetMs"] = json!(clock_offset_ms());
    let timeout = opts["timeoutS"].as_u64().unwrap_or(30);
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("g2g.mjs"))
        .arg(opts.to_string())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(timeout + 30), cmd.output())
        .await
        .expect("g2g.mjs finished")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from g2g.mjs\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    Stamps {
        ok: out.status.success(),
        report,
    }
}

/// What the page reported (see tests/browser/play.mjs).
pub struct Played {
    /// Whether play.mjs saw enough frames.
    pub ok: bool,
    /// Its JSON report.
    pub report: serde_json::Value,
}

/// Plays `url` in headless Chromium through hls.js (`player` = `hlsjs`) or the `<video>`
/// element's own HLS (`native`) for up to `seconds`, wanting `min_frames` and playing at least
/// `min_seconds` whatever was decoded by then (see tests/browser/play.mjs).
pub async fn play_for(
    url: &str,
    seconds: u32,
    min_frames: u32,
    player: &str,
    min_seconds: u32,
) -> Played {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/hls.js").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and its npm packages: run tests/browser/setup.sh"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("play.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg(min_frames.to_string())
        .arg(player)
        .arg(min_seconds.to_string())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(u64::from(seconds) + 60), cmd.output())
        .await
        .expect("play.mjs finished")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from play.mjs\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    eprintln!("chromium: {report}");
    Played {
        ok: out.status.success(),
        report,
    }
}

/// One of the page scripts in `tests/browser` (janus_present.mjs, janus_watch.mjs) that takes
/// its options as JSON, reads lines on stdin and answers JSON lines on stdout. Killed on drop.
pub struct Script {
    name: String,
    child: tokio::process::Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Script {
    /// Starts `tests/browser/<name>` with `opts`; panics with the fix when its npm packages
    /// are missing.
    pub fn start(name: &str, opts: &Value) -> Script {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "the browser test needs playwright-core: run tests/browser/setup.sh"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join(name))
            .arg(opts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Script {
            name: name.to_string(),
            child,
            stdin,
            lines,
        }
    }

    /// Sends one line.
    pub async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the script");
        self.stdin.flush().await.expect("flush");
    }

    /// The next JSON line (90 s at most).
    pub async fn next(&mut self) -> Value {
        let name = &self.name;
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{name} said nothing in 90 s"))
            .unwrap_or_else(|e| panic!("read {name}: {e}"))
            .unwrap_or_else(|| panic!("{name} ended without a word"));
        eprintln!("{name}: {}", &line[..line.len().min(1500)]);
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// Sends `line` (e.g. "leave", "quit") and waits for the script to end.
    pub async fn finish(mut self, line: &str) {
        self.send(line).await;
        let _ = self.child.wait().await;
    }
}

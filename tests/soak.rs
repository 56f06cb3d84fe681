//! The soak (issue 13): the box in a call with a publishing peer for a long time, recording, with
//! the fleet on, sampled every 10 s for resident memory, open file descriptors and threads.
//!
//! Not part of the test suite: `benches/soak.sh` runs it (release build, 30 minutes by default;
//! `ROOMBOX_SOAK_SECS` changes that) and draws the chart. It writes `soak.csv`, `soak.svg` and
//! `soak.md` into `ROOMBOX_SOAK_OUT` (default: the current directory).

mod support;

use roombox::api::Client;
use roombox::command::Command;
use roombox::model::RecordingTarget;
use std::path::Path;
use std::time::{Duration, Instant};
use support::mosquitto::Mosquitto;
use support::peer::Peer;

const ROOM: &str = "7171";
const WAIT: Duration = Duration::from_secs(60);
/// Seconds between samples.
const EVERY: u64 = 10;
/// Samples before this are warm-up: buffers, caches and the first segment fill in.
const WARM_UP: Duration = Duration::from_secs(120);

/// One sample of the box.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the box joined.
    t: u64,
    /// VmRSS, KiB.
    rss: u64,
    /// RssAnon, KiB.
    anon: u64,
    /// Open file descriptors.
    fds: u64,
    /// Threads.
    threads: u64,
}

fn sample(pid: u32, t: u64) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Sample {
        t,
        rss: support::proc_status(pid, "VmRSS:"),
        anon: support::proc_status(pid, "RssAnon:"),
        fds,
        threads: support::proc_status(pid, "Threads:"),
    }
}

/// Growth of a series after warm-up: the mean of its last tenth over the mean of its first
/// tenth, minus one.
fn growth(samples: &[Sample], f: impl Fn(&Sample) -> u64) -> f64 {
    let after: Vec<f64> = samples
        .iter()
        .filter(|s| Duration::from_secs(s.t) >= WARM_UP)
        .map(|s| f(s) as f64)
        .collect();
    if after.len() < 4 {
        return 0.0;
    }
    let n = (after.len() / 10).max(2);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    mean(&after[after.len() - n..]) / mean(&after[..n]) - 1.0
}

/// The chart: RSS and anonymous RSS (MiB, left axis) and fds and threads (right axis) over time.
fn svg(samples: &[Sample]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 420.0, 60.0, 60.0, 30.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let tmax = samples.last().map_or(1, |s| s.t).max(1) as f64;
    let mib = |k: u64| k as f64 / 1024.0;
    let mem_max = samples.iter().map(|s| mib(s.rss)).fold(1.0, f64::max) * 1.15;
    let cnt_max = samples
        .iter()
        .map(|s| s.fds.max(s.threads) as f64)
        .fold(1.0, f64::max)
        * 1.15;
    let x = |t: u64| left + pw * t as f64 / tmax;
    let line = |vals: Vec<(u64, f64)>, max: f64, colour: &str, dash: &str| {
        let pts: Vec<String> = vals
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), top + ph - ph * v / max))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            pts.join(" ")
        )
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    out += &format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>\n"
    );
    let warm = x(WARM_UP.as_secs().min(tmax as u64));
    out += &format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{:.1}\" height=\"{ph}\" fill=\"#eee\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">warm-up</text>\n",
        warm - left,
        left + 4.0,
        top + 14.0
    );
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        let y = top + ph - ph * frac;
        out += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text><text x=\"{:.1}\" y=\"{:.1}\">{:.0}</text>\n",
            left - 6.0,
            y + 4.0,
            mem_max * frac,
            w - right + 6.0,
            y + 4.0,
            cnt_max * frac
        );
        let t = (tmax * frac) as u64;
        out += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} min</text>\n",
            x(t),
            h - bottom + 18.0,
            t / 60
        );
    }
    out += &line(
        samples.iter().map(|s| (s.t, mib(s.rss))).collect(),
        mem_max,
        "#1f77b4",
        "none",
    );
    out += &line(
        samples.iter().map(|s| (s.t, mib(s.anon))).collect(),
        mem_max,
        "#1f77b4",
        "6 4",
    );
    out += &line(
        samples.iter().map(|s| (s.t, s.fds as f64)).collect(),
        cnt_max,
        "#d62728",
        "none",
    );
    out += &line(
        samples.iter().map(|s| (s.t, s.threads as f64)).collect(),
        cnt_max,
        "#2ca02c",
        "none",
    );
    out += &format!(
        "<text x=\"{left}\" y=\"18\">RSS MiB (blue), anonymous (blue, dashed) — left axis; open fds (red), threads (green) — right axis</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time in the call</text>\n</svg>\n",
        left + pw / 2.0,
        h - 10.0
    );
    out
}

fn write_outputs(dir: &Path, samples: &[Sample], secs: u64, segments: u64) {
    let mut csv = String::from("seconds,rss_kib,anon_kib,fds,threads\n");
    for s in samples {
        csv += &format!("{},{},{},{},{}\n", s.t, s.rss, s.anon, s.fds, s.threads);
    }
    std::fs::write(dir.join("soak.csv"), csv).expect("write soak.csv");
    std::fs::write(dir.join("soak.svg"), svg(samples)).expect("write soak.svg");
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| Duration::from_secs(s.t) >= WARM_UP)
        .collect();
    let mib = |k: u64| k as f64 / 1024.0;
    let range = |f: &dyn Fn(&Sample) -> u64| {
        let lo = after.iter().map(|s| f(s)).min().unwrap_or(0);
        let hi = after.iter().map(|s| f(s)).max().unwrap_or(0);
        (lo, hi)
    };
    let g_rss = growth(samples, |s| s.rss) * 100.0;
    let g_anon = growth(samples, |s| s.anon) * 100.0;
    let g_fds = growth(samples, |s| s.fds) * 100.0;
    let g_thr = growth(samples, |s| s.threads) * 100.0;
    let verdict = |g: f64| if g <= 5.0 { "met" } else { "**not met**" };
    let (r0, r1) = range(&|s| s.rss);
    let (a0, a1) = range(&|s| s.anon);
    let (f0, f1) = range(&|s| s.fds);
    let (t0, t1) = range(&|s| s.threads);
    let md = format!(
        "## Soak: {} minutes in a call (issue 13)\n\n\
         The {} binary joins a Janus room (in a network namespace of its own) where a \
         webrtcbin participant publishes 320x240@15 H.264 and Opus; the box publishes 1280x720@30, \
         plays the participant (video decoded and composited as for a screen), records MKV in 1-minute \
         segments ({segments} closed) and stays connected to a local mosquitto fleet broker. \
         `/proc/PID` sampled every {EVERY} s; growth compares the mean of the last tenth of the \
         samples after the {}-minute warm-up with the mean of the first tenth.\n\n\
         ![RSS, fds and threads over the soak](docs/soak.svg)\n\n\
         | measure | after warm-up (min – max) | growth | target ≤ 5 % |\n|---|---|---|---|\n\
         | RSS | {:.1} – {:.1} MiB | {g_rss:+.1} % | {} |\n\
         | anonymous RSS | {:.1} – {:.1} MiB | {g_anon:+.1} % | {} |\n\
         | open fds | {f0} – {f1} | {g_fds:+.1} % | {} |\n\
         | threads | {t0} – {t1} | {g_thr:+.1} % | {} |\n\n\
         Command: `benches/soak.sh` (`ROOMBOX_SOAK_SECS` to change the length; samples in `docs/soak.csv`).\n",
        secs / 60,
        if cfg!(debug_assertions) { "debug-build" } else { "release-build" },
        WARM_UP.as_secs() / 60,
        mib(r0),
        mib(r1),
        verdict(g_rss),
        mib(a0),
        mib(a1),
        verdict(g_anon),
        verdict(g_fds),
        verdict(g_thr),
    );
    std::fs::write(dir.join("soak.md"), &md).expect("write soak.md");
    println!("{md}");
}

#[test]
#[ignore = "soak; run benches/soak.sh"]
fn soak_call() {
    support::netns::isolated_async(crate::test_name!(), || async {
        use support::janus::{JanusProcess, ServerConfig};
        let secs: u64 = std::env::var("ROOMBOX_SOAK_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800);
        let out = std::env::var_os("ROOMBOX_SOAK_OUT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| ".".into());
        std::fs::create_dir_all(&out).expect("output dir");
        let tmp = tempfile::tempdir().expect("tempdir");
        let sc = ServerConfig::new("127.0.0.1", tmp.path().join("rec")).expect("port");
        let url = sc.url();
        let _janus = JanusProcess::start(sc, &tmp.path().join("janus"), Duration::from_secs(20))
            .expect("janus");
        support::peer::create_room(&url, ROOM, None).await;
        let broker = Mosquitto::start();
        let peer = Peer::join(&url, ROOM, "publisher").await;

        let dir = tmp.path().join("box");
        std::fs::create_dir_all(&dir).expect("box dir");
        let socket = dir.join("control.sock");
        let config = dir.join("roombox.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[device]
id = "soak-box"
state_dir = "{state}"

[control]
socket = "{socket}"

[http]
port = 0

[media.video]
source = "test"
width = 1280
height = 720
fps = 30
test_scroll = 4

[media.audio]
source = "test"

[recording]
dir = "{rec}"
format = "mkv"
segment = "1m"
min_free_mb = 0
stop_free_mb = 0

[room]
backend = "janus"
url = "{url}"
room_id = "{ROOM}"

[room.playback]
audio_sink = "fakesink"
video_sink = "fakesink"

[fleet]
broker = "{broker}"
prefix = "soak"
"#,
                state = dir.join("state").display(),
                socket = socket.display(),
                rec = dir.join("rec").display(),
                broker = broker.url(),
            ),
        )
        .expect("write config");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
            .args(["run", "--live", "false", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent.log")).expect("log file"))
            .spawn()
            .expect("spawn roombox");
        let pid = child.id();
        let mut client = support::eventually("the box's control socket", WAIT, || async {
            Client::connect(&socket).await.ok()
        })
        .await;
        let r = client
            .call(&support::inproc::join_cmd())
            .await
            .expect("join sent");
        assert!(r.ok, "join refused: {r:?}");
        let r = client
            .call(&Command::StartRecording {
                target: RecordingTarget::Local,
            })
            .await
            .expect("record sent");
        assert!(r.ok, "recording refused: {r:?}");
        support::eventually("the call, the recording and the fleet link", WAIT, || {
            let socket = socket.clone();
            async move {
                let mut c = Client::connect(&socket).await.ok()?;
                let s = c.call(&Command::GetState).await.ok()?.result?;
                let ok = s["meetingState"] == "CONNECTED"
                    && s["recording"]["state"] == "STARTED"
                    && s["fleet"]["state"] == "CONNECTED"
                    && s["participants"].as_object().is_some_and(|p| !p.is_empty());
                ok.then_some(())
            }
        })
        .await;

        let start = Instant::now();
        let mut samples = Vec::new();
        while start.elapsed() < Duration::from_secs(secs) {
            let t = start.elapsed().as_secs();
            samples.push(sample(pid, t));
            assert!(
                child.try_wait().ok().flatten().is_none(),
                "the box exited during the soak"
            );
            tokio::time::sleep(Duration::from_secs(EVERY)).await;
        }
        samples.push(sample(pid, start.elapsed().as_secs()));
        let state = Client::connect(&socket)
            .await
            .expect("socket")
            .call(&Command::GetState)
            .await
            .expect("state")
            .result
            .unwrap_or_default();
        assert_eq!(
            state["meetingState"], "CONNECTED",
            "left the call: {state:#}"
        );
        let segments = state["recording"]["segmentsClosed"].as_u64().unwrap_or(0);
        let _ = child.kill();
        let _ = child.wait();
        peer.leave().await;
        write_outputs(&out, &samples, secs, segments);
    });
}

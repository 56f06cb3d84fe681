//! Media benchmark: the agent recording 1280x720@30 synthetic video with audio, against
//! `gst-launch-1.0` running the equivalent pipeline in the same run (CPU ratio, RSS), and the
//! time from start to systemd READY. Prints a markdown section.
//!
//! `cargo run --release --example bench_media -- [--seconds N] [--rounds N] [--roombox PATH]`

#[path = "common/proc.rs"]
mod proc;
use proc::{args, cpu_seconds, median};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Peak and current resident memory, MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Measures CPU use over `secs` after a warm-up; returns (cpu %, peak RSS MiB).
fn measure(child: &mut Child, secs: u64) -> (f64, f64) {
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id();
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = cpu_seconds(pid);
    let wall = t0.elapsed().as_secs_f64();
    let (peak, _) = rss_mib(pid);
    assert!(
        child.try_wait().ok().flatten().is_none(),
        "the measured process exited early"
    );
    (100.0 * (c1 - c0) / wall, peak)
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn baseline(dir: &Path) -> Child {
    let pipeline = format!(
        "videotestsrc is-live=true pattern=smpte ! videoconvert ! videoscale ! videorate drop-only=true \
         ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! queue max-size-buffers=3 max-size-bytes=0 max-size-time=0 \
         ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=60 bitrate=2500 \
         ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 ! queue \
         ! splitmuxsink name=s max-size-time=10000000000 \
           muxer=\"mp4mux reserved-max-duration=70000000000 reserved-moov-update-period=1000000000\" \
           location={}/seg%05d.mp4 \
         audiotestsrc is-live=true freq=440 volume=0.5 ! audioconvert ! audioresample \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! volume ! tee name=raw \
         raw. ! queue ! audioconvert ! voaacenc bitrate=128000 ! aacparse ! queue ! s.audio_0 \
         raw. ! queue ! audioconvert ! opusenc bitrate=64000 frame-size=20 ! fakesink sync=false",
        dir.display()
    );
    Command::new("sh")
        .args(["-c", &format!("exec gst-launch-1.0 -e {pipeline}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (gstreamer1.0-tools)")
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("roombox.toml");
    std::fs::write(
        &p,
        format!(
            "[device]\nstate_dir = \"{}\"\n[media.video]\nwidth = 1280\nheight = 720\nfps = 30\nbitrate_kbps = 2500\nkeyframe_interval = \"2s\"\n[recording]\nautostart = true\nformat = \"mp4\"\nsegment = \"10s\"\nfragment = \"1s\"\nmin_free_mb = 0\nstop_free_mb = 0\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    p
}

fn agent(bin: &Path, dir: &Path, notify: Option<&Path>) -> Child {
    let mut c = Command::new(bin);
    c.args(["run", "--live", "false", "--config"])
        .arg(config(dir))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = notify {
        c.env("NOTIFY_SOCKET", n);
    }
    c.spawn().expect("roombox binary")
}

/// Start to READY=1 over a real notify socket, ms.
fn ready_ms(bin: &Path) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let t0 = Instant::now();
    let child = agent(bin, dir.path(), Some(&sock_path));
    let mut buf = [0u8; 4096];
    let ms = loop {
        let n = sock.recv(&mut buf).expect("no READY within 30 s");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break t0.elapsed().as_secs_f64() * 1000.0;
        }
    };
    stop(child);
    ms
}

fn main() {
    let a = args(20, 2);
    let mut base_cpu = Vec::new();
    let mut agent_cpu = Vec::new();
    let mut agent_rss = Vec::new();
    let mut base_rss = Vec::new();
    for _ in 0..a.rounds {
        let d = tempfile::tempdir().unwrap();
        let mut b = baseline(d.path());
        let (cpu, rss) = measure(&mut b, a.seconds);
        stop(b);
        base_cpu.push(cpu);
        base_rss.push(rss);

        let d = tempfile::tempdir().unwrap();
        let mut g = agent(&a.roombox, d.path(), None);
        let (cpu, rss) = measure(&mut g, a.seconds);
        stop(g);
        let segs = std::fs::read_dir(d.path().join("state/recordings"))
            .map(|r| r.count())
            .unwrap_or(0);
        assert!(segs > 0, "the agent recorded nothing");
        agent_cpu.push(cpu);
        agent_rss.push(rss);
    }
    let ready: Vec<f64> = (0..5).map(|_| ready_ms(&a.roombox)).collect();

    let (bc, ac) = (median(base_cpu.clone()), median(agent_cpu.clone()));
    let ratio = ac / bc;
    let rss = agent_rss.iter().cloned().fold(0.0, f64::max);
    let ready_med = median(ready.clone());
    println!("## Media: recording 1280x720@30 + audio (issue 2)\n");
    println!(
        "Agent (`roombox run`, release build, synthetic sources, MP4 segments) against `gst-launch-1.0` \
         running the same elements and settings (including the Opus encode the agent keeps ready for rooms), alternating, {} rounds of {} s after a 3 s warm-up, \
         on this 2-core machine. CPU is user+system time from /proc over wall time (100 % = one core).\n",
        a.rounds, a.seconds
    );
    println!("| measure | gst-launch (baseline) | roombox | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| CPU, median | {bc:.1} % | {ac:.1} % | **{ratio:.2}** | ≤ 1.10 {} |",
        if ratio <= 1.10 { "(met)" } else { "(missed)" }
    );
    println!(
        "| peak RSS | {:.1} MiB | **{rss:.1} MiB** | {:.2} | ≤ 60 MB {} |",
        base_rss.iter().cloned().fold(0.0, f64::max),
        rss / base_rss.iter().cloned().fold(0.0, f64::max),
        if rss * 1.048_576 <= 60.0 {
            "(met)"
        } else {
            "(missed)"
        }
    );
    println!(
        "| start to READY=1, median of 5 | – | **{ready_med:.0} ms** | – | ≤ 300 ms {} |",
        if ready_med <= 300.0 {
            "(met)"
        } else {
            "(missed)"
        }
    );
    println!(
        "\nRounds: baseline CPU {:?} %, roombox CPU {:?} %; READY times {:?} ms.\n",
        base_cpu
            .iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        agent_cpu
            .iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        ready.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
}

//! Content share benchmark (issue 18): the agent's CPU with a 1280x720@30 camera recording, and
//! with a 1920x1080@5 share running beside it, the outputs following the program (the share's
//! own encode, `program = "share"`, or the camera composed into its corner, `program = "pip"`).
//! The three run alternately in the same rounds. Prints a markdown section.
//!
//! `cargo run --release --example bench_share -- [--seconds N] [--rounds N] [--roombox PATH]`

#[path = "common/proc.rs"]
mod proc;
use proc::{args, cpu_seconds, median};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The three cases.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    Camera,
    Share,
    Pip,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Camera => "camera alone",
            Case::Share => "camera + share (program = share)",
            Case::Pip => "camera + share (program = pip)",
        }
    }
}

fn config(dir: &Path, case: Case) -> PathBuf {
    let p = dir.join("roombox.toml");
    let program = if case == Case::Pip { "pip" } else { "share" };
    std::fs::write(
        &p,
        format!(
            "[device]\nstate_dir = \"{}\"\n\
             [media.video]\nwidth = 1280\nheight = 720\nfps = 30\nbitrate_kbps = 2500\nkeyframe_interval = \"2s\"\n\
             [media.share]\nsource = \"test\"\nwidth = 1920\nheight = 1080\nfps = 5\nprogram = \"{program}\"\n\
             [recording]\nautostart = true\nformat = \"mp4\"\nsegment = \"10s\"\nfragment = \"1s\"\nmin_free_mb = 0\nstop_free_mb = 0\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    p
}

fn cmd(bin: &Path, config: &Path, what: &str) -> bool {
    Command::new(bin)
        .args(["cmd", "--config"])
        .arg(config)
        .arg(what)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the agent in `case` and returns its CPU over `secs`, % of one core.
fn run(bin: &Path, case: Case, secs: u64) -> f64 {
    let d = tempfile::tempdir().unwrap();
    let config = config(d.path(), case);
    let mut child: Child = Command::new(bin)
        .args(["run", "--live", "false", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("roombox binary");
    // Wait for the control socket, then start the share where the case has one.
    let t0 = Instant::now();
    while !cmd(bin, &config, "ping") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the agent never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    if case != Case::Camera {
        assert!(cmd(bin, &config, "start-share"), "start-share refused");
    }
    // Warm-up: the share's encoder and the program's switch settle.
    std::thread::sleep(Duration::from_secs(4));
    let pid = child.id();
    let (c0, w0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = (cpu_seconds(pid) - c0) / w0.elapsed().as_secs_f64() * 100.0;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let segs = std::fs::read_dir(d.path().join("state/recordings"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert!(segs > 0, "{}: the agent recorded nothing", case.name());
    cpu
}

fn main() {
    let a = args(20, 3);
    let cases = [Case::Camera, Case::Share, Case::Pip];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..a.rounds {
        for (i, &c) in cases.iter().enumerate() {
            cpu[i].push(run(&a.roombox, c, a.seconds));
        }
    }
    let med: Vec<f64> = cpu.iter().map(|v| median(v.clone())).collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## Content share: CPU beside the camera (issue 18)\n");
    println!(
        "The agent (`roombox run`, release build, synthetic sources) recording MP4 that follows the \
         program: the 1280x720@30 camera alone, then with a 1920x1080@5 share started by `start-share` \
         (the program reuses the share's own encode), then the same with `program = \"pip\"` (the \
         share with the camera in its corner, composed and encoded once more). The three alternate \
         in each of {} rounds of {} s after a 4 s warm-up, on this 2-core machine shared with other \
         builds (load average at the end: {}). CPU is user+system time from /proc over wall time \
         (100 % = one core).\n",
        a.rounds,
        a.seconds,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("| case | CPU, median | against the camera alone | target |");
    println!("|---|---|---|---|");
    for (i, c) in cases.iter().enumerate() {
        let ratio = med[i] / med[0];
        let target = match c {
            Case::Camera => "–".to_string(),
            Case::Share => format!(
                "≤ 1.30 {}",
                if ratio <= 1.30 { "(met)" } else { "(missed)" }
            ),
            Case::Pip => "one extra encode at most".to_string(),
        };
        println!(
            "| {} | {:.1} % | **{ratio:.2}** | {target} |",
            c.name(),
            med[i]
        );
    }
    println!(
        "\nRounds (CPU %): {}.\n",
        cases
            .iter()
            .enumerate()
            .map(|(i, c)| format!(
                "{} {:?}",
                c.name(),
                cpu[i]
                    .iter()
                    .map(|x| (x * 10.0).round() / 10.0)
                    .collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

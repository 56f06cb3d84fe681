//! Fleet benchmark; prints a markdown section for BENCHMARKS.md.
//!
//! 1. Command round trip on loopback (operator -> broker -> box -> broker -> operator), p50 and
//!    p99, beside the broker's own pub -> sub path measured with mosquitto_pub/mosquitto_sub in
//!    the same run.
//! 2. Fleet simulation: N simulated boxes (default 1000; media stand-in, each with its own MQTT
//!    client) in this process on one mosquitto; one group command to all; the time until every
//!    reply is in, with broker and agent CPU and memory per box.
//!
//! Usage: `benches/fleet.sh [--boxes 1000 --pings 1000]` (it raises `ulimit -n` first).

#[path = "common/mod.rs"]
mod common;

use common::{arg, rss_kb, start_broker};
use roombox::config::Config;
use roombox::fleet::cli::{ConnArgs, Operator, To};
use roombox::fleet::sim::SimBox;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn box_config(port: u16, device: &str, dir: &Path, group: &str) -> Config {
    let mut c = Config::default();
    c.device.id = device.into();
    c.device.state_dir = dir.to_path_buf();
    c.media.video.source = roombox::config::VideoSource::None;
    c.media.audio.source = roombox::config::AudioSource::None;
    c.fleet.broker = format!("mqtt://127.0.0.1:{port}");
    c.fleet.prefix = "bench".into();
    c.fleet.groups = vec![group.into()];
    c.fleet.telemetry_interval = Duration::from_secs(3600);
    c.fleet.reconnect.initial = Duration::from_millis(200);
    c.fleet.reconnect.max = Duration::from_secs(5);
    c
}

/// The broker's pub -> sub path with its own tools: one mosquitto_pub -l and one
/// mosquitto_sub -F '%U %p', each message carrying its send time.
fn broker_path_ms(port: u16, n: usize) -> anyhow::Result<Vec<f64>> {
    let p = port.to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-t",
            "bench/echo",
            "-q",
            "1",
            "-F",
            "%U %p",
        ])
        .args(["-C", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let mut publ = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-t",
            "bench/echo",
            "-q",
            "1",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()?;
    let mut stdin = publ
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..n {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        writeln!(stdin, "{}.{:09}", now.as_secs(), now.subsec_nanos())?;
        stdin.flush()?;
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(stdin);
    let out = sub
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lat = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        let mut parts = line.split_whitespace();
        if let (Some(r), Some(s)) = (parts.next(), parts.next()) {
            if let (Ok(r), Ok(s)) = (r.parse::<f64>(), s.parse::<f64>()) {
                lat.push((r - s) * 1000.0);
            }
        }
    }
    let _ = sub.wait();
    let _ = publ.wait();
    Ok(lat)
}

/// utime + stime of a process, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let k: f64 = f.get(12)?.parse().ok()?;
            Some((u + k) / tick)
        })
        .unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let boxes = arg("--boxes", 1000);
    let pings = arg("--pings", 1000);
    // Events each simulated box keeps behind its outputs (the product keeps 1024).
    let event_buffer = arg("--event-buffer", 64);
    // Every box holds a socket and the broker one per box: benches/fleet.sh raises `ulimit -n`.

    // --- 1. round trip ---
    let broker = start_broker()?;
    let dir = tempfile::tempdir()?;
    let config = box_config(broker.port, "rt-box", dir.path(), "rt");
    let sim = SimBox::start(&config, None, dir.path()).await?;
    let conn = ConnArgs {
        broker: format!("mqtt://127.0.0.1:{}", broker.port),
        prefix: "bench".into(),
        ..Default::default()
    };
    let mut op = Operator::connect(&conn).await?;
    let to = To::Device("rt-box".into());
    let mut warm = 0;
    while warm < 50 {
        let r = op
            .request(&to, "ping", b"", None, Duration::from_secs(2))
            .await?;
        if r.first().is_some_and(|r| r.1.ok) {
            warm += 1;
        }
    }
    let mut rtt = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        let r = op
            .request(&to, "ping", b"", None, Duration::from_secs(5))
            .await?;
        anyhow::ensure!(r.first().is_some_and(|r| r.1.ok), "ping failed");
        rtt.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    rtt.sort_by(f64::total_cmp);
    let mut base = broker_path_ms(broker.port, pings)?;
    base.sort_by(f64::total_cmp);
    drop(op);
    sim.shutdown().await;
    drop(broker);

    // --- 2. fleet simulation ---
    let broker = start_broker()?;
    let me = std::process::id();
    let rss0 = rss_kb(me);
    let broker_rss0 = rss_kb(broker.child.id());
    let root = tempfile::tempdir()?;
    let mut follower = Operator::connect(&ConnArgs {
        broker: format!("mqtt://127.0.0.1:{}", broker.port),
        prefix: "bench".into(),
        ..Default::default()
    })
    .await?;
    follower.subscribe(&["bench/+/status".into()]).await?;
    let t_connect = Instant::now();
    let mut sims = Vec::with_capacity(boxes);
    for i in 0..boxes {
        let d = root.path().join(format!("b{i}"));
        std::fs::create_dir_all(&d)?;
        let c = box_config(broker.port, &format!("box{i:04}"), &d, "all");
        sims.push(SimBox::start_with_buffer(&c, None, &d, event_buffer).await?);
    }
    let mut online = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while online.len() < boxes {
        let Some(m) = follower.next_until(deadline).await else {
            break;
        };
        if String::from_utf8_lossy(&m.payload).contains("\"online\"") {
            online.insert(m.topic);
        }
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    anyhow::ensure!(
        online.len() == boxes,
        "only {} of {boxes} boxes came online",
        online.len()
    );
    // Let births, first states and subscriptions settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss1 = rss_kb(me);
    let broker_rss1 = rss_kb(broker.child.id());

    let mut op = Operator::connect(&conn_for(broker.port)).await?;
    let mut rounds = Vec::new();
    let (cpu_me0, cpu_b0) = (cpu_s(me), cpu_s(broker.child.id()));
    let t_all = Instant::now();
    rounds.extend(common::group_pings(&mut op, "all", boxes, 3, Duration::from_secs(60)).await?);
    let wall = t_all.elapsed().as_secs_f64();
    let (cpu_me1, cpu_b1) = (cpu_s(me), cpu_s(broker.child.id()));
    for s in sims {
        drop(s);
    }

    let base_rt = 2.0 * percentile(&base, 0.5);
    println!("## Fleet (MQTT)\n");
    println!(
        "Loopback, mosquitto 2.0.11, 2-core machine shared with other builds; {} build; \
         `cargo run --features test-util --example bench_fleet`.\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("### Command round trip ({pings} sequential `ping`s to one box)\n");
    println!("| path | p50 ms | p99 ms |\n|---|---|---|");
    println!(
        "| roombox command round trip (operator → broker → box → broker → operator) | {:.2} | {:.2} |",
        percentile(&rtt, 0.5),
        percentile(&rtt, 0.99)
    );
    println!(
        "| baseline: broker pub → sub, mosquitto_pub -l → mosquitto_sub (one way, QoS 1) | {:.2} | {:.2} |",
        percentile(&base, 0.5),
        percentile(&base, 0.99)
    );
    println!(
        "\nA command crosses the broker twice: p50 round trip is {:.1}× two broker crossings ({:.2} ms). Target p99 ≤ 10 ms: {}.\n",
        percentile(&rtt, 0.5) / base_rt,
        base_rt,
        if percentile(&rtt, 0.99) <= 10.0 { "met" } else { "missed" }
    );
    println!("### Fleet simulation: {boxes} boxes in one process, one broker\n");
    println!("| measure | value |\n|---|---|");
    println!("| all {boxes} boxes online (birth seen) | {connect_s:.1} s |");
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "| group `ping` to all, all replies in (round {}) | {:.3} s |",
            i + 1,
            r
        );
    }
    println!(
        "| target ≤ 2 s | {} |",
        if rounds.iter().all(|r| *r <= 2.0) {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "| agent process memory per box ({event_buffer} events kept per box) | {:.1} KiB |",
        (rss1.saturating_sub(rss0)) as f64 / boxes as f64
    );
    println!(
        "| broker memory per box | {:.1} KiB |",
        (broker_rss1.saturating_sub(broker_rss0)) as f64 / boxes as f64
    );
    println!(
        "| agent CPU during the 3 group commands | {:.2} core-s ({:.0} % of one core over {:.2} s; {:.2} ms per box per command) |",
        cpu_me1 - cpu_me0,
        100.0 * (cpu_me1 - cpu_me0) / wall,
        wall,
        1000.0 * (cpu_me1 - cpu_me0) / (3.0 * boxes as f64)
    );
    println!(
        "| broker CPU during the 3 group commands | {:.2} core-s ({:.0} % of one core; {:.3} ms per box per command) |",
        cpu_b1 - cpu_b0,
        100.0 * (cpu_b1 - cpu_b0) / wall,
        1000.0 * (cpu_b1 - cpu_b0) / (3.0 * boxes as f64)
    );
    Ok(())
}

fn conn_for(port: u16) -> ConnArgs {
    ConnArgs {
        broker: format!("mqtt://127.0.0.1:{port}"),
        prefix: "bench".into(),
        ..Default::default()
    }
}

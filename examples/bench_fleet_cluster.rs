//! Fleet benchmark beyond one broker; prints a markdown section for BENCHMARKS.md.
//!
//! N simulated boxes (default 2000; the agent with a media stand-in and its own MQTT client, all
//! in this process) on one mosquitto, then the same N spread over a two-node ejabberd cluster
//! (Debian 12's MQTT 5 broker, nodes on loopback, each box with the other node as its failover),
//! in the same run. Each time: how long until every box is online, one group `ping` to all from
//! an operator (on the second node for the cluster) until every reply is in, three rounds, and
//! memory per box of the simulator and of the broker(s).
//!
//! Usage: `benches/fleet.sh --cluster [--boxes 2000]` (root: ejabberd's nodes run as its user).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/ejabberd.rs"]
mod ejabberd;

use common::{arg, rss_kb};
use roombox::config::Config;
use roombox::fleet::cli::{ConnArgs, Operator};
use roombox::fleet::sim::SimBox;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-pw";

/// The brokers under test: their URLs, the pids whose memory counts, and what keeps them up.
struct Brokers {
    urls: Vec<String>,
    pids: Vec<u32>,
    login: bool,
    _keep: Box<dyn std::any::Any + Send>,
}

fn mosquitto() -> anyhow::Result<Brokers> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\nuser root\nlog_type error\nmax_queued_messages 100000\n"),
    )?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    struct Kill {
        child: std::process::Child,
        _dir: tempfile::TempDir,
    }
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
    Ok(Brokers {
        urls: vec![format!("mqtt://127.0.0.1:{port}")],
        pids: vec![child.id()],
        login: false,
        _keep: Box::new(Kill { child, _dir: dir }),
    })
}

fn cluster() -> Brokers {
    let a = ejabberd::Ejabberd::start();
    let b = ejabberd::Ejabberd::start();
    a.register("fleet", PASSWORD);
    b.join(&a);
    let pid = |e: &ejabberd::Ejabberd| e.pid().unwrap_or(0);
    Brokers {
        urls: vec![a.url(), b.url()],
        pids: vec![pid(&a), pid(&b)],
        login: true,
        _keep: Box::new((a, b)),
    }
}

fn box_config(brokers: &Brokers, i: usize, dir: &Path, pw: &Path) -> Config {
    let n = brokers.urls.len();
    let mut c = Config::default();
    c.device.id = format!("box{i:05}");
    c.device.state_dir = dir.to_path_buf();
    c.media.video.source = roombox::config::VideoSource::None;
    c.media.audio.source = roombox::config::AudioSource::None;
    c.fleet.broker = brokers.urls[i % n].clone();
    c.fleet.failover = (1..n).map(|k| brokers.urls[(i + k) % n].clone()).collect();
    c.fleet.prefix = "bench".into();
    c.fleet.groups = vec!["all".into()];
    c.fleet.telemetry_interval = Duration::from_secs(3600);
    c.fleet.reconnect.initial = Duration::from_millis(200);
    c.fleet.reconnect.max = Duration::from_secs(5);
    if brokers.login {
        c.fleet.auth.username = "fleet".into();
        c.fleet.auth.password_file = pw.to_path_buf();
    }
    c
}

fn conn(brokers: &Brokers, pw: &Path) -> ConnArgs {
    ConnArgs {
        broker: brokers.urls.last().cloned().unwrap_or_default(),
        prefix: "bench".into(),
        username: brokers.login.then(|| "fleet".into()),
        password_file: brokers.login.then(|| pw.to_path_buf()),
        ..Default::default()
    }
}

struct Figures {
    online_s: f64,
    rounds: Vec<f64>,
    sim_kib_per_box: f64,
    broker_kib_per_box: f64,
    broker_mib: (f64, f64),
}

async fn run(brokers: &Brokers, boxes: usize) -> anyhow::Result<Figures> {
    let root = tempfile::tempdir()?;
    let pw: PathBuf = root.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n"))?;
    let me = std::process::id();
    let rss0 = rss_kb(me);
    let broker_rss = || brokers.pids.iter().map(|p| rss_kb(*p)).sum::<u64>();
    let broker0 = broker_rss();
    let mut follower = Operator::connect(&conn(brokers, &pw)).await?;
    follower.subscribe(&["bench/+/status".into()]).await?;
    let t = Instant::now();
    let mut sims = Vec::with_capacity(boxes);
    for i in 0..boxes {
        let d = root.path().join(format!("b{i}"));
        std::fs::create_dir_all(&d)?;
        sims.push(SimBox::start(&box_config(brokers, i, &d, &pw), None, &d).await?);
    }
    let mut online = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while online.len() < boxes {
        let Some(m) = follower.next_until(deadline).await else {
            break;
        };
        if String::from_utf8_lossy(&m.payload).contains("\"online\"") {
            online.insert(m.topic);
        }
    }
    let online_s = t.elapsed().as_secs_f64();
    if online.len() < boxes {
        let missing: Vec<String> = (0..boxes)
            .map(|i| format!("bench/box{i:05}/status"))
            .filter(|t| !online.contains(t))
            .take(10)
            .collect();
        anyhow::bail!(
            "{}: {} of {boxes} online; not seen, among others: {missing:?}",
            brokers.urls.join(" "),
            online.len()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss1, broker1) = (rss_kb(me), broker_rss());
    let mut op = Operator::connect(&conn(brokers, &pw)).await?;
    let rounds = common::group_pings(&mut op, "all", boxes, 3, Duration::from_secs(120)).await?;
    drop(sims);
    Ok(Figures {
        online_s,
        rounds,
        sim_kib_per_box: rss1.saturating_sub(rss0) as f64 / boxes as f64,
        broker_kib_per_box: broker1.saturating_sub(broker0) as f64 / boxes as f64,
        broker_mib: (broker0 as f64 / 1024.0, broker1 as f64 / 1024.0),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let boxes = arg("--boxes", 2000);
    let m = run(&mosquitto()?, boxes).await?;
    let c = run(&tokio::task::spawn_blocking(cluster).await?, boxes).await?;
    println!("## Fleet beyond one broker: a two-node ejabberd cluster (issue 21)\n");
    println!(
        "{boxes} simulated boxes in one process (`benches/fleet.sh --cluster`, release build), \
         first on one mosquitto 2.0.11, then spread over two clustered ejabberd 23.01 nodes \
         (`mod_mqtt`, logins from ejabberd's accounts; each box's failover is the other node), \
         the operator on the second node, in the same run. Group `ping` to all, until every \
         reply is in:\n"
    );
    println!("| | one mosquitto | ejabberd, 2 nodes | ratio |\n|---|---|---|---|");
    println!(
        "| all online (births seen) | {:.1} s | {:.1} s | {:.2} |",
        m.online_s,
        c.online_s,
        c.online_s / m.online_s
    );
    for i in 0..3 {
        println!(
            "| group ping round {} | {:.3} s | {:.3} s | {:.2} |",
            i + 1,
            m.rounds[i],
            c.rounds[i],
            c.rounds[i] / m.rounds[i]
        );
    }
    println!(
        "| simulator memory per box | {:.0} KiB | {:.0} KiB | |",
        m.sim_kib_per_box, c.sim_kib_per_box
    );
    println!(
        "| broker memory per box (both nodes for the cluster) | {:.1} KiB | {:.1} KiB | {:.1} |",
        m.broker_kib_per_box,
        c.broker_kib_per_box,
        c.broker_kib_per_box / m.broker_kib_per_box.max(0.1)
    );
    println!(
        "| broker resident memory, empty → with the fleet | {:.0} → {:.0} MiB | {:.0} → {:.0} MiB | |",
        m.broker_mib.0, m.broker_mib.1, c.broker_mib.0, c.broker_mib.1
    );
    Ok(())
}

//! Fleet benchmark beyond one broker; prints a markdown section for BENCHMARKS.md.
//!
//! N simulated boxes (default 2000; the agent with a media stand-in and its own MQTT client, all
//! in this process) on one mosquitto, then the same N spread over a two-node ejabberd cluster
//! (Debian 12's MQTT 5 broker, nodes on loopback, each box with the other node as its failover),
//! in the same run. Each time: how long until every box is online, one group `ping` to all from
//! an operator (on the second node for the cluster) until every reply is in, three rounds, and
//! memory per box of the simulator and of the broker(s).
//!
//! The simulated boxes run in shards, child processes of this one (`--shard`), at most
//! `--per-shard` boxes each (default 4000): a simulated box holds two open files (its MQTT socket
//! and its command journal), and a process may hold only so many (20,000 in this container, a
//! hard limit root cannot raise). The operator stays in this process.
//!
//! Usage: `benches/fleet.sh --cluster [--boxes 2000] [--per-shard 4000] [--cluster-only]`
//! (root: ejabberd's nodes run as its user). `--cluster-only` skips mosquitto, which here holds
//! at most about 19,900 boxes (one process, one open file a box).

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

fn box_config(urls: &[String], login: bool, i: usize, dir: &Path, pw: &Path) -> Config {
    let n = urls.len();
    let mut c = Config::default();
    c.device.id = format!("box{i:05}");
    c.device.state_dir = dir.to_path_buf();
    c.media.video.source = roombox::config::VideoSource::None;
    c.media.audio.source = roombox::config::AudioSource::None;
    c.fleet.broker = urls[i % n].clone();
    c.fleet.failover = (1..n).map(|k| urls[(i + k) % n].clone()).collect();
    c.fleet.prefix = "bench".into();
    c.fleet.groups = vec!["all".into()];
    c.fleet.telemetry_interval = Duration::from_secs(3600);
    c.fleet.reconnect.initial = Duration::from_millis(200);
    c.fleet.reconnect.max = Duration::from_secs(5);
    if login {
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

async fn run(brokers: &Brokers, boxes: usize, per_shard: usize) -> anyhow::Result<Figures> {
    let root = tempfile::tempdir()?;
    let pw: PathBuf = root.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n"))?;
    let broker_rss = || brokers.pids.iter().map(|p| rss_kb(*p)).sum::<u64>();
    let broker0 = broker_rss();
    let mut follower = Operator::connect(&conn(brokers, &pw)).await?;
    follower.subscribe(&["bench/+/status".into()]).await?;
    let t = Instant::now();
    let mut shards = Vec::new();
    for from in (0..boxes).step_by(per_shard) {
        shards.push(Shard::spawn(
            brokers,
            from,
            (from + per_shard).min(boxes),
            root.path(),
            &pw,
        )?);
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
        // Did they never connect, or was their birth lost on its way? Their retained status
        // tells.
        let mut probe = Operator::connect(&conn(brokers, &pw)).await?;
        probe.subscribe(&missing).await?;
        let mut retained = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Some(m) = probe.next_until(until).await {
            retained.push(format!(
                "{} {}",
                m.topic,
                String::from_utf8_lossy(&m.payload)
            ));
        }
        anyhow::bail!(
            "{}: {} of {boxes} online; not seen, among others: {missing:?}; their retained \
             status now: {retained:?}",
            brokers.urls.join(" "),
            online.len()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let broker1 = broker_rss();
    let sim_kib: u64 = shards.iter().map(Shard::grown_kib).sum();
    let mut op = Operator::connect(&conn(brokers, &pw)).await?;
    let rounds = common::group_pings(&mut op, "all", boxes, 3, Duration::from_secs(120)).await?;
    drop(shards);
    Ok(Figures {
        online_s,
        rounds,
        sim_kib_per_box: sim_kib as f64 / boxes as f64,
        broker_kib_per_box: broker1.saturating_sub(broker0) as f64 / boxes as f64,
        broker_mib: (broker0 as f64 / 1024.0, broker1 as f64 / 1024.0),
    })
}

/// A child process simulating boxes `from..to`; killed on drop.
struct Shard {
    child: std::process::Child,
    /// Its resident memory before it started a box, KiB.
    rss0: u64,
}

impl Shard {
    fn spawn(
        brokers: &Brokers,
        from: usize,
        to: usize,
        root: &Path,
        pw: &Path,
    ) -> anyhow::Result<Shard> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--shard")
            .args([from.to_string(), to.to_string()])
            .arg(brokers.urls.join(","))
            .arg(if brokers.login { "login" } else { "anonymous" })
            .arg(root)
            .arg(pw)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        // Its first line: its memory before any box.
        let mut line = String::new();
        let out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
        let rss0 = line
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("shard {from}..{to} said {line:?}"))?;
        Ok(Shard { child, rss0 })
    }

    /// What its boxes cost it, KiB.
    fn grown_kib(&self) -> u64 {
        rss_kb(self.child.id()).saturating_sub(self.rss0)
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side of [`Shard`]: `--shard FROM TO URLS login|anonymous ROOT PW`. Prints its
/// memory, starts its boxes, and keeps them until its stdin closes (the parent went away).
async fn shard(args: &[String]) -> anyhow::Result<()> {
    let [from, to, urls, login, root, pw] = args else {
        anyhow::bail!("--shard FROM TO URLS login|anonymous ROOT PW");
    };
    let (from, to): (usize, usize) = (from.parse()?, to.parse()?);
    let urls: Vec<String> = urls.split(',').map(str::to_string).collect();
    println!("{}", rss_kb(std::process::id()));
    let mut sims = Vec::with_capacity(to - from);
    for i in from..to {
        let d = Path::new(root).join(format!("b{i}"));
        std::fs::create_dir_all(&d)?;
        let c = box_config(&urls, login == "login", i, &d, Path::new(pw));
        sims.push(SimBox::start(&c, None, &d).await?);
    }
    let _ = tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await;
    std::process::exit(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--shard") {
        return shard(&args[i + 1..]).await;
    }
    let boxes = arg("--boxes", 2000);
    let per_shard = arg("--per-shard", 4000).max(1);
    // --cluster-only: beyond what one mosquitto holds here (one process, one open file a box).
    if args.iter().any(|a| a == "--cluster-only") {
        let c = run(
            &tokio::task::spawn_blocking(cluster).await?,
            boxes,
            per_shard,
        )
        .await?;
        println!(
            "{boxes} boxes on the two-node cluster, in {} shards:\n",
            boxes.div_ceil(per_shard)
        );
        println!("| all online | group ping rounds | simulator per box | brokers per box | brokers' memory |\n|---|---|---|---|---|");
        println!(
            "| {:.1} s | {} | {:.0} KiB | {:.1} KiB | {:.0} → {:.0} MiB |",
            c.online_s,
            c.rounds
                .iter()
                .map(|r| format!("{r:.3} s"))
                .collect::<Vec<_>>()
                .join(", "),
            c.sim_kib_per_box,
            c.broker_kib_per_box,
            c.broker_mib.0,
            c.broker_mib.1
        );
        return Ok(());
    }
    let m = run(&mosquitto()?, boxes, per_shard).await?;
    let c = run(
        &tokio::task::spawn_blocking(cluster).await?,
        boxes,
        per_shard,
    )
    .await?;
    println!("## Fleet beyond one broker: a two-node ejabberd cluster (issue 21)\n");
    println!(
        "{boxes} simulated boxes in {} processes of at most {} (`benches/fleet.sh --cluster`, {} build), \
         first on one mosquitto 2.0.11, then spread over two clustered ejabberd 23.01 nodes \
         (`mod_mqtt`, logins from ejabberd's accounts; each box's failover is the other node), \
         the operator on the second node, in the same run. Group `ping` to all, until every \
         reply is in:\n",
        boxes.div_ceil(per_shard),
        per_shard,
        if cfg!(debug_assertions) { "dev" } else { "release" }
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

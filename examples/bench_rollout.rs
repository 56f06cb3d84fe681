//! Staged-rollout benchmark (issue 21); prints a markdown section for BENCHMARKS.md.
//!
//! N simulated boxes (default 100; the real agent and fleet client, the media stand-in and the
//! simulated root installer of `roombox::fleet::sim`) on one mosquitto, one group. A signed
//! package is served by the update tests' HTTP server (`tests/support/range_server.py`) and each
//! box downloads and verifies it for real. The operator's side is `roombox fleet update`'s own
//! loop (`fleet::rollout::cli::follow`), as the CLI runs it:
//!
//! 1. a 10 % stage, until every box answered and every selected box is HEALTHY;
//! 2. 100 % with the starts spread over `--spread-s` seconds and `--max-rollbacks 1`, with the
//!    two boxes that start first in that stage carrying a bad package (ROLLED_BACK): the rollout
//!    stops, and the boxes whose turn had not come are held.
//!
//! Usage: `benches/fleet.sh --rollout [--boxes 100 --spread-s 30 --install-ms 500]`.

#[path = "common/mod.rs"]
mod common;

use common::{arg, start_broker};
use roombox::config::Config;
use roombox::event::UpdatePhase;
use roombox::fleet::cli::ConnArgs;
use roombox::fleet::rollout::cli::{follow, Report, UpdateArgs};
use roombox::fleet::rollout::follow::BoxState;
use roombox::fleet::rollout::{bucket, selected};
use roombox::fleet::sim::SimBox;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "bench";
const ROLLOUT: &str = "0.2.0";

fn box_config(port: u16, device: &str, dir: &Path, public: &str) -> Config {
    let mut c = Config::default();
    c.device.id = device.into();
    c.device.state_dir = dir.to_path_buf();
    c.media.video.source = roombox::config::VideoSource::None;
    c.media.audio.source = roombox::config::AudioSource::None;
    c.fleet.broker = format!("mqtt://127.0.0.1:{port}");
    c.fleet.prefix = "bench".into();
    c.fleet.groups = vec![GROUP.into()];
    c.fleet.telemetry_interval = Duration::from_secs(3600);
    c.fleet.state_min_interval = Duration::from_millis(200);
    c.fleet.signing.public_key = public.into();
    c
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The update tests' package server on `dir`; its port.
fn serve(dir: &Path) -> anyhow::Result<(Server, u16)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/range_server.py");
    let port_file = dir.join(".port");
    let child = Command::new("python3")
        .arg(script)
        .arg("--dir")
        .arg(dir)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--log")
        .arg(dir.join(".requests.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            return Ok((server, p.trim().parse()?));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("range_server.py did not start")
}

fn args(manifest: &Path, percent: u32, spread: Duration) -> UpdateArgs {
    UpdateArgs {
        group: GROUP.into(),
        manifest: manifest.to_path_buf(),
        percent,
        rollout_id: None,
        max_rollbacks: 1,
        spread,
        force: false,
        stop: false,
        wait: Duration::from_secs(600),
        settle: Duration::from_secs(3),
        live_tty: false,
    }
}

fn secs(a: tokio::time::Instant, b: tokio::time::Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64()
}

fn count(r: &Report, f: impl Fn(Option<BoxState>, Option<UpdatePhase>) -> bool) -> usize {
    r.progress.count(|row| f(row.rollout, row.update))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let boxes = arg("--boxes", 100);
    let spread_s = arg("--spread-s", 30) as u64;
    let install_ms = arg("--install-ms", 500) as u64;

    let broker = start_broker()?;
    let served = tempfile::tempdir()?;
    let (_server, port) = serve(served.path())?;
    let work = tempfile::tempdir()?;
    let (private, public) = roombox::fleet::signing::generate();
    let key_file = work.path().join("fleet.key");
    std::fs::write(&key_file, format!("{private}\n"))?;
    let name = "roombox_0.2.0_amd64.deb";
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i * 31 + 7) as u8).collect();
    std::fs::write(served.path().join(name), &bytes)?;
    let mut m = roombox::update::manifest::for_package(
        &served.path().join(name),
        &format!("http://127.0.0.1:{port}/{name}"),
        Some("0.2.0".into()),
    )
    .map_err(anyhow::Error::msg)?;
    let sk = roombox::fleet::signing::parse_signing_key(&private).map_err(anyhow::Error::msg)?;
    roombox::update::manifest::sign(&mut m, &sk);
    let manifest: PathBuf = work.path().join("update.json");
    std::fs::write(&manifest, serde_json::json!({ "manifest": m }).to_string())?;

    let devices: Vec<String> = (0..boxes).map(|i| format!("box{i:03}")).collect();
    // The two that start first in the 100 % stage (outside the 10 %, lowest buckets) are bad.
    let mut second: Vec<&String> = devices
        .iter()
        .filter(|d| !selected(d, ROLLOUT, 10))
        .collect();
    second.sort_by_key(|d| bucket(d, ROLLOUT));
    let bad: Vec<String> = second.iter().take(2).map(|d| d.to_string()).collect();

    let root = tempfile::tempdir()?;
    let mut sims = Vec::with_capacity(boxes);
    for d in &devices {
        let dir = root.path().join(d);
        std::fs::create_dir_all(&dir)?;
        let c = box_config(broker.port, d, &dir, &public);
        let mut s = SimBox::start(&c, None, &dir).await?;
        let healthy = !bad.contains(d);
        s.simulate_installer(&dir, Duration::from_millis(install_ms), move |_| healthy);
        sims.push(s);
    }
    let conn = ConnArgs {
        broker: format!("mqtt://127.0.0.1:{}", broker.port),
        prefix: "bench".into(),
        signing_key: Some(key_file.clone()),
        ..Default::default()
    };
    let mut op = roombox::fleet::cli::Operator::connect(&conn).await?;
    common::group_pings(&mut op, GROUP, boxes, 1, Duration::from_secs(120)).await?;
    drop(op);

    let mut sink = Vec::new();
    let first = follow(&conn, &args(&manifest, 10, Duration::ZERO), &mut sink).await?;
    let second = follow(
        &conn,
        &args(&manifest, 100, Duration::from_secs(spread_s)),
        &mut sink,
    )
    .await?;
    let updated_on_boxes = sims
        .iter()
        .filter(|s| s.agent.state().borrow().update.state == UpdatePhase::Healthy)
        .count();
    for s in sims {
        drop(s);
    }
    let downloads = std::fs::read_to_string(served.path().join(".requests.log"))
        .map(|s| s.lines().count())
        .unwrap_or(0);

    let expected_first = devices.iter().filter(|d| selected(d, ROLLOUT, 10)).count();
    let healthy1 = count(&first, |_, u| u == Some(UpdatePhase::Healthy));
    let started2 = count(&second, |r, _| r == Some(BoxState::Started)) - healthy1;
    let held2 = count(&second, |r, _| r == Some(BoxState::Held));
    let rolled2 = count(&second, |_, u| u == Some(UpdatePhase::RolledBack));
    let healthy2 = count(&second, |_, u| u == Some(UpdatePhase::Healthy));
    let stop_s = second.stopped.map(|s| secs(second.published, s));

    println!("## Staged rollout: {boxes} simulated boxes, 10 % then 100 % (issue 21)\n");
    println!(
        "Measured on {} by `benches/fleet.sh --rollout --boxes {boxes} --spread-s {spread_s} --install-ms {install_ms}` ({} build). \
{boxes} simulated boxes in one process on one mosquitto 2.0 (the real agent and fleet client; each downloads the \
1 MB signed package from a loopback HTTP server and verifies size, SHA-256 and the fleet signature; the root \
installer is simulated: {install_ms} ms, then HEALTHY, or ROLLED_BACK for the two bad boxes). The operator side is \
`roombox fleet update`'s own loop with `--max-rollbacks 1`. Times run from the record's publication to the table's \
last change (the CLI then waits 3 s of quiet to exit).\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
    println!(
        "| stage | boxes answered | selected & started | HEALTHY | ROLLED_BACK | held | time |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| 10 % | {} | {} (hash predicts {expected_first}) | {healthy1} | {} | {} | {:.1} s |",
        first.progress.rows.len(),
        count(&first, |r, _| r == Some(BoxState::Started)),
        first.progress.rollbacks(),
        count(&first, |r, _| r == Some(BoxState::Held)),
        secs(first.published, first.last_change),
    );
    println!(
        "| 100 %, spread {spread_s} s | {} | {started2} more | {} more | {rolled2} | {held2} | stop at {}, last change {:.1} s |",
        second.progress.rows.len(),
        healthy2.saturating_sub(healthy1),
        stop_s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "never".into()),
        secs(second.published, second.last_change),
    );
    println!();
    println!(
        "Bad boxes: {} (the lowest buckets of the second stage). Exit code of the second stage: {} (3: stopped). \
Boxes whose agent ended HEALTHY on 0.2.0: {updated_on_boxes} of {boxes}. Package downloads: {downloads}, one per \
started box ({} started in all); the {held2} held boxes never downloaded.",
        bad.join(", "),
        second.code,
        count(&second, |r, _| r == Some(BoxState::Started)),
    );
    anyhow::ensure!(
        second.stopped.is_some() && rolled2 == 2,
        "the rollout did not stop on the two rollbacks"
    );
    Ok(())
}

//! Staged rollouts as an operator runs them: `roombox fleet update` (the real binary) against a
//! real mosquitto on loopback and 30 simulated boxes (the real agent and fleet client, the media
//! stand-in, and the simulated root installer of `fleet::sim`), downloading a real package from
//! the update tests' HTTP server and checking it against the fleet's signed manifest.
//!
//! It asserts what the operator sees in the CLI's table and what the boxes did: at 10 % only the
//! boxes the hash selects update; widening to 100 % adds the rest without touching the first
//! ones; a bad `--percent` and a malformed record change nothing; and in a rollout spread over
//! 20 s, two bad boxes rolling back stop it, and the boxes whose turn had not come never start.

mod support;

use roombox::config::Config;
use roombox::event::UpdatePhase;
use roombox::fleet::cli::{ConnArgs, Operator};
use roombox::fleet::rollout::{bucket, selected};
use roombox::fleet::sim::SimBox;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::mosquitto::Mosquitto;
use support::range::RangeServer;

const N: usize = 30;
const GROUP: &str = "floor-4";
const PREFIX: &str = "rt";

fn box_config(broker: &str, device: &str, dir: &Path, public_key: &str) -> Config {
    let mut c = Config::default();
    c.device.id = device.into();
    c.device.state_dir = dir.to_path_buf();
    c.media.video.source = roombox::config::VideoSource::None;
    c.media.audio.source = roombox::config::AudioSource::None;
    c.fleet.broker = broker.into();
    c.fleet.prefix = PREFIX.into();
    c.fleet.groups = vec![GROUP.into()];
    c.fleet.telemetry_interval = Duration::from_secs(3600);
    c.fleet.state_min_interval = Duration::from_millis(100);
    c.fleet.signing.public_key = public_key.into();
    c
}

/// A package file served by `server`, and its signed manifest in `{"manifest":...}` form.
fn signed_package(server: &RangeServer, key: &Path, version: &str, out: &Path) -> PathBuf {
    let name = format!("roombox_{version}_amd64.deb");
    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i * 7 + version.bytes().map(u32::from).sum::<u32>()) as u8)
        .collect();
    std::fs::write(server.dir.join(&name), bytes).unwrap();
    let mut m = roombox::update::manifest::for_package(
        &server.dir.join(&name),
        &server.url(&name),
        Some(version.into()),
    )
    .unwrap();
    let sk =
        roombox::fleet::signing::parse_signing_key(&std::fs::read_to_string(key).unwrap()).unwrap();
    roombox::update::manifest::sign(&mut m, &sk);
    let path = out.join(format!("{version}.json"));
    std::fs::write(&path, serde_json::json!({ "manifest": m }).to_string()).unwrap();
    path
}

/// `roombox fleet ... update <group> --manifest <m> <args>`: exit code, stdout, stderr.
async fn fleet_update(
    broker: &str,
    key: &Path,
    manifest: &Path,
    args: &[&str],
) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
        .args([
            "fleet",
            "--broker",
            broker,
            "--prefix",
            PREFIX,
            "--signing-key",
        ])
        .arg(key)
        .args(["update", GROUP, "--manifest"])
        .arg(manifest)
        .args(["--settle", "2s", "--wait", "90s"])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last table the CLI printed: device -> (ROLLOUT, UPDATE, REASON).
fn last_table(stdout: &str) -> BTreeMap<String, (String, String)> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("DEVICE"))
        .expect("a table");
    let mut rows = BTreeMap::new();
    for l in &lines[start + 1..] {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || !f[0].starts_with("box-") {
            break;
        }
        let update = f
            .get(3)
            .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        rows.insert(
            f[0].to_string(),
            (
                f[2].to_string(),
                update.map(|s| s.to_string()).unwrap_or_default(),
            ),
        );
    }
    rows
}

fn downloads(server: &RangeServer, version: &str) -> usize {
    let name = format!("/roombox_{version}_amd64.deb");
    server.requests().iter().filter(|(p, _)| *p == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_widens_and_stops_on_rollbacks() {
    let mosquitto = Mosquitto::start();
    let broker = mosquitto.url();
    let served = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), true);
    let work = tempfile::tempdir().unwrap();
    let (private, public) = roombox::fleet::signing::generate();
    let key = work.path().join("fleet.key");
    std::fs::write(&key, format!("{private}\n")).unwrap();
    let m2 = signed_package(&server, &key, "0.2.0", work.path());
    let m3 = signed_package(&server, &key, "0.3.0", work.path());

    let devices: Vec<String> = (0..N).map(|i| format!("box-{i:02}")).collect();
    // The two first to start in the 0.3.0 rollout (the smallest buckets) have a bad 0.3.0.
    let mut by_bucket = devices.clone();
    by_bucket.sort_by_key(|d| bucket(d, "0.3.0"));
    let bad: Vec<String> = by_bucket[..2].to_vec();
    let mut boxes = Vec::new();
    for d in &devices {
        let dir = tempfile::tempdir().unwrap();
        let c = box_config(&broker, d, dir.path(), &public);
        let mut b = SimBox::start(&c, None, dir.path()).await.unwrap();
        let is_bad = bad.contains(d);
        b.simulate_installer(dir.path(), Duration::from_millis(300), move |v| {
            !(is_bad && v == "0.3.0")
        });
        boxes.push((d.clone(), b, dir));
    }
    let conn = ConnArgs {
        broker: broker.clone(),
        prefix: PREFIX.into(),
        signing_key: Some(key.clone()),
        ..Default::default()
    };
    let mut op = Operator::connect(&conn).await.unwrap();
    for d in &devices {
        support::fleet::wait_online(&mut op, d, Duration::from_secs(30)).await;
    }
    let update_of = |b: &SimBox| {
        let s = b.agent.state();
        let u = s.borrow().update.clone();
        (u.state, u.version.unwrap_or_default())
    };

    // 10 %: only the boxes the hash selects update.
    let first: Vec<&String> = devices
        .iter()
        .filter(|d| selected(d, "0.2.0", 10))
        .collect();
    assert!(
        (1..=6).contains(&first.len()),
        "{} of {N} at 10 %",
        first.len()
    );
    let (code, out, err) = fleet_update(&broker, &key, &m2, &["--percent", "10"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let table = last_table(&out);
    assert_eq!(table.len(), N, "every box answered:\n{out}");
    for (d, b, _) in &boxes {
        let (rollout, update) = &table[d];
        if first.contains(&d) {
            assert_eq!(
                (rollout.as_str(), update.as_str()),
                ("STARTED", "HEALTHY"),
                "{d}\n{out}"
            );
            assert_eq!(update_of(b), (UpdatePhase::Healthy, "0.2.0".into()), "{d}");
        } else {
            assert_eq!(rollout, "NOT_SELECTED", "{d}\n{out}");
            assert_eq!(update_of(b).0, UpdatePhase::Idle, "{d} did not update");
        }
    }
    assert_eq!(downloads(&server, "0.2.0"), first.len());
    assert!(
        out.contains(&format!(
            "{N} boxes answered: {} started ({} HEALTHY",
            first.len(),
            first.len()
        )),
        "{out}"
    );

    // Widening to 100 %: the rest update, the first ones are not touched again.
    let (code, out, err) = fleet_update(&broker, &key, &m2, &["--percent", "100"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let table = last_table(&out);
    assert_eq!(table.len(), N, "{out}");
    assert!(
        table
            .values()
            .all(|(r, u)| r == "STARTED" && u == "HEALTHY"),
        "{out}"
    );
    for (d, b, _) in &boxes {
        assert_eq!(update_of(b), (UpdatePhase::Healthy, "0.2.0".into()), "{d}");
    }
    assert_eq!(downloads(&server, "0.2.0"), N, "each box downloaded once");

    // Bad input changes nothing: a percent out of range never leaves the CLI, and a record
    // with an unknown field is refused by every box with the reason.
    let (code, out, err) = fleet_update(&broker, &key, &m3, &["--percent", "150"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("--percent: percent: 150 is outside 0..=100"),
        "{err}"
    );
    op.subscribe(&[format!("{PREFIX}/+/events")]).await.unwrap();
    let topic = roombox::fleet::rollout::topic(PREFIX, GROUP);
    let mut junk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&m3).unwrap()).unwrap();
    junk = serde_json::json!({"rolloutId": "junk", "group": GROUP, "percent": 100, "state": "ACTIVE",
        "issuedMs": 1, "manifest": junk["manifest"], "batchSize": 5});
    op.publish_retained(&topic, junk.to_string().into_bytes())
        .await
        .unwrap();
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while refused < N {
        let Some(m) = op.next_until(deadline).await else {
            break;
        };
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
        if v["event"] == "error" && v["code"] == "rollout" {
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown field `batchSize`"),
                "{v}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, N, "every box said why it refused the record");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(downloads(&server, "0.3.0"), 0);
    for (d, b, _) in &boxes {
        assert_eq!(update_of(b), (UpdatePhase::Healthy, "0.2.0".into()), "{d}");
    }

    // 0.3.0 to everyone, starts spread over 20 s: the two bad boxes go first, roll back, and
    // the rollout stops with most boxes still waiting their turn.
    let (code, out, err) = fleet_update(
        &broker,
        &key,
        &m3,
        &[
            "--percent",
            "100",
            "--spread",
            "20s",
            "--max-rollbacks",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        out.contains("STOPPED: 2 boxes rolled back (more than --max-rollbacks 1)"),
        "{out}"
    );
    let table = last_table(&out);
    assert_eq!(table.len(), N, "{out}");
    for d in &bad {
        assert_eq!(table[d].1, "ROLLED_BACK", "{d}\n{out}");
    }
    let held: Vec<&String> = table
        .iter()
        .filter(|(_, (r, _))| r == "HELD")
        .map(|(d, _)| d)
        .collect();
    let started = table.values().filter(|(r, _)| r == "STARTED").count();
    assert!(held.len() >= N / 2, "{} held:\n{out}", held.len());
    assert_eq!(held.len() + started, N, "{out}");
    for (d, b, _) in &boxes {
        if held.contains(&d) {
            assert_eq!(
                update_of(b),
                (UpdatePhase::Healthy, "0.2.0".into()),
                "{d} never started 0.3.0"
            );
        }
    }
    assert_eq!(
        downloads(&server, "0.3.0"),
        started,
        "only the started boxes downloaded: {:?}\n{out}",
        server.requests()
    );
    // A box that comes back later reads the retained STOPPED record and does not start.
    let late_dir = tempfile::tempdir().unwrap();
    let late = box_config(&broker, "box-late", late_dir.path(), &public);
    let late_box = SimBox::start(&late, None, late_dir.path()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut late_state = None;
    while late_state.is_none() {
        let Some(m) = op.next_until(deadline).await else {
            break;
        };
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
        if m.topic.contains("box-late") && v["event"] == "rollout-state-changed" {
            late_state = v["state"].as_str().map(str::to_string);
        }
    }
    assert_eq!(late_state.as_deref(), Some("HELD"));
    assert_eq!(update_of(&late_box).0, UpdatePhase::Idle);

    for (_, b, _) in boxes {
        b.shutdown().await;
    }
    late_box.shutdown().await;
}

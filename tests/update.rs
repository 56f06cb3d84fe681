//! Software updates against a real HTTP server on loopback (`tests/support/range_server.py`):
//! a download cut in the middle resumes with a Range request and verifies; a server without
//! Range support starts over; a wrong hash, a wrong size and a bad signature are refused and
//! leave nothing installable; and the real agent, asked over its control socket, downloads and
//! verifies during a recording but waits, and hands the package to the installer once the room
//! is idle.

mod support;

use roombox::command::{Command, ErrorCode, UpdateManifest};
use roombox::event::{Event, UpdatePhase};
use roombox::model::RecordingTarget;
use roombox::update::download::{fetch, sha256_file, Fetch, Progress};
use roombox::update::install::{Request, REQUEST};
use std::path::Path;
use std::time::Duration;
use support::agent::{wait_event, AgentProcess, SMALL_MEDIA};
use support::range::RangeServer;

const SIZE: usize = 3 * 1024 * 1024 + 123;

/// A package of pseudo-random bytes in `dir`: its manifest (unsigned).
fn package(dir: &Path, server: &RangeServer, name: &str) -> UpdateManifest {
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..SIZE)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    UpdateManifest {
        version: "9.9.9".into(),
        url: server.url(name),
        size: SIZE as u64,
        sha256: sha256_file(&path).unwrap(),
        signature: None,
    }
}

fn fetch_of(manifest: &UpdateManifest, dir: &Path) -> Fetch {
    Fetch {
        manifest: manifest.clone(),
        dir: dir.to_path_buf(),
        reserve_bytes: 0,
        stall_timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn a_cut_download_resumes_with_a_range_and_verifies() {
    let served = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), true);
    let m = package(served.path(), &server, "roombox_9.9.9_amd64.deb");
    let f = fetch_of(&m, state.path());
    let cut = 1_000_000u64;
    server.cut_next("roombox_9.9.9_amd64.deb", cut);

    let e = fetch(&f, |_| {}).await.unwrap_err();
    assert!(e.contains("of 3145851 bytes"), "{e}");
    assert_eq!(std::fs::metadata(f.part_path()).unwrap().len(), cut);

    let mut seen = Vec::new();
    let path = fetch(&f, |p| seen.push(p)).await.expect("resumed");
    assert_eq!(path, f.package_path());
    assert_eq!(sha256_file(&path).unwrap(), m.sha256);
    assert!(!f.part_path().exists());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].1, None);
    assert_eq!(
        reqs[1].1.as_deref(),
        Some("bytes=1000000-"),
        "resumed where it was cut"
    );
    // Progress counts from what was already there, and ends with the check.
    match seen.first() {
        Some(Progress::Downloading { done, total }) => {
            assert!(*done > cut && *total == SIZE as u64)
        }
        other => panic!("first progress {other:?}"),
    }
    assert_eq!(seen.last(), Some(&Progress::Verifying));

    // Asked again, the verified package is reused without a request.
    fetch(&f, |_| {}).await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_server_without_range_support_starts_over_and_still_verifies() {
    let served = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), false);
    let m = package(served.path(), &server, "p.deb");
    let f = fetch_of(&m, state.path());
    server.cut_next("p.deb", 700_000);
    assert!(fetch(&f, |_| {}).await.is_err());
    let path = fetch(&f, |_| {}).await.expect("started over");
    assert_eq!(sha256_file(&path).unwrap(), m.sha256);
    assert_eq!(server.requests()[1].1.as_deref(), Some("bytes=700000-"));
}

#[tokio::test]
async fn a_wrong_hash_or_size_is_refused_and_leaves_nothing_to_install() {
    let served = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), true);
    let good = package(served.path(), &server, "p.deb");

    let mut bad_hash = good.clone();
    bad_hash.sha256 = "00".repeat(32);
    let f = fetch_of(&bad_hash, state.path());
    let e = fetch(&f, |_| {}).await.unwrap_err();
    assert!(e.contains("SHA-256 mismatch"), "{e}");
    assert!(!f.part_path().exists() && !f.package_path().exists());

    let mut short = good.clone();
    short.size -= 1;
    let f = fetch_of(&short, state.path());
    let e = fetch(&f, |_| {}).await.unwrap_err();
    assert!(
        e.contains("3145851 bytes; the manifest says 3145850"),
        "{e}"
    );
    assert!(!f.package_path().exists());

    let mut missing = good.clone();
    missing.url = server.url("nope.deb");
    let e = fetch(&fetch_of(&missing, state.path()), |_| {})
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 404"), "{e}");

    let mut huge = good;
    huge.size = u64::MAX / 4;
    let mut f = fetch_of(&huge, state.path());
    f.reserve_bytes = 0;
    let e = fetch(&f, |_| {}).await.unwrap_err();
    assert!(e.contains("not enough space"), "{e}");
}

fn update_event(e: &Event) -> Option<(UpdatePhase, Option<u8>, Option<String>)> {
    match e {
        Event::UpdateStateChanged {
            state,
            percent,
            reason,
            ..
        } => Some((*state, *percent, reason.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn the_agent_downloads_during_a_recording_but_installs_only_once_the_room_is_idle() {
    let served = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), true);
    let mut m = package(served.path(), &server, "roombox_9.9.9_amd64.deb");
    let (private, public) = roombox::fleet::signing::generate();
    let key = roombox::config::parse_signing_key(&private).unwrap();
    roombox::update::manifest::sign(&mut m, &key);
    let agent = AgentProcess::start(&format!(
        "{SMALL_MEDIA}\n[fleet.signing]\npublic_key = \"{public}\"\n[update]\ntimezone = \"UTC\"\nreserve_bytes = 0\n"
    ));
    let rec = agent
        .call(Command::StartRecording {
            target: RecordingTarget::Local,
        })
        .await;
    assert!(rec.ok, "{rec:?}");
    let mut events = agent.events().await;

    // Refused, and nothing changes: a tampered manifest, an unsigned one.
    let mut tampered = m.clone();
    tampered.version = "9.9.10".into();
    let mut unsigned = m.clone();
    unsigned.signature = None;
    for bad in [tampered, unsigned] {
        let r = agent
            .call(Command::Update {
                manifest: bad,
                force: false,
            })
            .await;
        assert_eq!(r.error.unwrap().code, ErrorCode::Unauthorized);
    }
    assert_eq!(agent.state().await["update"]["state"], "IDLE");

    let r = agent
        .call(Command::Update {
            manifest: m.clone(),
            force: false,
        })
        .await;
    assert!(r.ok, "{r:?}");
    let mut seen = Vec::new();
    let waiting = wait_event(&mut events, Duration::from_secs(60), |e| {
        matches!(
            update_event(e),
            Some((UpdatePhase::Waiting | UpdatePhase::Failed, ..))
        )
    })
    .await
    .unwrap_or_else(|| panic!("no WAITING; log:\n{}", agent.log()));
    seen.push(update_event(&waiting).unwrap());
    assert_eq!(
        seen[0],
        (
            UpdatePhase::Waiting,
            None,
            Some("the room is recording".into())
        )
    );
    let verified = agent
        .state_dir()
        .join("update")
        .join(format!("{}.deb", m.sha256));
    assert_eq!(sha256_file(&verified).unwrap(), m.sha256);
    let request = agent.state_dir().join("update").join(REQUEST);
    assert!(
        !request.exists(),
        "nothing goes to the installer in a meeting"
    );
    let s = agent.state().await;
    assert_eq!(s["update"]["state"], "WAITING");
    assert_eq!(s["update"]["version"], "9.9.9");

    // Ticks pass and it still waits; then the recording stops and it installs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!request.exists());
    let r = agent
        .call(Command::StopRecording {
            target: RecordingTarget::Local,
        })
        .await;
    assert!(r.ok);
    let installing = wait_event(&mut events, Duration::from_secs(30), |e| {
        matches!(update_event(e), Some((UpdatePhase::Installing, ..)))
    })
    .await;
    assert!(installing.is_some(), "no INSTALLING; log:\n{}", agent.log());
    let req: Request = serde_json::from_slice(&std::fs::read(&request).unwrap()).unwrap();
    assert_eq!(req.manifest, m);
    assert_eq!(req.package, verified);
}

#[tokio::test]
async fn progress_events_count_up_to_verifying() {
    let served = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), true);
    let m = package(served.path(), &server, "p.deb");
    let agent = AgentProcess::start(&format!(
        "{SMALL_MEDIA}\n[update]\nallow_unsigned = true\nreserve_bytes = 0\n"
    ));
    let mut events = agent.events().await;
    let r = agent
        .call(Command::Update {
            manifest: m,
            force: false,
        })
        .await;
    assert!(r.ok, "{r:?}");
    let mut phases = Vec::new();
    while let Some(e) = wait_event(&mut events, Duration::from_secs(60), |e| {
        update_event(e).is_some()
    })
    .await
    {
        let (p, pct, _) = update_event(&e).unwrap();
        phases.push((p, pct));
        if matches!(p, UpdatePhase::Installing | UpdatePhase::Failed) {
            break;
        }
    }
    assert_eq!(phases.first(), Some(&(UpdatePhase::Downloading, Some(0))));
    let pcts: Vec<u8> = phases.iter().filter_map(|(_, p)| *p).collect();
    assert!(pcts.windows(2).all(|w| w[0] < w[1]), "{pcts:?}");
    assert_eq!(pcts.last(), Some(&100));
    let tail: Vec<UpdatePhase> = phases.iter().rev().take(2).map(|(p, _)| *p).collect();
    assert_eq!(tail, vec![UpdatePhase::Installing, UpdatePhase::Verifying]);
}

#[test]
fn the_installed_package_is_rebuilt_from_dpkgs_database() {
    // base-files is on every Debian system, with conffiles and maintainer scripts. The umask is
    // roombox-update.service's (UMask=0077).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base-files.deb");
    roombox::update::repack::rebuild("base-files", &out).expect("rebuilt");
    let field = |f: &str| {
        let o = std::process::Command::new("dpkg-deb")
            .arg("-f")
            .arg(&out)
            .arg(f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let installed = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "base-files"])
        .output()
        .unwrap();
    assert_eq!(field("Package"), "base-files");
    assert_eq!(field("Version"), String::from_utf8_lossy(&installed.stdout));
    assert_eq!(field("Status"), "", "dpkg's own fields are left out");
    let ctrl = std::process::Command::new("dpkg-deb")
        .arg("-I")
        .arg(&out)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&ctrl.stdout);
    assert!(
        info.contains("conffiles") && info.contains("postinst"),
        "{info}"
    );

    let conffiles = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --ctrl-tarfile {} | tar -xO ./conffiles",
            out.display()
        ))
        .output()
        .unwrap();
    let conffiles = String::from_utf8_lossy(&conffiles.stdout);
    assert!(conffiles.lines().any(|l| l == "/etc/issue"), "{conffiles}");
    let list = std::process::Command::new("dpkg-deb")
        .arg("-c")
        .arg(&out)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("./etc/debian_version"), "{list}");
    assert!(list.contains("root/root"), "owned by root: {list}");
}

#[tokio::test]
async fn the_readmes_commands_sign_an_update_and_send_it_over_the_control_socket() {
    let served = tempfile::tempdir().unwrap();
    let server = RangeServer::start(served.path(), true);
    let m = package(served.path(), &server, "p.deb");
    let keys = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_roombox");
    let key_file = keys.path().join("fleet.key");
    let out = std::process::Command::new(bin)
        .args(["fleet", "keygen"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = std::process::Command::new(bin)
        .arg("fleet")
        .arg("--signing-key")
        .arg(&key_file)
        .args(["sign-update", "--version", "9.9.9", "--url", &m.url])
        .arg(served.path().join("p.deb"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payload = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v["manifest"]["sha256"], m.sha256.as_str());
    assert_eq!(v["manifest"]["size"], SIZE);

    let agent = AgentProcess::start(&format!(
        "{SMALL_MEDIA}\n[fleet.signing]\npublic_key = \"{public}\"\n[update]\nreserve_bytes = 0\n"
    ));
    let cmd = |payload: &str| {
        std::process::Command::new(bin)
            .arg("cmd")
            .arg("--socket")
            .arg(&agent.socket)
            .arg("update")
            .arg(payload)
            .output()
            .unwrap()
    };
    let tampered = payload.replace("9.9.9", "9.9.8");
    let refused = cmd(&tampered);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("unauthorized"));
    let ok = cmd(&payload);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let reply: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(reply["result"]["signed"], true);
}

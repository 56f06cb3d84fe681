//! The real pipeline on synthetic sources: crash-safe segments, clean stop, full disk.

mod support;

use nix::sys::signal::Signal;
use roombox::command::Command;
use roombox::event::Event;
use roombox::model::{RecordingTarget, ServiceState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::agent::{discover, files, wait_event, AgentProcess, SMALL_MEDIA};

const START: Command = Command::StartRecording {
    target: RecordingTarget::Local,
};

fn recording_config(format: &str, segment: &str) -> String {
    format!(
        "{SMALL_MEDIA}\n[recording]\nformat = \"{format}\"\nsegment = \"{segment}\"\nfragment = \"500ms\"\nmin_free_mb = 0\nstop_free_mb = 0\n"
    )
}

fn recordings(agent: &AgentProcess) -> PathBuf {
    agent.state_dir().join("recordings")
}

fn assert_segment(path: &Path, video: &str, audio: &str, expect: Duration) {
    let d = discover(path).unwrap_or_else(|e| panic!("segment does not demux: {e}"));
    assert!(
        d.streams.iter().any(|s| s == video),
        "{}: {:?}",
        path.display(),
        d.streams
    );
    assert!(
        d.streams.iter().any(|s| s == audio),
        "{}: {:?}",
        path.display(),
        d.streams
    );
    let (lo, hi) = (expect.mul_f64(0.9), expect.mul_f64(1.1));
    assert!(
        d.duration >= lo && d.duration <= hi,
        "{}: duration {:?} not within 10% of {:?}",
        path.display(),
        d.duration,
        expect
    );
}

/// Starts the local recording and waits until it is STARTED.
async fn start_recording(agent: &AgentProcess) {
    let mut events = agent.events().await;
    assert!(agent.call(START).await.ok);
    wait_event(&mut events, Duration::from_secs(30), |e| {
        matches!(
            e,
            Event::RecordingStateChanged {
                state: ServiceState::Started,
                ..
            }
        )
    })
    .await
    .expect("recording started");
}

/// The paths of the next `n` segments closed, in order.
async fn closed_segments(
    events: &mut roombox::api::EventStream,
    n: usize,
    agent: &AgentProcess,
) -> Vec<PathBuf> {
    let mut closed = Vec::new();
    while closed.len() < n {
        let ev = wait_event(events, Duration::from_secs(30), |e| {
            matches!(e, Event::RecordingSegmentClosed { .. })
        })
        .await
        .unwrap_or_else(|| panic!("no segment closed; log:\n{}", agent.log()));
        if let Event::RecordingSegmentClosed { path, bytes } = ev {
            assert!(bytes > 0, "{path} is empty");
            closed.push(PathBuf::from(path));
        }
    }
    closed
}

async fn sigkill_keeps_closed_segments(format: &str, audio_caps: &str) {
    let agent = AgentProcess::start(&recording_config(format, "2s"));
    let mut events = agent.events().await;
    assert!(agent.call(START).await.ok);
    let closed = closed_segments(&mut events, 3, &agent).await;
    // Let the next segment get some data, then kill without warning.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    agent.signal(Signal::SIGKILL);
    let on_disk = files(&recordings(&agent));
    assert!(
        on_disk.len() > closed.len(),
        "the open segment is on disk too"
    );
    for p in &closed {
        assert!(on_disk.contains(p));
        assert_segment(p, "video/x-h264", audio_caps, Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_closed_mp4_segment_playable() {
    sigkill_keeps_closed_segments("mp4", "audio/mpeg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_closed_mkv_segment_playable() {
    sigkill_keeps_closed_segments("mkv", "audio/x-opus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_at_most_about_a_fragment_of_the_open_mp4_segment() {
    let agent = AgentProcess::start(&recording_config("mp4", "30s"));
    start_recording(&agent).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let recorded = started.elapsed();
    agent.signal(Signal::SIGKILL);
    let segs = files(&recordings(&agent));
    assert_eq!(segs.len(), 1);
    let d = discover(&segs[0]).expect("the killed segment still demuxes");
    let lost = recorded.saturating_sub(d.duration);
    assert!(
        lost <= Duration::from_millis(1500),
        "recorded {recorded:?}, kept {:?}: lost {lost:?}",
        d.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finalises_the_last_segment_and_exits_zero() {
    let mut agent = AgentProcess::start(&recording_config("mp4", "3s"));
    start_recording(&agent).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let recorded = started.elapsed();
    agent.signal(Signal::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        agent.log()
    );
    let segs = files(&recordings(&agent));
    assert_eq!(segs.len(), 2, "{segs:?}");
    let total: Duration = segs
        .iter()
        .map(|p| discover(p).unwrap_or_else(|e| panic!("{e}")).duration)
        .sum();
    let diff = total.abs_diff(recorded);
    assert!(
        diff <= recorded / 10,
        "recorded {recorded:?} but the segments hold {total:?}"
    );
    assert!(agent
        .log()
        .contains("recording-state-changed\",\"target\":\"local\",\"state\":\"STOPPED"));
}

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "the disk-full tests mount a small tmpfs and need root"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

async fn full_disk(segment: &str, retention: &str, filler_kib: usize, expect_reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let _fs = Tmpfs::mount(&rec, "3m");
    std::fs::write(rec.join("filler.bin"), vec![0u8; filler_kib << 10]).unwrap();
    let body = format!(
        "{SMALL_MEDIA}\n[recording]\ndir = \"{}\"\nsegment = \"{segment}\"\nfragment = \"500ms\"\n{retention}\n",
        rec.display()
    );
    let agent = AgentProcess::start_in(dir, &body);
    let mut events = agent.events().await;
    assert!(agent.call(START).await.ok);
    let ev = wait_event(&mut events, Duration::from_secs(90), |e| {
        matches!(
            e,
            Event::RecordingStateChanged {
                state: ServiceState::Failed,
                ..
            }
        )
    })
    .await
    .unwrap_or_else(|| panic!("no FAILED event; log:\n{}", agent.log()));
    let Event::RecordingStateChanged { reason, .. } = ev else {
        unreachable!()
    };
    let reason = reason.unwrap_or_default();
    assert!(reason.contains(expect_reason), "reason: {reason}");
    // The agent stays up and capture goes on.
    let s = agent
        .wait_state("media still playing", Duration::from_secs(10), |s| {
            s["media"]["state"] == "PLAYING" && s["media"]["fps"].as_f64().unwrap_or(0.0) > 5.0
        })
        .await;
    assert_eq!(s["recording"]["state"], "FAILED");
    assert_eq!(s["health"]["ok"], false);
    assert!(agent.call(Command::Ping).await.ok);
    // What was written before the disk filled still plays.
    let closed: Vec<_> = files(&rec)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
        .collect();
    assert!(!closed.is_empty());
    assert!(discover(&closed[0]).is_ok(), "first segment demuxes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_mid_recording_fails_the_recording_not_the_agent() {
    full_disk("2s", "min_free_mb = 0\nstop_free_mb = 0", 1024, "disk full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_stops_recording_before_the_disk_is_full() {
    // 3 MiB disk with 1.6 MiB of someone else's data; the open segment (which retention never
    // deletes) grows until less than 1 MiB is left, and recording stops cleanly.
    full_disk("1h", "min_free_mb = 1\nstop_free_mb = 1", 1638, "MiB free").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_the_oldest_segments_to_keep_space() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let _fs = Tmpfs::mount(&rec, "8m");
    // An old segment someone left, and a file that is not ours.
    std::fs::write(rec.join("roombox-old-0000.mp4"), vec![0u8; 3 << 20]).unwrap();
    std::fs::write(rec.join("notes.txt"), b"not a segment").unwrap();
    let body = format!(
        "{SMALL_MEDIA}\n[recording]\ndir = \"{}\"\nsegment = \"2s\"\nmin_free_mb = 6\nstop_free_mb = 0\n",
        rec.display()
    );
    let agent = AgentProcess::start_in(dir, &body);
    assert!(agent.call(START).await.ok);
    agent
        .wait_state("recording", Duration::from_secs(30), |s| {
            s["recording"]["state"] == "STARTED"
        })
        .await;
    assert!(
        !rec.join("roombox-old-0000.mp4").exists(),
        "oldest segment deleted first"
    );
    assert!(
        rec.join("notes.txt").exists(),
        "files that are not segments are never touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_have_the_configured_length_whatever_the_keyframe_interval() {
    // A 3 s keyframe interval with 2 s segments: the recorder asks the encoder for a keyframe at
    // each boundary instead of waiting for the next natural one.
    let body = recording_config("mp4", "2s")
        .replace("keyframe_interval = \"1s\"", "keyframe_interval = \"3s\"");
    let agent = AgentProcess::start(&body);
    let mut events = agent.events().await;
    assert!(agent.call(START).await.ok);
    let closed = closed_segments(&mut events, 3, &agent).await;
    for p in &closed {
        assert_segment(p, "video/x-h264", "audio/mpeg", Duration::from_secs(2));
    }
}

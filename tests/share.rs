//! Content share from the box, through the real media engine and GStreamer elements: the share
//! starts and stops beside the camera without restarting it, its own encode decodes at its own
//! size, and the program (what local outputs show) switches from the camera to the share's
//! encode and back at keyframes, with the switch measured.

mod support;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roombox::config::{AudioSource, Config, ShareSource, VideoSource};
use roombox::config::{RecordingConfig, RecordingFormat};
use roombox::event::MediaState;
use roombox::media::engine::Engine;
use roombox::media::recorder::RecorderSpec;
use roombox::media::rtmp::RtmpSpec;
use roombox::media::{
    ConsumerEvent, ConsumerId, ConsumerSpec, EncodedSample, Feed, MediaAction, MediaControl,
    MediaNotice, ShareNotice, TapSender,
};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.device.state_dir = dir.to_path_buf();
    c.media.video.source = VideoSource::Test;
    c.media.video.width = 320;
    c.media.video.height = 240;
    c.media.video.fps = 15;
    c.media.video.bitrate_kbps = 500;
    c.media.video.min_bitrate_kbps = 100;
    c.media.video.max_bitrate_kbps = 1000;
    c.media.audio.source = AudioSource::None;
    c.media.share.source = ShareSource::Test;
    c.media.share.width = 640;
    c.media.share.height = 360;
    c.media.share.fps = 10;
    c.media.share.bitrate_kbps = 800;
    c
}

/// The engine, and every notice it sent, as they come.
struct Rig {
    engine: Engine,
    notices: mpsc::UnboundedReceiver<MediaNotice>,
    seen: Vec<MediaNotice>,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Rig {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        tweak(&mut c);
        let (tx, notices) = mpsc::unbounded_channel();
        let mut engine = Engine::spawn(c, tx);
        engine.apply(MediaAction::Start);
        let mut r = Rig {
            engine,
            notices,
            seen: Vec::new(),
            _dir: dir,
        };
        r.wait_for("capture playing", |n| {
            matches!(
                n,
                MediaNotice::State {
                    state: MediaState::Playing,
                    ..
                }
            )
        })
        .await;
        r
    }

    async fn wait_for(&mut self, what: &str, f: impl Fn(&MediaNotice) -> bool) -> MediaNotice {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = tokio::time::timeout_at(deadline, self.notices.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {:?}", self.seen))
                .expect("the engine ended");
            self.seen.push(n.clone());
            if f(&n) {
                return n;
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(n) = self.notices.try_recv() {
            self.seen.push(n);
        }
    }

    fn tap(&mut self, name: &str, feeds: Vec<Feed>) -> mpsc::Receiver<EncodedSample> {
        let (tx, rx) = mpsc::channel(1024);
        self.engine.apply(MediaAction::Attach {
            id: ConsumerId::Rtmp(name.into()),
            spec: ConsumerSpec::TapFeeds(feeds, TapSender(tx)),
        });
        rx
    }

    /// Every time capture was (re)started after it first played: the camera must never be.
    fn capture_restarts(&self) -> usize {
        self.seen
            .iter()
            .skip_while(|n| {
                !matches!(
                    n,
                    MediaNotice::State {
                        state: MediaState::Playing,
                        ..
                    }
                )
            })
            .filter(|n| {
                matches!(
                    n,
                    MediaNotice::State {
                        state: MediaState::Starting | MediaState::Restarting,
                        ..
                    }
                )
            })
            .count()
    }
}

/// Everything that came on `rx` so far, with the wall time it was taken.
fn take(rx: &mut mpsc::Receiver<EncodedSample>, into: &mut Vec<(Instant, EncodedSample)>) {
    while let Ok(s) = rx.try_recv() {
        into.push((Instant::now(), s));
    }
}

/// Collects `rx` for `d`, with the wall time each sample was taken.
async fn collect(
    rx: &mut mpsc::Receiver<EncodedSample>,
    into: &mut Vec<(Instant, EncodedSample)>,
    d: Duration,
) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        take(rx, into);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    take(rx, into);
}

/// Decodes H.264 access units with GStreamer's own parser and decoder (not ours): each decoded
/// frame's timestamp and size.
fn decode(samples: &[EncodedSample]) -> Vec<(Duration, i32, i32)> {
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time caps=video/x-h264,stream-format=byte-stream,alignment=au \
         ! h264parse ! avdec_h264 ! videoconvert ! appsink name=sink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for s in samples {
        let mut b = gst::Buffer::from_slice(s.data.to_vec());
        b.get_mut().unwrap().set_pts(
            s.pts
                .map(|p| gst::ClockTime::from_nseconds(p.as_nanos() as u64)),
        );
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        let pts = sample.buffer().and_then(|b| b.pts()).unwrap_or_default();
        out.push((
            Duration::from_nanos(pts.nseconds()),
            caps.get::<i32>("width").unwrap(),
            caps.get::<i32>("height").unwrap(),
        ));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// From the first keyframe on.
fn from_key(s: &[(Instant, EncodedSample)]) -> &[(Instant, EncodedSample)] {
    let i = s.iter().position(|(_, x)| x.keyframe).unwrap_or(s.len());
    &s[i..]
}

/// The longest wait between two consecutive samples.
fn longest_gap(samples: &[(Instant, EncodedSample)]) -> Duration {
    samples
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_runs_beside_the_camera_and_the_program_follows_it() {
    let mut r = Rig::start(|_| {}).await;
    let mut camera_rx = r.tap("camera", vec![Feed::H264]);
    let mut share_rx = r.tap("share", vec![Feed::Share]);
    let mut program_rx = r.tap("program", vec![Feed::Program]);
    let mut camera = Vec::new();
    let mut share = Vec::new();
    let mut program = Vec::new();

    // Before any share: the camera flows; the share's consumer is attached and gets nothing.
    collect(&mut camera_rx, &mut camera, Duration::from_secs(1)).await;
    take(&mut share_rx, &mut share);
    take(&mut program_rx, &mut program);
    assert!(
        camera.len() >= 5,
        "camera frames before the share: {}",
        camera.len()
    );
    assert!(
        share.is_empty(),
        "the share's consumer got {} frames with no share",
        share.len()
    );

    for round in 0..2 {
        let asked = Instant::now();
        r.engine.apply(MediaAction::StartShare);
        r.wait_for("share started", |n| {
            matches!(n, MediaNotice::Share(ShareNotice::Started))
        })
        .await;
        let cam_before = camera.len();
        let prog_before = program.len();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            take(&mut camera_rx, &mut camera);
            take(&mut share_rx, &mut share);
            take(&mut program_rx, &mut program);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let shared: Vec<EncodedSample> = share.drain(..).map(|(_, s)| s).collect();
        let decoded = decode(&shared);
        assert!(
            decoded.len() >= 15,
            "round {round}: {} share frames decoded of {} in 3 s at 10 fps",
            decoded.len(),
            shared.len()
        );
        assert!(
            decoded.iter().all(|&(_, w, h)| (w, h) == (640, 360)),
            "the share keeps its own size: {:?}",
            &decoded[..3]
        );
        assert!(shared[0].keyframe, "the share starts with a keyframe");
        // The camera never paused for the share.
        assert!(
            camera.len() - cam_before >= 30,
            "round {round}: camera frames while sharing: {}",
            camera.len() - cam_before
        );
        assert!(
            longest_gap(&camera[cam_before..]) < Duration::from_millis(500),
            "round {round}: the camera stalled {:?} as the share started",
            longest_gap(&camera[cam_before..])
        );

        // The program went from the camera's size to the share's, without a gap.
        let prog = from_key(&program[prog_before..]);
        let samples: Vec<EncodedSample> = prog.iter().map(|(_, s)| s.clone()).collect();
        let frames = decode(&samples);
        let first_share = frames
            .iter()
            .position(|&(_, w, _)| w == 640)
            .unwrap_or_else(|| panic!("round {round}: the program never showed the share"));
        assert!(
            frames[first_share..].iter().all(|&(_, w, _)| w == 640),
            "round {round}: the program went back to the camera while sharing"
        );
        let at = frames[first_share].0;
        let pos = program
            .iter()
            .position(|(_, s)| s.pts == Some(at))
            .expect("the decoded frame's sample");
        assert!(pos > 0, "the program had camera frames before the share");
        let before = program[pos - 1].1.pts.unwrap_or_default();
        assert!(
            at > before,
            "the program's time went back at the switch: {before:?} then {at:?}"
        );
        let gap = at - before;
        eprintln!(
            "round {round}: the program showed the share {:?} after start-share; the picture \
             paused {gap:?} between the last camera frame and the first share frame",
            program[pos].0 - asked
        );
        assert!(
            gap < Duration::from_millis(300),
            "round {round}: the program showed nothing for {gap:?} at the switch"
        );

        // Stop: the camera goes on, the share's consumer gets nothing more, the program is the
        // camera again.
        take(&mut camera_rx, &mut camera);
        take(&mut program_rx, &mut program);
        let cam_before = camera.len();
        let prog_before = program.len();
        let stop_at = Instant::now();
        r.engine.apply(MediaAction::StopShare);
        r.wait_for("share stopped", |n| {
            matches!(n, MediaNotice::Share(ShareNotice::Stopped))
        })
        .await;
        // What was in the channel before the stop.
        take(&mut share_rx, &mut share);
        share.clear();
        let end = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < end {
            take(&mut camera_rx, &mut camera);
            take(&mut program_rx, &mut program);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        take(&mut share_rx, &mut share);
        assert!(
            share.is_empty(),
            "round {round}: share frames after its stop"
        );
        assert!(
            camera.len() - cam_before >= 15,
            "round {round}: camera frames after the stop: {}",
            camera.len() - cam_before
        );
        assert!(
            longest_gap(&camera[cam_before..]) < Duration::from_millis(500),
            "round {round}: the camera stalled as the share stopped"
        );
        let back = from_key(&program[prog_before..]);
        assert!(
            !back.is_empty(),
            "round {round}: the program got no keyframe after the stop"
        );
        let samples: Vec<EncodedSample> = back.iter().map(|(_, s)| s.clone()).collect();
        let frames = decode(&samples);
        assert!(
            frames.len() >= 10 && frames.iter().all(|&(_, w, _)| w == 320),
            "round {round}: the program after the stop: {} frames, sizes {:?}",
            frames.len(),
            frames
                .iter()
                .map(|f| f.1)
                .collect::<std::collections::BTreeSet<_>>()
        );
        eprintln!(
            "round {round}: the program was the camera again {:?} after stop-share",
            back[0].0 - stop_at
        );
    }
    r.drain();
    assert_eq!(
        r.capture_restarts(),
        0,
        "the camera was restarted: {:?}",
        r.seen
    );
    r.engine.apply(MediaAction::Stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grabber_that_fails_stops_the_share_and_not_the_camera() {
    let mut r = Rig::start(|c| {
        c.media.share.source = ShareSource::V4l2;
        c.media.share.device = "/dev/v4l/by-id/roombox-test-absent-grabber".into();
    })
    .await;
    let signal = |n: &MediaNotice| matches!(n, MediaNotice::Share(ShareNotice::Signal(_)));
    let n = match r.seen.iter().find(|n| signal(n)) {
        Some(n) => n.clone(),
        None => r.wait_for("the grabber's signal", signal).await,
    };
    assert_eq!(
        n,
        MediaNotice::Share(ShareNotice::Signal(false)),
        "no grabber, no signal"
    );
    let mut camera_rx = r.tap("camera", vec![Feed::H264]);
    r.engine.apply(MediaAction::StartShare);
    let n = r
        .wait_for("the share's failure", |n| {
            matches!(n, MediaNotice::Share(_))
        })
        .await;
    let MediaNotice::Share(ShareNotice::Failed(e)) = n else {
        panic!("expected a failure, got {n:?}");
    };
    assert!(e.to_string().contains("share"), "{e}");
    let mut camera = Vec::new();
    collect(&mut camera_rx, &mut camera, Duration::from_secs(2)).await;
    assert!(
        camera.len() >= 15,
        "the camera after the grabber failed: {}",
        camera.len()
    );
    r.drain();
    assert_eq!(
        r.capture_restarts(),
        0,
        "the camera was restarted: {:?}",
        r.seen
    );
    r.engine.apply(MediaAction::Stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_share_source_start_share_says_so() {
    let mut r = Rig::start(|c| c.media.share.source = ShareSource::None).await;
    r.engine.apply(MediaAction::StartShare);
    let n = r
        .wait_for("the refusal", |n| matches!(n, MediaNotice::Share(_)))
        .await;
    assert!(
        matches!(n, MediaNotice::Share(ShareNotice::Failed(_))),
        "{n:?}"
    );
    r.engine.apply(MediaAction::Stop);
}

/// Each decoded video frame of a recording as ffprobe (not our code) sees it: time and width.
fn frames_of(path: &std::path::Path) -> Vec<(f64, i64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "frame=pts_time,width", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe's json");
    v["frames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    let t = f["pts_time"].as_str()?.parse().ok()?;
                    Some((t, f["width"].as_i64()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_output_follows_the_program_without_a_restart() {
    let nginx = support::nginx::NginxRtmp::start();
    let mut r = Rig::start(|_| {}).await;
    let id = ConsumerId::Rtmp("main".into());
    r.engine.apply(MediaAction::Attach {
        id: id.clone(),
        spec: ConsumerSpec::Rtmp(RtmpSpec {
            name: "main".into(),
            url: nginx.url(),
            key: roombox::model::StreamKey::new("program"),
            reconnect: Default::default(),
        }),
    });
    r.wait_for("the output started", |n| {
        matches!(
            n,
            MediaNotice::Consumer {
                event: ConsumerEvent::Started,
                ..
            }
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.engine.apply(MediaAction::StartShare);
    r.wait_for("share started", |n| {
        matches!(n, MediaNotice::Share(ShareNotice::Started))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    r.engine.apply(MediaAction::StopShare);
    r.wait_for("share stopped", |n| {
        matches!(n, MediaNotice::Share(ShareNotice::Stopped))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.engine.apply(MediaAction::Detach { id });
    r.wait_for("the output finished", |n| {
        matches!(
            n,
            MediaNotice::Consumer {
                event: ConsumerEvent::Finished,
                ..
            }
        )
    })
    .await;
    r.drain();
    let trouble: Vec<_> = r
        .seen
        .iter()
        .filter(|n| {
            matches!(
                n,
                MediaNotice::Consumer {
                    event: ConsumerEvent::Retrying { .. } | ConsumerEvent::Failed(_),
                    ..
                }
            )
        })
        .collect();
    assert!(trouble.is_empty(), "the output was rebuilt: {trouble:?}");
    assert_eq!(r.capture_restarts(), 0);
    r.engine.apply(MediaAction::Stop);

    let recordings = nginx.recordings();
    assert_eq!(
        recordings.len(),
        1,
        "one publish, never restarted: {recordings:?}"
    );
    let frames = frames_of(&recordings[0]);
    // Runs of one picture size, in order: camera, share, camera.
    let mut runs: Vec<(i64, usize)> = Vec::new();
    for &(_, w) in &frames {
        match runs.last_mut() {
            Some((last, n)) if *last == w => *n += 1,
            _ => runs.push((w, 1)),
        }
    }
    let sizes: Vec<i64> = runs.iter().map(|r| r.0).collect();
    assert_eq!(
        sizes,
        [320, 640, 320],
        "the program's sizes in the recording: {runs:?}"
    );
    assert!(runs[1].1 >= 20, "share frames in the recording: {runs:?}");
    let worst = frames
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0f64, f64::max);
    for (i, w) in frames.windows(2).enumerate() {
        if w[1].0 - w[0].0 > 0.12 {
            eprintln!(
                "rtmp: {:.0} ms pause at frame {i}: {:?} -> {:?}",
                (w[1].0 - w[0].0) * 1000.0,
                w[0],
                w[1]
            );
        }
    }
    eprintln!(
        "rtmp: {} frames decoded by ffprobe, runs {runs:?}; the longest pause between two frames {:.0} ms",
        frames.len(),
        worst * 1000.0
    );
    assert!(worst < 0.2, "a {worst:.3} s hole in the recording");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp4_recording_follows_the_program() {
    for format in [RecordingFormat::Mp4, RecordingFormat::Mkv] {
        let mut r = Rig::start(|_| {}).await;
        let dir = r._dir.path().join("rec");
        let config = RecordingConfig {
            format,
            ..Default::default()
        };
        r.engine.apply(MediaAction::Attach {
            id: ConsumerId::Recorder,
            spec: ConsumerSpec::Recorder(RecorderSpec {
                config,
                dir: dir.clone(),
            }),
        });
        r.wait_for("the recorder started", |n| {
            matches!(
                n,
                MediaNotice::Consumer {
                    event: ConsumerEvent::Started,
                    ..
                }
            )
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        r.engine.apply(MediaAction::StartShare);
        r.wait_for("share started", |n| {
            matches!(n, MediaNotice::Share(ShareNotice::Started))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        r.engine.apply(MediaAction::StopShare);
        r.wait_for("share stopped", |n| {
            matches!(n, MediaNotice::Share(ShareNotice::Stopped))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        r.engine.apply(MediaAction::Detach {
            id: ConsumerId::Recorder,
        });
        r.wait_for("the recorder finished", |n| {
            matches!(
                n,
                MediaNotice::Consumer {
                    event: ConsumerEvent::Finished,
                    ..
                }
            )
        })
        .await;
        r.drain();
        let failed: Vec<_> = r
            .seen
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    MediaNotice::Consumer {
                        event: ConsumerEvent::Failed(_),
                        ..
                    }
                )
            })
            .collect();
        assert!(failed.is_empty(), "{format:?}: {failed:?}");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut sizes = Vec::new();
        for f in &files {
            let frames = frames_of(f);
            eprintln!(
                "{format:?}: {} has {} frames, widths {:?}",
                f.display(),
                frames.len(),
                frames
                    .iter()
                    .map(|f| f.1)
                    .collect::<std::collections::BTreeSet<_>>()
            );
            for (_, w) in frames {
                if sizes.last() != Some(&w) {
                    sizes.push(w);
                }
            }
        }
        // MP4 follows the program; Matroska (whose muxer refuses a new picture size) keeps the
        // camera and goes on recording.
        let expected: &[i64] = match format {
            RecordingFormat::Mp4 => &[320, 640, 320],
            RecordingFormat::Mkv => &[320],
        };
        assert_eq!(
            sizes, expected,
            "{format:?}: picture sizes over the segments"
        );
        r.engine.apply(MediaAction::Stop);
    }
}

//! Local outputs following the program through the real engine: an RTMP publish to a real
//! nginx-rtmp and an MP4 recording go from the camera to the share's own encode and back
//! without being rebuilt, as ffprobe (not our code) decodes them.

mod support;

use roombox::config::{RecordingConfig, RecordingFormat};
use roombox::media::recorder::RecorderSpec;
use roombox::media::rtmp::RtmpSpec;
use roombox::media::{
    ConsumerEvent, ConsumerId, ConsumerSpec, MediaAction, MediaControl, MediaNotice, ShareNotice,
};
use std::time::Duration;
use support::engine::*;

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
    // Back to the camera, the share's last frames (still in its slower encode when the camera's
    // keyframe goes on air) are left out: measured 140 to 240 ms here, at 10 fps.
    assert!(worst < 0.35, "a {worst:.3} s hole in the recording");
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

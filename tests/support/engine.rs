//! The media engine with a synthetic camera and share, for the share's tests: every notice
//! kept, taps on its feeds, and decoding with GStreamer's own elements.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roombox::config::{AudioSource, Config, ShareSource, VideoSource};
use roombox::event::MediaState;
use roombox::media::engine::Engine;
use roombox::media::{
    ConsumerId, ConsumerSpec, EncodedSample, Feed, MediaAction, MediaControl, MediaNotice,
    TapSender,
};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn config(dir: &std::path::Path) -> Config {
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
pub struct Rig {
    pub engine: Engine,
    pub notices: mpsc::UnboundedReceiver<MediaNotice>,
    pub seen: Vec<MediaNotice>,
    pub _dir: tempfile::TempDir,
}

impl Rig {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Rig {
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

    pub async fn wait_for(&mut self, what: &str, f: impl Fn(&MediaNotice) -> bool) -> MediaNotice {
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

    pub fn drain(&mut self) {
        while let Ok(n) = self.notices.try_recv() {
            self.seen.push(n);
        }
    }

    pub fn tap(&mut self, name: &str, feeds: Vec<Feed>) -> mpsc::Receiver<EncodedSample> {
        let (tx, rx) = mpsc::channel(1024);
        self.engine.apply(MediaAction::Attach {
            id: ConsumerId::Rtmp(name.into()),
            spec: ConsumerSpec::TapFeeds(feeds, TapSender(tx)),
        });
        rx
    }

    /// Every time capture was (re)started after it first played: the camera must never be.
    pub fn capture_restarts(&self) -> usize {
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
pub fn take(rx: &mut mpsc::Receiver<EncodedSample>, into: &mut Vec<(Instant, EncodedSample)>) {
    while let Ok(s) = rx.try_recv() {
        into.push((Instant::now(), s));
    }
}

/// Collects `rx` for `d`, with the wall time each sample was taken.
pub async fn collect(
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
pub fn decode(samples: &[EncodedSample]) -> Vec<(Duration, i32, i32)> {
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
pub fn from_key(s: &[(Instant, EncodedSample)]) -> &[(Instant, EncodedSample)] {
    let i = s.iter().position(|(_, x)| x.keyframe).unwrap_or(s.len());
    &s[i..]
}

/// The longest wait between two consecutive samples.
pub fn longest_gap(samples: &[(Instant, EncodedSample)]) -> Duration {
    samples
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default()
}

/// Each decoded video frame of a recording as ffprobe (not our code) sees it: time and width.
pub fn frames_of(path: &std::path::Path) -> Vec<(f64, i64)> {
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

//! The simulated media engine (feature `test-util`, never in the product): the one stand-in for
//! [`super::engine::Engine`] that the fleet's simulated box, the fleet bench and the room tests
//! share. It answers every [`MediaAction`] with the notices the real engine sends, in the same
//! order, and logs the actions it was asked for.
//!
//! Two kinds, as the real engine's sources allow:
//! - [`SimMedia::confirming`] captures nothing (the real engine with sources `none`): actions are
//!   confirmed at once. Thousands fit in one process, for the fleet bench.
//! - [`SimMedia::encoding`] runs one synthetic capture and encode (`videotestsrc` into x264enc
//!   constrained baseline with SPS/PPS on every keyframe, `audiotestsrc` into Opus) at the
//!   configured size and hands it to taps, for room tests that want a box without the engine.
//!
//! Like the real engine, both fail (an error, then RESTARTING) while the configured V4L2 camera
//! does not exist, so a configuration that breaks capture makes the agent unhealthy.

use super::{
    ConsumerEvent, ConsumerId, ConsumerSpec, EncodedSample, MediaAction, MediaControl, MediaError,
    MediaNotice,
};
use crate::config::{Config, VideoSource};
use crate::event::MediaState;
use crate::model::StreamKind;
use crate::sync::lock;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The names of the media actions asked for, in order: the variant's name, with its argument for
/// the three that carry a setting (`SetMicMuted(true)`).
pub type MediaLog = Arc<Mutex<Vec<String>>>;

type Taps = Arc<Mutex<Vec<(ConsumerId, mpsc::Sender<EncodedSample>)>>>;

/// A media engine stand-in; see the module's header.
pub struct SimMedia {
    notices: mpsc::UnboundedSender<MediaNotice>,
    log: MediaLog,
    camera: Option<PathBuf>,
    mic_muted: bool,
    camera_on: bool,
    /// Width, height and frame rate of the synthetic encode; none for a confirming engine.
    encode: Option<(u32, u32, u32)>,
    pipeline: Option<gst::Pipeline>,
    taps: Taps,
}

impl SimMedia {
    /// An engine that captures nothing and confirms every action at once.
    pub fn confirming(config: &Config, notices: mpsc::UnboundedSender<MediaNotice>) -> SimMedia {
        SimMedia {
            notices,
            log: MediaLog::default(),
            camera: camera_of(config),
            mic_muted: false,
            camera_on: true,
            encode: None,
            pipeline: None,
            taps: Taps::default(),
        }
    }

    /// An engine that encodes a synthetic picture and tone at `config`'s video size and rate and
    /// hands them to taps. GStreamer must be initialised.
    pub fn encoding(config: &Config, notices: mpsc::UnboundedSender<MediaNotice>) -> SimMedia {
        let v = &config.media.video;
        let mut m = SimMedia::confirming(config, notices);
        m.encode = Some((v.width, v.height, v.fps));
        m
    }

    /// The log of actions, shared: it keeps filling after the engine moved into the agent.
    pub fn log(&self) -> MediaLog {
        self.log.clone()
    }

    fn note(&self, n: MediaNotice) {
        let _ = self.notices.send(n);
    }

    /// Starts capture (builds the synthetic encode once) and reports the state. The encoding kind
    /// then reports the microphone and the camera as the real engine does once it plays; the
    /// confirming kind leaves them as the agent starts them (off), which the fleet tests' event
    /// sequences (mic on, mic off) are written against.
    fn start(&mut self) {
        if let Some(dev) = self.camera.as_ref().filter(|d| !d.exists()) {
            self.note(MediaNotice::Error(MediaError::Io {
                path: dev.display().to_string(),
                message: "no such device".into(),
            }));
            self.note(MediaNotice::State {
                state: MediaState::Restarting,
                encoder: None,
            });
            return;
        }
        let Some(size) = self.encode else {
            return self.note(MediaNotice::State {
                state: MediaState::Playing,
                encoder: None,
            });
        };
        if self.pipeline.is_none() {
            match synthetic(size, &self.taps) {
                Ok(p) => self.pipeline = Some(p),
                Err(e) => return self.note(MediaNotice::Error(e)),
            }
            self.set_mic(self.mic_muted);
            self.set_camera(self.camera_on);
        }
        self.note(MediaNotice::State {
            state: MediaState::Playing,
            encoder: Some("x264enc".to_string()),
        });
        self.note(MediaNotice::MicMuted(self.mic_muted));
        self.note(MediaNotice::CameraEnabled(self.camera_on));
    }

    fn element(&self, name: &str) -> Option<gst::Element> {
        self.pipeline.as_ref().and_then(|p| p.by_name(name))
    }

    fn set_mic(&self, muted: bool) {
        if let Some(v) = self.element("mute") {
            v.set_property("mute", muted);
        }
    }

    fn set_camera(&self, on: bool) {
        if let Some(v) = self.element("picture") {
            v.set_property_from_str("pattern", if on { "ball" } else { "black" });
        }
    }

    fn keyframe(&self) {
        if let Some(pad) = self.element("venc").and_then(|e| e.static_pad("sink")) {
            pad.send_event(
                gstreamer_video::DownstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build(),
            );
        }
    }

    fn stop_pipeline(&mut self) {
        if let Some(p) = self.pipeline.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

fn camera_of(config: &Config) -> Option<PathBuf> {
    (config.media.video.source == VideoSource::V4l2)
        .then(|| PathBuf::from(&config.media.video.device))
}

fn action_name(a: &MediaAction) -> String {
    let debug = format!("{a:?}");
    match a {
        MediaAction::SetMicMuted(_)
        | MediaAction::SetCameraEnabled(_)
        | MediaAction::SetBitrate(_) => debug,
        _ => debug
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

impl MediaControl for SimMedia {
    fn apply(&mut self, action: MediaAction) {
        lock(&self.log).push(action_name(&action));
        match action {
            MediaAction::Start | MediaAction::Restart => self.start(),
            MediaAction::Reconfigure(config) => {
                let camera = camera_of(&config);
                if camera != self.camera {
                    self.camera = camera;
                    self.start();
                }
            }
            MediaAction::Stop => {
                self.stop_pipeline();
                self.note(MediaNotice::State {
                    state: MediaState::Stopped,
                    encoder: None,
                });
            }
            MediaAction::SetMicMuted(muted) => {
                self.mic_muted = muted;
                self.set_mic(muted);
                self.note(MediaNotice::MicMuted(muted));
            }
            MediaAction::SetCameraEnabled(on) => {
                self.camera_on = on;
                self.set_camera(on);
                self.note(MediaNotice::CameraEnabled(on));
            }
            MediaAction::RequestKeyframe => self.keyframe(),
            // The simulated box has no meeting feed: its outputs carry the same either way.
            MediaAction::SetSpeakerVolume(_)
            | MediaAction::Pin(_)
            | MediaAction::SetSource { .. } => {}
            MediaAction::SetBitrate(kbps) => {
                if let Some(e) = self.element("venc") {
                    e.set_property("bitrate", kbps);
                }
                self.note(MediaNotice::Stats {
                    fps: 0.0,
                    bitrate_kbps: kbps,
                    encoded_kbps: 0,
                    encode_usage: 0.0,
                    processing: None,
                });
            }
            MediaAction::Attach { id, spec } => {
                if let ConsumerSpec::Tap(sender) = spec {
                    let mut taps = lock(&self.taps);
                    taps.retain(|(i, _)| *i != id);
                    taps.push((id.clone(), sender.0));
                }
                self.keyframe();
                self.note(MediaNotice::Consumer {
                    id,
                    event: ConsumerEvent::Started,
                });
            }
            MediaAction::Detach { id } => {
                lock(&self.taps).retain(|(i, _)| *i != id);
                self.note(MediaNotice::Consumer {
                    id,
                    event: ConsumerEvent::Finished,
                });
            }
            // The simulated box has no share source: it says so, as a box without one would.
            MediaAction::StartShare => self.note(MediaNotice::Share(super::ShareNotice::Failed(
                super::MediaError::NoSource("share"),
            ))),
            MediaAction::StopShare => self.note(MediaNotice::Share(super::ShareNotice::Stopped)),
            MediaAction::RequestShareKeyframe => {}
        }
    }
}

impl Drop for SimMedia {
    fn drop(&mut self) {
        self.stop_pipeline();
    }
}

/// The synthetic capture and encode, playing, feeding `taps`.
fn synthetic((w, h, fps): (u32, u32, u32), taps: &Taps) -> Result<gst::Pipeline, MediaError> {
    let runtime = |e: &dyn std::fmt::Display| MediaError::Runtime(e.to_string());
    gst::init().map_err(|e| runtime(&e))?;
    let desc = format!(
        "videotestsrc name=picture is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 ! \
         videoconvert ! x264enc name=venc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=60 ! \
         video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au ! h264parse config-interval=-1 ! \
         appsink name=v sync=false emit-signals=false \
         audiotestsrc is-live=true wave=sine freq=440 volume=0.5 ! volume name=mute ! audioconvert ! audioresample ! \
         audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=64000 ! appsink name=a sync=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| runtime(&e))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| runtime(&"the synthetic description is not a pipeline"))?;
    for (name, kind) in [("v", StreamKind::Video), ("a", StreamKind::Audio)] {
        let sink = pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| MediaError::MissingElement(format!("appsink {name}")))?;
        let taps = taps.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buf) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(map) = buf.map_readable() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let es = EncodedSample {
                        kind,
                        data: bytes::Bytes::copy_from_slice(map.as_slice()),
                        pts: buf.pts().map(|t| Duration::from_nanos(t.nseconds())),
                        duration: buf.duration().map(|t| Duration::from_nanos(t.nseconds())),
                        keyframe: !buf.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    };
                    for (_, tx) in lock(&taps).iter() {
                        let _ = tx.try_send(es.clone());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(runtime(&e));
    }
    Ok(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirming(config: &Config) -> (SimMedia, mpsc::UnboundedReceiver<MediaNotice>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SimMedia::confirming(config, tx), rx)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<MediaNotice>) -> Vec<MediaNotice> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_confirming_engine_reports_playing_and_confirms_the_microphone_when_asked() {
        let (mut m, mut rx) = confirming(&Config::default());
        m.apply(MediaAction::Start);
        m.apply(MediaAction::SetMicMuted(true));
        assert_eq!(
            drain(&mut rx),
            [
                MediaNotice::State {
                    state: MediaState::Playing,
                    encoder: None
                },
                MediaNotice::MicMuted(true),
            ]
        );
    }

    #[test]
    fn a_missing_v4l2_camera_fails_capture_until_reconfigured_away() {
        let mut c = Config::default();
        c.media.video.source = VideoSource::V4l2;
        c.media.video.device = "/dev/roombox-no-such-camera".into();
        let (mut m, mut rx) = confirming(&c);
        m.apply(MediaAction::Start);
        let n = drain(&mut rx);
        assert!(
            matches!(n[0], MediaNotice::Error(MediaError::Io { .. })),
            "{n:?}"
        );
        assert_eq!(
            n[1],
            MediaNotice::State {
                state: MediaState::Restarting,
                encoder: None
            }
        );
        m.apply(MediaAction::Reconfigure(Box::default()));
        assert!(drain(&mut rx).contains(&MediaNotice::State {
            state: MediaState::Playing,
            encoder: None
        }));
    }

    #[test]
    fn consumers_start_and_finish_and_the_log_names_each_action() {
        let (mut m, mut rx) = confirming(&Config::default());
        let log = m.log();
        let (tx, _samples) = mpsc::channel(1);
        m.apply(MediaAction::Attach {
            id: ConsumerId::RoomTap,
            spec: ConsumerSpec::Tap(super::super::TapSender(tx)),
        });
        m.apply(MediaAction::Detach {
            id: ConsumerId::RoomTap,
        });
        m.apply(MediaAction::SetBitrate(800));
        assert_eq!(
            drain(&mut rx)[..2],
            [
                MediaNotice::Consumer {
                    id: ConsumerId::RoomTap,
                    event: ConsumerEvent::Started
                },
                MediaNotice::Consumer {
                    id: ConsumerId::RoomTap,
                    event: ConsumerEvent::Finished
                },
            ]
        );
        assert_eq!(*lock(&log), ["Attach", "Detach", "SetBitrate(800)"]);
    }
}

//! A stand-in for the media engine: one synthetic capture and one encode (x264enc constrained
//! baseline with SPS/PPS on every keyframe, Opus), handed to taps as the real engine does, with
//! mute, camera-off, keyframe and bitrate control and the same notices.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roombox::event::MediaState;
use roombox::media::{
    ConsumerSpec, EncodedSample, MediaAction, MediaControl, MediaError, MediaNotice,
};
use roombox::model::StreamKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

type Taps = Arc<Mutex<Vec<(roombox::media::ConsumerId, mpsc::Sender<EncodedSample>)>>>;

/// The synthetic engine.
pub struct TestMedia {
    notices: mpsc::UnboundedSender<MediaNotice>,
    pipeline: Option<gst::Pipeline>,
    taps: Taps,
    size: (u32, u32, u32),
}

impl TestMedia {
    /// An engine capturing `w`x`h`@`fps`, reporting on the returned receiver.
    pub fn new(w: u32, h: u32, fps: u32) -> (TestMedia, mpsc::UnboundedReceiver<MediaNotice>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            TestMedia {
                notices: tx,
                pipeline: None,
                taps: Arc::default(),
                size: (w, h, fps),
            },
            rx,
        )
    }

    fn build(&mut self) -> Result<(), String> {
        gst::init().map_err(|e| e.to_string())?;
        let (w, h, fps) = self.size;
        let desc = format!(
            "videotestsrc name=vsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 ! \
             videoconvert ! x264enc name=venc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=60 ! \
             video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au ! h264parse config-interval=-1 ! \
             appsink name=v sync=false emit-signals=false \
             audiotestsrc is-live=true wave=sine freq=440 volume=0.5 ! volume name=mute ! audioconvert ! audioresample ! \
             audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=64000 ! appsink name=a sync=false"
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| e.to_string())?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        for (name, kind) in [("v", StreamKind::Video), ("a", StreamKind::Audio)] {
            let sink = pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or("no appsink")?;
            let taps = self.taps.clone();
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
                        if let Ok(t) = taps.lock() {
                            for (_, tx) in t.iter() {
                                let _ = tx.try_send(es.clone());
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())?;
        self.pipeline = Some(pipeline);
        Ok(())
    }

    fn keyframe(&self) {
        if let Some(enc) = self.pipeline.as_ref().and_then(|p| p.by_name("venc")) {
            let ev = gstreamer_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if let Some(pad) = enc.static_pad("sink") {
                pad.send_event(ev);
            }
        }
    }

    fn note(&self, n: MediaNotice) {
        let _ = self.notices.send(n);
    }
}

impl MediaControl for TestMedia {
    fn apply(&mut self, action: MediaAction) {
        match action {
            MediaAction::Start | MediaAction::Restart => {
                if self.pipeline.is_none() {
                    if let Err(e) = self.build() {
                        self.note(MediaNotice::Error(MediaError::Runtime(e)));
                        return;
                    }
                }
                self.note(MediaNotice::State {
                    state: MediaState::Playing,
                    encoder: Some("x264enc".into()),
                });
                self.note(MediaNotice::MicMuted(false));
                self.note(MediaNotice::CameraEnabled(true));
            }
            MediaAction::Stop => {
                if let Some(p) = self.pipeline.take() {
                    let _ = p.set_state(gst::State::Null);
                }
                self.note(MediaNotice::State {
                    state: MediaState::Stopped,
                    encoder: None,
                });
            }
            MediaAction::SetMicMuted(m) => {
                if let Some(v) = self.pipeline.as_ref().and_then(|p| p.by_name("mute")) {
                    v.set_property("mute", m);
                    self.note(MediaNotice::MicMuted(m));
                }
            }
            MediaAction::SetCameraEnabled(on) => {
                if let Some(v) = self.pipeline.as_ref().and_then(|p| p.by_name("vsrc")) {
                    v.set_property_from_str("pattern", if on { "ball" } else { "black" });
                    self.note(MediaNotice::CameraEnabled(on));
                }
            }
            MediaAction::RequestKeyframe => self.keyframe(),
            MediaAction::SetBitrate(k) => {
                if let Some(e) = self.pipeline.as_ref().and_then(|p| p.by_name("venc")) {
                    e.set_property("bitrate", k);
                }
            }
            MediaAction::Attach {
                id,
                spec: ConsumerSpec::Tap(sender),
            } => {
                if let Ok(mut t) = self.taps.lock() {
                    t.retain(|(i, _)| *i != id);
                    t.push((id, sender.0));
                }
                self.keyframe();
            }
            MediaAction::Detach { id } => {
                if let Ok(mut t) = self.taps.lock() {
                    t.retain(|(i, _)| *i != id);
                }
            }
            _ => {}
        }
    }
}

impl Drop for TestMedia {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

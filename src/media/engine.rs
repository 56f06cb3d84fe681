//! The media engine task: owns the capture pipeline and its consumers, restarts capture after
//! faults with backoff, and reports everything as [`MediaNotice`]s.
//!
//! [`Engine`] is the handle the agent holds ([`MediaControl`]); the task behind it is the only
//! code that touches the pipelines.

use super::encoder;
use super::pipeline::{self, Capture, Feed};
use super::recorder::{RecEvent, Recorder};
use super::retention;
use super::sink::{self, Attached};
use super::{EncodedSample, MediaAction, MediaControl, MediaNotice, TapSender};
use crate::backoff::Backoff;
use crate::config::{Config, VideoSource};
use crate::event::MediaState;
use crate::model::StreamKind;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long probing one encoder may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the recorder may take to finalise its last segment on a stop.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often retention runs while recording.
const RETENTION_EVERY: Duration = Duration::from_secs(5);
/// A camera that delivers no frame for this long (or none this long after starting) is a fault:
/// capture is rebuilt rather than left PLAYING at 0 fps.
const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How long a new capture may take to deliver its first frame.
const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(15);

/// The agent's handle on the engine task.
pub struct Engine {
    tx: mpsc::UnboundedSender<MediaAction>,
}

impl MediaControl for Engine {
    fn apply(&mut self, action: MediaAction) {
        let _ = self.tx.send(action);
    }
}

impl Engine {
    /// Starts the engine task (GStreamer must be initialised). Nothing is captured until
    /// [`MediaAction::Start`].
    pub fn spawn(config: Config, notices: mpsc::UnboundedSender<MediaNotice>) -> Engine {
        let (tx, actions) = mpsc::unbounded_channel();
        let (internal_tx, internal) = mpsc::unbounded_channel();
        let backoff = Backoff::new(config.media.restart.initial, config.media.restart.max);
        let task = Task {
            bitrate: config.media.video.bitrate_kbps,
            config,
            notices,
            actions,
            internal_tx,
            internal,
            encoder: None,
            capture: None,
            bus: None,
            generation: 0,
            playing: false,
            mic_muted: false,
            camera_on: Arc::new(AtomicBool::new(true)),
            recorder: None,
            want_recording: false,
            taps: HashMap::new(),
            backoff,
            restart_at: None,
            stop: None,
            last_frames: 0,
            last_bytes: 0,
            last_progress: Instant::now(),
        };
        tokio::spawn(task.run());
        Engine { tx }
    }
}

/// A task dropped without its stop (its runtime shutting down, a panic) still takes its
/// pipelines to NULL: disposing running elements from whichever thread drops them last
/// crashed now and then at exit.
impl Drop for Task {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Reports from streaming threads and child pipelines to the task.
enum Internal {
    /// The capture of this generation encoded its first frame.
    FirstFrame(u64),
    /// The recorder of this id reported.
    Rec(u64, RecEvent),
}

/// What to do once the current capture has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Report STOPPED and end the task.
    Exit,
    /// Build and start again.
    Restart,
}

struct Stop {
    after: After,
    deadline: Instant,
}

struct ActiveRecorder {
    rec: Option<Recorder>,
    id: u64,
    writing: Option<PathBuf>,
    started: bool,
}

struct Tap {
    sender: TapSender,
    attached: Vec<Attached>,
}

struct Task {
    config: Config,
    notices: mpsc::UnboundedSender<MediaNotice>,
    actions: mpsc::UnboundedReceiver<MediaAction>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal: mpsc::UnboundedReceiver<Internal>,
    /// The chosen encoder: None before the first probe, Some(None) when nothing works.
    encoder: Option<Option<&'static str>>,
    capture: Option<Capture>,
    bus: Option<gst::bus::BusStream>,
    generation: u64,
    playing: bool,
    mic_muted: bool,
    camera_on: Arc<AtomicBool>,
    bitrate: u32,
    recorder: Option<ActiveRecorder>,
    want_recording: bool,
    taps: HashMap<String, Tap>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    stop: Option<Stop>,
    last_frames: u64,
    /// Encoded video bytes at the last stats tick.
    last_bytes: u64,
    /// When frames last advanced (or the capture started).
    last_progress: Instant,
}

async fn next_bus(bus: &mut Option<gst::bus::BusStream>) -> Option<gst::Message> {
    match bus {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

async fn at(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self) {
        let mut stats = tokio::time::interval(Duration::from_secs(1));
        let mut retention = tokio::time::interval(RETENTION_EVERY);
        let mut flush = tokio::time::interval(self.config.recording.fragment);
        loop {
            let stop_deadline = self.stop.as_ref().map(|s| s.deadline);
            tokio::select! {
                a = self.actions.recv() => match a {
                    Some(a) => self.action(a).await,
                    None => { self.teardown(); return; }
                },
                Some(msg) = next_bus(&mut self.bus) => self.bus_message(msg),
                Some(i) = self.internal.recv() => self.internal(i),
                _ = at(self.restart_at) => {
                    self.restart_at = None;
                    self.start().await;
                }
                _ = at(stop_deadline) => {
                    tracing::warn!("recorder did not finalise within {FINISH_TIMEOUT:?}");
                    if self.finish_stop() { return; }
                }
                _ = stats.tick() => self.stats(),
                _ = retention.tick() => self.retention(),
                _ = flush.tick() => self.flush(),
            }
            if self.stop.is_some() && self.recorder.is_none() && self.finish_stop() {
                return;
            }
        }
    }

    fn notify(&self, n: MediaNotice) {
        let _ = self.notices.send(n);
    }

    async fn action(&mut self, action: MediaAction) {
        match action {
            MediaAction::Start => {
                if self.capture.is_none() && self.restart_at.is_none() {
                    self.start().await;
                }
            }
            MediaAction::Restart => self.begin_stop(After::Restart),
            MediaAction::Reconfigure(new) => {
                let media_changed =
                    new.media != self.config.media || new.recording != self.config.recording;
                self.config = *new;
                if media_changed {
                    tracing::info!("media settings changed: restarting capture");
                    self.encoder = None;
                    self.bitrate = self.config.media.video.bitrate_kbps;
                    self.backoff = Backoff::new(
                        self.config.media.restart.initial,
                        self.config.media.restart.max,
                    );
                    self.begin_stop(After::Restart);
                }
            }
            MediaAction::Stop => self.begin_stop(After::Exit),
            MediaAction::StartRecording => {
                self.want_recording = true;
                if self.playing && self.recorder.is_none() {
                    self.start_recorder();
                }
            }
            MediaAction::StopRecording => {
                self.want_recording = false;
                match &mut self.recorder {
                    Some(r) => {
                        if let Some(rec) = r.rec.as_mut() {
                            rec.finish();
                        }
                    }
                    None => self.notify(MediaNotice::RecordingStopped),
                }
            }
            MediaAction::SetMicMuted(muted) => {
                if let Some(v) = self.capture.as_ref().and_then(|c| c.volume.as_ref()) {
                    v.set_property("mute", muted);
                }
                self.mic_muted = muted;
                self.notify(MediaNotice::MicMuted(muted));
            }
            MediaAction::SetCameraEnabled(on) => {
                self.camera_on.store(on, Ordering::SeqCst);
                self.notify(MediaNotice::CameraEnabled(on));
            }
            MediaAction::RequestKeyframe => {
                if let Some(c) = &self.capture {
                    c.request_keyframe();
                }
            }
            MediaAction::SetBitrate(kbps) => {
                self.bitrate = kbps;
                if let Some(c) = &self.capture {
                    if let (Some(enc), Some(spec)) = (&c.encoder, c.spec) {
                        if let Err(e) = encoder::set_bitrate(enc, spec, kbps, c.gop_frames) {
                            tracing::warn!("bitrate: {e}");
                        }
                    }
                }
                // The new target shows at the next stats tick. Measuring here cut the
                // one-second frame window short: a room's REMB once a second read as 20 fps,
                // several a second as 0-1 fps, while every frame was encoded and decoded.
            }
            MediaAction::AttachTap { id, sender } => {
                let mut tap = Tap {
                    sender,
                    attached: Vec::new(),
                };
                if self.playing {
                    if let Some(c) = self.capture.as_mut() {
                        tap.attached = attach_tap(c, &tap.sender);
                    }
                }
                if let Some(old) = self.taps.insert(id, tap) {
                    old.attached.into_iter().for_each(Attached::detach);
                }
            }
            MediaAction::DetachTap { id } => {
                if let Some(t) = self.taps.remove(&id) {
                    t.attached.into_iter().for_each(Attached::detach);
                }
            }
        }
    }

    async fn start(&mut self) {
        self.stop = None;
        self.notify(MediaNotice::State {
            state: MediaState::Starting,
            encoder: None,
        });
        if self.encoder.is_none() && self.config.media.video.source != VideoSource::None {
            let configured = self.config.media.video.encoder.clone();
            let chosen = tokio::task::spawn_blocking(move || {
                let c = encoder::candidates(&configured, encoder::registered);
                let (chosen, results) = encoder::choose(&c, |n| encoder::probe(n, PROBE_TIMEOUT));
                for r in &results {
                    tracing::info!(encoder = %r.name, works = r.works, ms = r.millis,
                        error = r.error.as_deref().unwrap_or(""), "encoder probe");
                }
                chosen
            })
            .await
            .unwrap_or(None);
            self.encoder = Some(chosen);
        }
        let enc = self.encoder.flatten();
        let built = pipeline::build(&self.config, enc, self.camera_on.clone(), self.mic_muted)
            .and_then(|c| {
                if let (Some(e), Some(spec)) = (&c.encoder, c.spec) {
                    encoder::set_bitrate(e, spec, self.bitrate, c.gop_frames)?;
                }
                Ok(c)
            });
        let capture = match built {
            Ok(c) => c,
            Err(e) => {
                if enc.is_none() {
                    // Re-probe next time: a driver may have appeared.
                    self.encoder = None;
                }
                return self.fault(e);
            }
        };
        self.generation += 1;
        let generation = self.generation;
        if let Some(parse_pad) = capture.vtee.as_ref().and_then(|t| t.static_pad("sink")) {
            let tx = self.internal_tx.clone();
            parse_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let _ = tx.send(Internal::FirstFrame(generation));
                gst::PadProbeReturn::Remove
            });
        }
        self.last_frames = 0;
        self.last_bytes = 0;
        self.last_progress = Instant::now();
        let no_media = capture.vtee.is_none() && capture.rawtee.is_none();
        if let Err(e) = capture.pipeline.set_state(gst::State::Playing) {
            // The element's own error on the bus says why (which device, what failed).
            let why = capture
                .pipeline
                .bus()
                .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(err) => Some(format!(
                        "{}: {}",
                        m.src().map(|s| s.name().to_string()).unwrap_or_default(),
                        err.error()
                    )),
                    _ => None,
                })
                .unwrap_or_else(|| e.to_string());
            let _ = capture.pipeline.set_state(gst::State::Null);
            self.bus = None;
            return self.fault(format!("capture did not start: {why}"));
        }
        let audio_only = capture.vtee.is_none();
        // Watch the bus only now, so a failed start's error stays poppable above; anything
        // posted in between is still queued and handled here.
        let bus = capture.pipeline.bus();
        self.bus = bus.as_ref().map(|b| b.stream());
        self.capture = Some(capture);
        while let Some(m) = bus.as_ref().and_then(|b| b.pop()) {
            self.bus_message(m);
        }
        if self.capture.is_none() {
            return;
        }
        if no_media || audio_only {
            // Nothing to wait for: there is no video frame to see.
            self.became_playing();
        }
    }

    fn became_playing(&mut self) {
        if self.playing {
            return;
        }
        self.playing = true;
        self.backoff.reset();
        let encoder = self
            .capture
            .as_ref()
            .and_then(|c| c.spec.map(|s| s.name.to_string()));
        self.notify(MediaNotice::State {
            state: MediaState::Playing,
            encoder,
        });
        self.notify(MediaNotice::MicMuted(self.mic_muted));
        self.notify(MediaNotice::CameraEnabled(
            self.camera_on.load(Ordering::SeqCst),
        ));
        if self.want_recording && self.recorder.is_none() {
            self.start_recorder();
        }
        if let Some(c) = self.capture.as_mut() {
            for tap in self.taps.values_mut() {
                tap.attached = attach_tap(c, &tap.sender);
            }
        }
    }

    fn internal(&mut self, i: Internal) {
        match i {
            Internal::FirstFrame(g) if g == self.generation => self.became_playing(),
            Internal::FirstFrame(_) => {}
            Internal::Rec(id, ev) => self.recorder_event(id, ev),
        }
    }

    fn recorder_event(&mut self, id: u64, ev: RecEvent) {
        let Some(r) = self.recorder.as_mut().filter(|r| r.id == id) else {
            return;
        };
        match ev {
            RecEvent::Opened(p) => {
                r.writing = Some(p);
                if !r.started {
                    r.started = true;
                    self.notify(MediaNotice::RecordingStarted);
                }
            }
            RecEvent::Closed(p) => {
                let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                if r.writing.as_ref() == Some(&p) {
                    r.writing = None;
                }
                sync_file(p.clone());
                self.notify(MediaNotice::SegmentClosed {
                    path: p.display().to_string(),
                    bytes,
                });
            }
            RecEvent::Finished => {
                if let Some(rec) = self.recorder.take().and_then(|r| r.rec) {
                    rec.shutdown();
                }
                let exiting = self.stop.as_ref().is_some_and(|s| s.after == After::Exit);
                if !self.want_recording || exiting {
                    self.notify(MediaNotice::RecordingStopped);
                }
            }
            RecEvent::Failed(reason) => self.recorder_failed(reason),
        }
    }

    fn recorder_failed(&mut self, reason: String) {
        tracing::error!("recording failed: {reason}");
        if let Some(rec) = self.recorder.take().and_then(|r| r.rec) {
            rec.shutdown();
        }
        self.want_recording = false;
        self.notify(MediaNotice::RecordingFailed { reason });
    }

    fn start_recorder(&mut self) {
        let dir = self.config.recording_dir();
        let cfg = self.config.recording.clone();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return self.recorder_failed(format!("cannot create {}: {e}", dir.display()));
        }
        match retention::enforce(&dir, &cfg, None) {
            Ok(plan) if plan.stop => {
                return self.recorder_failed(format!(
                    "disk full: less than {} MiB free in {}",
                    cfg.stop_free_mb,
                    dir.display()
                ))
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e}"),
        }
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        self.generation += 1;
        let id = self.generation;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if internal.send(Internal::Rec(id, ev)).is_err() {
                    break;
                }
            }
        });
        match Recorder::start(capture, &cfg, &dir, tx) {
            Ok(rec) => {
                self.recorder = Some(ActiveRecorder {
                    rec: Some(rec),
                    id,
                    writing: None,
                    started: false,
                });
            }
            Err(e) => self.recorder_failed(e),
        }
    }

    fn bus_message(&mut self, msg: gst::Message) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let detail = e.debug().map(|d| d.to_string()).unwrap_or_default();
                tracing::debug!("capture error from {src}: {detail}");
                self.fault(format!("{src}: {}", e.error()));
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!("capture warning: {}", w.error());
            }
            _ => {}
        }
    }

    /// A capture fault: report, tear down, and rebuild after a backoff. The agent stays up.
    fn fault(&mut self, message: String) {
        tracing::error!("media fault: {message}");
        self.notify(MediaNotice::Error { message });
        self.teardown();
        if self.stop.as_ref().is_some_and(|s| s.after == After::Exit) {
            return;
        }
        self.stop = None;
        let delay = self.backoff.next_delay();
        tracing::info!("restarting capture in {delay:?}");
        self.notify(MediaNotice::State {
            state: MediaState::Restarting,
            encoder: None,
        });
        self.restart_at = Some(Instant::now() + delay);
    }

    /// Drops the capture and everything attached to it, at once.
    fn teardown(&mut self) {
        self.playing = false;
        if let Some(r) = self.recorder.take() {
            if let Some(rec) = r.rec {
                rec.shutdown();
            }
            if r.started && !self.want_recording {
                self.notify(MediaNotice::RecordingStopped);
            }
        }
        for tap in self.taps.values_mut() {
            tap.attached.clear();
        }
        if let Some(c) = self.capture.take() {
            release(&c.pipeline);
        }
        self.bus = None;
    }

    fn begin_stop(&mut self, after: After) {
        self.restart_at = None;
        if let Some(s) = &mut self.stop {
            if after == After::Exit {
                s.after = After::Exit;
            }
            return;
        }
        self.stop = Some(Stop {
            after,
            deadline: Instant::now() + FINISH_TIMEOUT,
        });
        if let Some(r) = &mut self.recorder {
            if let Some(rec) = r.rec.as_mut() {
                rec.finish();
            }
        }
    }

    /// Completes a stop once the recorder has finalised. True when the task should end.
    fn finish_stop(&mut self) -> bool {
        let Some(stop) = self.stop.take() else {
            return false;
        };
        let keep = self.want_recording;
        self.teardown();
        self.want_recording = keep;
        match stop.after {
            After::Exit => {
                self.notify(MediaNotice::State {
                    state: MediaState::Stopped,
                    encoder: None,
                });
                true
            }
            After::Restart => {
                self.restart_at = Some(Instant::now());
                false
            }
        }
    }

    fn stats(&mut self) {
        let Some(c) = &self.capture else { return };
        let frames = c.frames.load(Ordering::Relaxed);
        let fps = frames.saturating_sub(self.last_frames) as f64;
        self.last_frames = frames;
        let bytes = c.video_bytes.load(Ordering::Relaxed);
        let encoded_kbps = (bytes.saturating_sub(self.last_bytes) * 8 / 1000) as u32;
        self.last_bytes = bytes;
        let has_video = c.vtee.is_some();
        self.notify(MediaNotice::Stats {
            fps,
            bitrate_kbps: self.bitrate,
            encoded_kbps,
        });
        if !has_video || self.stop.is_some() {
            return;
        }
        if fps > 0.0 {
            self.last_progress = Instant::now();
            return;
        }
        let idle = self.last_progress.elapsed();
        if self.playing && idle >= STALL_LIMIT {
            self.fault(format!(
                "the camera delivered no frame for {}s",
                idle.as_secs()
            ));
        } else if !self.playing && idle >= FIRST_FRAME_LIMIT {
            self.fault(format!(
                "the camera delivered no first frame within {}s",
                idle.as_secs()
            ));
        }
    }

    fn retention(&mut self) {
        let Some(r) = &self.recorder else { return };
        let dir = self.config.recording_dir();
        match retention::enforce(&dir, &self.config.recording, r.writing.as_deref()) {
            Ok(plan) if plan.stop => self.recorder_failed(format!(
                "disk full: less than {} MiB free in {}",
                self.config.recording.stop_free_mb,
                dir.display()
            )),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e}"),
        }
    }

    /// Makes the segment being written durable, so a power cut loses at most one fragment.
    fn flush(&self) {
        if let Some(p) = self.recorder.as_ref().and_then(|r| r.writing.clone()) {
            sync_file(p);
        }
    }
}

/// Stops a capture pipeline and lets go of its devices. The sources go to NULL first (a camera
/// that vanished fails its PAUSED→READY step, and a v4l2src left in READY keeps the device node
/// open, so a replugged camera would come back under another name), then the rest, and every
/// element leaves the pipeline so nothing keeps the device alive.
fn release(pipeline: &gst::Pipeline) {
    let mut sources = Vec::new();
    let mut it = pipeline.iterate_sources();
    while let Ok(Some(src)) = it.next() {
        sources.push(src);
    }
    for src in &sources {
        if let Err(e) = src.set_state(gst::State::Null) {
            tracing::warn!("{}: could not stop cleanly: {e}", src.name());
        }
    }
    if let Err(e) = pipeline.set_state(gst::State::Null) {
        tracing::warn!("capture pipeline did not reach NULL: {e}");
    }
    let children = pipeline.children();
    for child in &children {
        if child.current_state() != gst::State::Null {
            tracing::warn!(
                "{} is still {:?}; forcing NULL",
                child.name(),
                child.current_state()
            );
            let _ = child.set_state(gst::State::Null);
        }
    }
    let _ = pipeline.remove_many(&children);
    for src in &sources {
        tracing::debug!(element = %src.name(), refs = src.ref_count(), "released source");
    }
}

fn sync_file(path: PathBuf) {
    tokio::task::spawn_blocking(move || {
        if let Ok(f) = std::fs::File::open(&path) {
            let _ = f.sync_data();
        }
    });
}

/// Attaches a tap's appsinks (H.264 and Opus) and forces a keyframe so it starts decodable.
fn attach_tap(capture: &mut Capture, sender: &TapSender) -> Vec<Attached> {
    let mut out = Vec::new();
    for (feed, kind) in [
        (Feed::H264, StreamKind::Video),
        (Feed::Opus, StreamKind::Audio),
    ] {
        let Ok(tee) = capture.tee_for(feed) else {
            continue;
        };
        let tx = sender.0.clone();
        let need_key = Arc::new(AtomicBool::new(kind == StreamKind::Video));
        let encoder = capture.encoder.clone();
        let attached = sink::attach(&capture.pipeline, &tee, move |sample| {
            let Some(buffer) = sample.buffer() else {
                return;
            };
            let keyframe =
                kind == StreamKind::Video && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            if kind == StreamKind::Video && need_key.load(Ordering::Relaxed) && !keyframe {
                return;
            }
            let Ok(map) = buffer.map_readable() else {
                return;
            };
            let s = EncodedSample {
                kind,
                data: bytes::Bytes::copy_from_slice(map.as_slice()),
                pts: super::recorder::running_time(&sample, buffer.pts())
                    .map(|t| Duration::from_nanos(t.nseconds())),
                duration: buffer
                    .duration()
                    .map(|t| Duration::from_nanos(t.nseconds())),
                keyframe,
            };
            match tx.try_send(s) {
                Ok(()) => {
                    if keyframe {
                        need_key.store(false, Ordering::Relaxed);
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) if kind == StreamKind::Video => {
                    // The consumer fell behind: skip to the next keyframe rather than send a
                    // stream it cannot decode.
                    need_key.store(true, Ordering::Relaxed);
                    if let Some(pad) = encoder.as_ref().and_then(|e| e.static_pad("src")) {
                        pad.send_event(
                            gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                                .all_headers(true)
                                .build(),
                        );
                    }
                }
                Err(_) => {}
            }
        });
        match attached {
            Ok(a) => out.push(a),
            Err(e) => tracing::warn!("tap: {e}"),
        }
    }
    capture.request_keyframe();
    out
}

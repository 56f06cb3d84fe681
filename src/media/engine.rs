//! The media engine task: owns the capture pipeline and its consumers, restarts capture after
//! faults with backoff, and reports everything as [`MediaNotice`]s.
//!
//! [`Engine`] is the handle the agent holds ([`MediaControl`]); the task behind it is the only
//! code that touches the pipelines.

use super::consumer::{Consumer, ConsumerEvent, ConsumerId, ConsumerSpec, Reporter, StartContext};
use super::encoder;
use super::error::MediaError;
use super::pipeline::{self, Capture};
use super::sink::{self, Attached};
use super::{MediaAction, MediaControl, MediaNotice};
use crate::backoff::Backoff;
use crate::config::{Config, VideoSource};
use crate::event::MediaState;
use crate::sync::sleep_until;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long probing one encoder may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long consumers may take to finish (a recorder finalising its segment) on a stop.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
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
        let (consumer_tx, consumer_rx) = mpsc::unbounded_channel();
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
            consumers: HashMap::new(),
            consumer_tx,
            consumer_rx,
            backoff,
            restart_at: None,
            stop: None,
            last_frames: 0,
            last_bytes: 0,
            last_stats: Instant::now(),
            last_progress: Instant::now(),
            last_audio_frames: 0,
            audio_progress: Instant::now(),
            overload: None,
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

/// Reports from streaming threads to the task.
enum Internal {
    /// The capture of this generation encoded its first frame.
    FirstFrame(u64),
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

/// Where a consumer is in its life under the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Wanted, waiting for capture to play.
    Idle,
    /// Started in the current capture.
    Running,
    /// Asked to finish; waiting for its `Finished`. `remove`: gone afterwards (detached or the
    /// engine is exiting), else idle until capture plays again (a restart).
    Finishing {
        /// Whether the consumer is dropped once finished.
        remove: bool,
    },
}

/// A consumer the engine runs.
struct Active {
    spec: ConsumerSpec,
    consumer: Box<dyn Consumer>,
    branches: Vec<Attached>,
    phase: Phase,
    /// Which start its reports belong to; older ones are ignored.
    generation: u64,
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
    /// Every consumer by id; they outlive capture restarts.
    consumers: HashMap<ConsumerId, Active>,
    /// Consumers report here, tagged with their id and generation.
    consumer_tx: mpsc::UnboundedSender<(ConsumerId, u64, ConsumerEvent)>,
    consumer_rx: mpsc::UnboundedReceiver<(ConsumerId, u64, ConsumerEvent)>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    stop: Option<Stop>,
    last_frames: u64,
    /// Encoded video bytes at the last stats tick.
    last_bytes: u64,
    /// When the stats were last taken: rates divide by the real time since, as a tick that
    /// comes late under load would otherwise read as a higher rate.
    last_stats: Instant,
    /// When frames last advanced (or the capture started).
    last_progress: Instant,
    /// Steps the frame rate down when the encoder is overloaded (None when not adapting).
    overload: Option<super::overload::Detector>,
    /// Opus frames at the last stats tick.
    last_audio_frames: u64,
    /// When Opus frames last advanced (or the capture started).
    audio_progress: Instant,
}

async fn next_bus(bus: &mut Option<gst::bus::BusStream>) -> Option<gst::Message> {
    match bus {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self) {
        let mut stats = tokio::time::interval(Duration::from_secs(1));
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        loop {
            let stop_deadline = self.stop.as_ref().map(|s| s.deadline);
            tokio::select! {
                a = self.actions.recv() => match a {
                    Some(a) => self.action(a).await,
                    None => { self.teardown(); return; }
                },
                Some(msg) = next_bus(&mut self.bus) => self.bus_message(msg),
                Some(i) = self.internal.recv() => self.internal(i),
                Some((id, generation, ev)) = self.consumer_rx.recv() => {
                    self.consumer_event(id, generation, ev)
                }
                _ = sleep_until(self.restart_at) => {
                    self.restart_at = None;
                    self.start().await;
                }
                _ = sleep_until(stop_deadline) => {
                    tracing::warn!("consumers did not finish within {FINISH_TIMEOUT:?}");
                    if self.finish_stop() { return; }
                }
                _ = stats.tick() => self.stats(),
                _ = housekeeping.tick() => self.housekeeping(),
            }
            if self.stop.is_some() && !self.finishing() && self.finish_stop() {
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
                // Consumers carry their own settings (the agent re-attaches a recorder whose
                // settings changed); only capture and encode settings rebuild capture.
                let media_changed = new.media != self.config.media;
                self.config = *new;
                if media_changed {
                    tracing::info!("media settings changed: restarting capture");
                    self.encoder = None;
                    self.overload = None;
                    self.bitrate = self.config.media.video.bitrate_kbps;
                    self.backoff = Backoff::new(
                        self.config.media.restart.initial,
                        self.config.media.restart.max,
                    );
                    self.begin_stop(After::Restart);
                }
            }
            MediaAction::Stop => self.begin_stop(After::Exit),
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
            MediaAction::Attach { id, spec } => self.attach(id, spec),
            MediaAction::Detach { id } => self.detach(&id),
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
        let v = &self.config.media.video;
        if !v.adapt_to_cpu {
            self.overload = None;
        } else if self.overload.is_none() {
            self.overload = Some(super::overload::Detector::new(super::overload::steps(
                v.fps, v.min_fps,
            )));
        }
        // A rebuilt capture keeps the rate overload chose: the load that made it is still there.
        if let (Some(d), Some(o)) = (&capture.decimator, &self.overload) {
            d.set(o.fps());
        }
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
        self.last_stats = Instant::now();
        self.last_progress = Instant::now();
        self.last_audio_frames = 0;
        self.audio_progress = Instant::now();
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
            return self.fault(MediaError::Start(format!("capture ({why})")));
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
        let idle: Vec<ConsumerId> = self
            .consumers
            .iter()
            .filter(|(_, a)| a.phase == Phase::Idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            self.open(&id);
        }
    }

    fn internal(&mut self, i: Internal) {
        match i {
            Internal::FirstFrame(g) if g == self.generation => self.became_playing(),
            Internal::FirstFrame(_) => {}
        }
    }

    /// Runs a consumer under `id` from now on; an identical one already there is left alone.
    fn attach(&mut self, id: ConsumerId, spec: ConsumerSpec) {
        if let Some(old) = self.consumers.get(&id) {
            if old.spec == spec && !matches!(old.phase, Phase::Finishing { remove: true }) {
                return;
            }
        }
        if let Some(mut old) = self.consumers.remove(&id) {
            close(&mut old);
        }
        let consumer = spec.clone().build();
        self.consumers.insert(
            id.clone(),
            Active {
                spec,
                consumer,
                branches: Vec::new(),
                phase: Phase::Idle,
                generation: 0,
            },
        );
        if self.playing && self.stop.is_none() {
            self.open(&id);
        }
    }

    /// Starts consumer `id` on the running capture; a consumer that cannot start is reported
    /// failed and dropped, and nothing else is disturbed.
    fn open(&mut self, id: &ConsumerId) {
        self.generation += 1;
        let generation = self.generation;
        let (Some(capture), Some(active)) = (self.capture.as_mut(), self.consumers.get_mut(id))
        else {
            return;
        };
        active.generation = generation;
        let reporter = Reporter::new(id.clone(), generation, self.consumer_tx.clone());
        let result = start_consumer(capture, active, reporter);
        match result {
            Ok(()) => active.phase = Phase::Running,
            Err(e) => {
                tracing::warn!(consumer = %id, "could not start: {e}");
                if let Some(mut a) = self.consumers.remove(id) {
                    close(&mut a);
                }
                self.notify(MediaNotice::Consumer {
                    id: id.clone(),
                    event: ConsumerEvent::Failed(e),
                });
            }
        }
    }

    /// Asks consumer `id` to finish; it is dropped once it has.
    fn detach(&mut self, id: &ConsumerId) {
        let Some(active) = self.consumers.get_mut(id) else {
            // Nothing runs under that id: it is as finished as it will get.
            return self.notify(MediaNotice::Consumer {
                id: id.clone(),
                event: ConsumerEvent::Finished,
            });
        };
        match active.phase {
            Phase::Running => {
                if begin_finish(active) {
                    active.phase = Phase::Finishing { remove: true };
                } else {
                    self.drop_consumer(id);
                }
            }
            Phase::Finishing { .. } => active.phase = Phase::Finishing { remove: true },
            Phase::Idle => self.drop_consumer(id),
        }
    }

    /// Drops consumer `id` and reports it finished.
    fn drop_consumer(&mut self, id: &ConsumerId) {
        if let Some(mut a) = self.consumers.remove(id) {
            close(&mut a);
            self.notify(MediaNotice::Consumer {
                id: id.clone(),
                event: ConsumerEvent::Finished,
            });
        }
    }

    fn consumer_event(&mut self, id: ConsumerId, generation: u64, event: ConsumerEvent) {
        let Some(active) = self.consumers.get_mut(&id) else {
            return;
        };
        if active.generation != generation {
            return;
        }
        match &event {
            ConsumerEvent::Finished => match active.phase {
                Phase::Finishing { remove: false } => {
                    active.phase = Phase::Idle;
                    active.consumer.shutdown();
                    return;
                }
                _ => {
                    if let Some(mut a) = self.consumers.remove(&id) {
                        close(&mut a);
                    }
                }
            },
            ConsumerEvent::Failed(e) => {
                tracing::error!(consumer = %id, "consumer failed: {e}");
                if let Some(mut a) = self.consumers.remove(&id) {
                    close(&mut a);
                }
            }
            _ => {}
        }
        self.notify(MediaNotice::Consumer { id, event });
    }

    /// True while some consumer is finishing.
    fn finishing(&self) -> bool {
        self.consumers
            .values()
            .any(|a| matches!(a.phase, Phase::Finishing { .. }))
    }

    /// Once a tick: consumers' housekeeping (a recorder's flush and retention).
    fn housekeeping(&mut self) {
        for a in self.consumers.values_mut() {
            if a.phase == Phase::Running {
                a.consumer.tick();
            }
        }
    }

    fn bus_message(&mut self, msg: gst::Message) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let detail = e.debug().map(|d| d.to_string()).unwrap_or_default();
                tracing::debug!("capture error: {detail}");
                self.fault(MediaError::from_bus(&msg, e));
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!("capture warning: {}", w.error());
            }
            _ => {}
        }
    }

    /// A capture fault: report, tear down, and rebuild after a backoff. The agent stays up.
    fn fault(&mut self, error: MediaError) {
        tracing::error!("media fault: {error}");
        self.notify(MediaNotice::Error(error));
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

    /// Drops the capture and stops every consumer at once. Consumers stay wanted and start
    /// again when capture plays, except those that were detached: they are reported finished.
    fn teardown(&mut self) {
        self.playing = false;
        let gone: Vec<ConsumerId> = self
            .consumers
            .iter()
            .filter(|(_, a)| a.phase == (Phase::Finishing { remove: true }))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.drop_consumer(&id);
        }
        for a in self.consumers.values_mut() {
            // The branches go with the pipeline below.
            a.branches.clear();
            a.consumer.shutdown();
            a.phase = Phase::Idle;
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
        let remove = after == After::Exit;
        let ids: Vec<ConsumerId> = self.consumers.keys().cloned().collect();
        for id in ids {
            let Some(a) = self.consumers.get_mut(&id) else {
                continue;
            };
            let finishing = match a.phase {
                Phase::Running => begin_finish(a),
                Phase::Finishing { .. } => true,
                Phase::Idle => false,
            };
            if finishing {
                a.phase = Phase::Finishing {
                    remove: remove || a.phase == (Phase::Finishing { remove: true }),
                };
            } else if remove {
                self.drop_consumer(&id);
            }
        }
    }

    /// Completes a stop once the recorder has finalised. True when the task should end.
    fn finish_stop(&mut self) -> bool {
        let Some(stop) = self.stop.take() else {
            return false;
        };
        self.teardown();
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
        let secs = self.last_stats.elapsed().as_secs_f64().max(0.5);
        self.last_stats = Instant::now();
        let frames = c.frames.load(Ordering::Relaxed);
        let fps = (frames.saturating_sub(self.last_frames) as f64 / secs * 10.0).round() / 10.0;
        self.last_frames = frames;
        let bytes = c.video_bytes.load(Ordering::Relaxed);
        let encoded_kbps =
            (bytes.saturating_sub(self.last_bytes) as f64 * 8.0 / 1000.0 / secs) as u32;
        self.last_bytes = bytes;
        let has_video = c.vtee.is_some();
        let has_audio = c.opustee.is_some();
        let fps_now = self
            .overload
            .as_ref()
            .map_or(self.config.media.video.fps, |o| o.fps());
        let load = c.meter.as_ref().map(|m| m.take(fps_now));
        let encode_usage = load.map_or(0.0, |l| (l.usage * 100.0).round() / 100.0);
        let mut adapted = None;
        if let (Some(o), Some(load), Some(d)) = (self.overload.as_mut(), load, &c.decimator) {
            if self.playing && self.stop.is_none() {
                if let Some(f) = o.sample(load, std::time::Instant::now()) {
                    d.set(f);
                    tracing::info!(
                        fps = f,
                        usage = load.usage,
                        lag_ms = load.lag.as_millis() as u64,
                        "encoder load: frame rate now {f} of {}",
                        o.full()
                    );
                    adapted = Some(MediaNotice::Overload {
                        fps: f,
                        full_fps: o.full(),
                        usage: encode_usage,
                    });
                }
            }
        }
        let audio = c.audio_frames.load(Ordering::Relaxed);
        let audio_moved = audio > self.last_audio_frames;
        self.last_audio_frames = audio;
        self.notify(MediaNotice::Stats {
            fps,
            bitrate_kbps: self.bitrate,
            encoded_kbps,
            encode_usage,
        });
        if let Some(n) = adapted {
            self.notify(n);
        }
        if self.stop.is_some() {
            return;
        }
        if audio_moved {
            self.audio_progress = Instant::now();
        }
        let silent = self.audio_progress.elapsed();
        if has_audio && self.playing && silent >= STALL_LIMIT {
            // Muted audio still flows (as silence): no frames at all is a dead microphone or
            // a stopped streaming thread, and a rebuilt capture is the cure for both.
            self.fault(MediaError::Stalled(format!(
                "the microphone delivered no sound for {}s",
                silent.as_secs()
            )));
            return;
        }
        if !has_video {
            return;
        }
        if fps > 0.0 {
            self.last_progress = Instant::now();
            return;
        }
        let idle = self.last_progress.elapsed();
        if self.playing && idle >= STALL_LIMIT {
            self.fault(MediaError::Stalled(format!(
                "the camera delivered no frame for {}s",
                idle.as_secs()
            )));
        } else if !self.playing && idle >= FIRST_FRAME_LIMIT {
            self.fault(MediaError::Stalled(format!(
                "the camera delivered no first frame within {}s",
                idle.as_secs()
            )));
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

/// Starts `active` on `capture`: one branch per feed the capture has.
fn start_consumer(
    capture: &mut Capture,
    active: &mut Active,
    reporter: Reporter,
) -> Result<(), MediaError> {
    let mut feeds = Vec::new();
    let mut tees = Vec::new();
    for feed in active.consumer.feeds() {
        match capture.tee_for(feed) {
            Ok(t) => {
                feeds.push(feed);
                tees.push(t);
            }
            Err(MediaError::NoSource(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if feeds.is_empty() {
        return Err(MediaError::NoSource("video or audio"));
    }
    let keyframes = capture.keyframes();
    let sinks = active.consumer.start(StartContext {
        reporter,
        keyframes: keyframes.clone(),
        feeds: feeds.clone(),
    })?;
    for ((feed, tee), sink) in feeds.into_iter().zip(tees).zip(sinks) {
        match sink::attach(
            &capture.pipeline,
            &tee,
            feed.is_video(),
            sink,
            keyframes.clone(),
        ) {
            Ok(b) => active.branches.push(b),
            Err(e) => {
                close(active);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Detaches a consumer's branches and asks it to finish; true when it will report `Finished`.
fn begin_finish(active: &mut Active) -> bool {
    active.branches.drain(..).for_each(Attached::detach);
    active.consumer.finish()
}

/// Detaches a consumer's branches and stops it at once.
fn close(active: &mut Active) {
    active.branches.drain(..).for_each(Attached::detach);
    active.consumer.shutdown();
}

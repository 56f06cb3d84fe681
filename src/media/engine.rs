//! The media engine task: owns the capture pipeline and its consumers, restarts capture after
//! faults with backoff, and reports everything as [`MediaNotice`]s.
//!
//! [`Engine`] is the handle the agent holds ([`MediaControl`]); the task behind it is the only
//! code that touches the pipelines. Its rules live beside it, free of GStreamer and unit-tested
//! without it, and only this task imports them: `state` (which consumers run, the generation
//! their reports belong to, how a stop waits for them) and `vitals` (the per-second meter, the
//! overload step and the stall watchdog). The task carries out what they decide.

use super::consumer::{Consumer, ConsumerEvent, ConsumerSpec, Reporter};
use super::encoder;
use super::error::MediaError;
use super::pipeline::{self, Capture};
use super::sink::Attached;
use super::{MediaAction, MediaControl, MediaNotice};
use crate::backoff::Backoff;
use crate::config::{Config, VideoSource};
use crate::event::MediaState;
use crate::sync::sleep_until;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

mod feeds;
mod share;
mod state;
mod vitals;

use feeds::start_consumer;

use state::{After, Effect, State, FINISH_TIMEOUT};
use vitals::{Second, Totals, Vitals};

/// How long probing one encoder may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Names a consumer, as the agent attaches it; the bookkeeping is generic over it.
type Id = super::consumer::ConsumerId;

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
            mic_muted: false,
            camera_on: Arc::new(AtomicBool::new(true)),
            state: State::default(),
            consumer_tx,
            consumer_rx,
            backoff,
            restart_at: None,
            vitals: Vitals::new(std::time::Instant::now()),
            share_wanted: false,
            share_signal: None,
            share_stop_at: None,
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

/// What the engine keeps of a consumer it runs; [`State`] keeps where it is in its life.
struct Active {
    spec: ConsumerSpec,
    consumer: Box<dyn Consumer>,
    branches: Vec<Attached>,
    /// Its sinks and the feeds they take, once started.
    sinks: Vec<Arc<dyn crate::media::consumer::FeedSink>>,
    feeds: Vec<super::Feed>,
    /// Its own keyframe requests, aimed at the encoder of its picture.
    keyframes: crate::media::consumer::KeyframeRequester,
    /// Open while its branches feed it; closed when they move.
    gate: Arc<AtomicBool>,
}

impl Active {
    fn new(spec: ConsumerSpec) -> Active {
        Active {
            consumer: spec.clone().build(),
            spec,
            branches: Vec::new(),
            sinks: Vec::new(),
            feeds: Vec::new(),
            keyframes: Default::default(),
            gate: Default::default(),
        }
    }
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
    /// Which capture a first-frame report belongs to; older ones are ignored.
    generation: u64,
    mic_muted: bool,
    camera_on: Arc<AtomicBool>,
    bitrate: u32,
    /// The consumers, whether capture plays, and the stop under way.
    state: State<Id, Active>,
    /// Consumers report here, tagged with their id and generation.
    consumer_tx: mpsc::UnboundedSender<(Id, u64, ConsumerEvent)>,
    consumer_rx: mpsc::UnboundedReceiver<(Id, u64, ConsumerEvent)>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    /// The per-second meter, the stall watchdog and the overload step.
    vitals: Vitals,
    /// The share was asked for (and not stopped since): it runs whenever capture plays.
    share_wanted: bool,
    /// The grabber's signal as last reported.
    share_signal: Option<bool>,
    /// A requested share stop waits until then for the camera to be on air in the program.
    share_stop_at: Option<Instant>,
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
            let stop_deadline = self.state.stop_deadline().map(Instant::from_std);
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
                // Wakes the loop for the stop's deadline; `finish_stop` below decides.
                _ = sleep_until(stop_deadline) => {}
                _ = sleep_until(self.share_stop_at) => self.poll_share_stop(true),
                _ = stats.tick() => self.stats(),
                _ = housekeeping.tick() => self.housekeeping(),
            }
            if self.finish_stop() {
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
                    self.vitals.forget_rate();
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
            MediaAction::SetSpeakerVolume(percent) => super::speaker::set_volume(percent),
            MediaAction::Pin(who) => super::meeting::MeetingHub::shared().pin(who.as_deref()),
            MediaAction::SetBitrate(kbps) => {
                self.bitrate = kbps;
                if let Some(c) = &self.capture {
                    if let (Some(enc), Some(spec)) = (&c.encoder, c.spec) {
                        if let Err(e) = encoder::set_bitrate(enc, spec, kbps, c.gop_frames) {
                            tracing::warn!("bitrate: {e}");
                        }
                    }
                }
                // When congestion control asks the camera for less than its configured bitrate,
                // the share gives up as large a part of its own, in frames, not resolution.
                let full = self.config.media.video.bitrate_kbps.max(1);
                let budget = f64::from(kbps) / f64::from(full);
                if let Some(c) = self.capture.as_mut() {
                    if let (Some(sh), Some(spec)) = (c.share.as_mut(), c.spec) {
                        if let Err(e) = sh.set_budget(spec, budget) {
                            tracing::warn!("share bitrate: {e}");
                        }
                    }
                }
                // The new target shows at the next stats tick. Measuring here cut the
                // one-second frame window short: a room's REMB once a second read as 20 fps,
                // several a second as 0-1 fps, while every frame was encoded and decoded.
            }
            MediaAction::Attach { id, spec } => self.attach(id, spec),
            MediaAction::SetSource { id, source } => self.set_source(id, source),
            MediaAction::Detach { id } => {
                let effects = self.state.detach(id);
                self.apply(effects);
            }
            MediaAction::StartShare => self.start_share(),
            MediaAction::StopShare => self.stop_share(None),
            MediaAction::RequestShareKeyframe => {
                if let Some(s) = self.capture.as_ref().and_then(|c| c.share.as_ref()) {
                    s.keyframes().request(None);
                }
            }
        }
    }

    fn consumer_event(&mut self, id: Id, generation: u64, event: ConsumerEvent) {
        let failed = match &event {
            ConsumerEvent::Failed(e) => Some(e.to_string()),
            _ => None,
        };
        let effects = self.state.event(id.clone(), generation, event);
        // A stale report changes nothing and is not worth a line either.
        if let (Some(e), false) = (failed, effects.is_empty()) {
            tracing::error!(consumer = %id, "consumer failed: {e}");
        }
        self.apply(effects);
    }

    /// Carries out what the bookkeeping decided, in order, with the answers it asks for.
    fn apply(&mut self, effects: Vec<Effect<Id, Active>>) {
        for effect in effects {
            match effect {
                Effect::Open { id, generation } => {
                    let reporter = Reporter::new(id.clone(), generation, self.consumer_tx.clone());
                    let started = match (self.capture.as_mut(), self.state.item_mut(&id)) {
                        (Some(capture), Some(active)) => start_consumer(capture, active, reporter),
                        // Consumers start only while capture plays, so this does not happen;
                        // if it did, the consumer is better reported than left hanging.
                        _ => Err(MediaError::Start("capture".into())),
                    };
                    if let Err(e) = started {
                        tracing::warn!(consumer = %id, "could not start: {e}");
                        let effects = self.state.open_failed(&id, generation, e);
                        self.apply(effects);
                    }
                }
                Effect::Finish { id, generation } => {
                    let will_report = self.state.item_mut(&id).is_some_and(begin_finish);
                    if !will_report {
                        let effects = self.state.event(id, generation, ConsumerEvent::Finished);
                        self.apply(effects);
                    }
                }
                Effect::Shutdown(id) => {
                    if let Some(a) = self.state.item_mut(&id) {
                        // The branches go with the pipeline.
                        a.branches.clear();
                        a.sinks.clear();
                        a.consumer.shutdown();
                    }
                }
                Effect::Close(mut active) => close(&mut active),
                Effect::Notice(id, event) => self.notify(MediaNotice::Consumer { id, event }),
            }
        }
    }

    async fn start(&mut self) {
        self.state.starting();
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
        let adapt = v.adapt_to_cpu.then_some((v.fps, v.min_fps));
        let fps = self.vitals.restart(Instant::now().into_std(), adapt);
        if let (Some(d), Some(fps)) = (&capture.decimator, fps) {
            d.set(fps);
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
        let no_media = capture.vtee.is_none() && capture.rawtee.is_none();
        if let Err(e) = capture.play() {
            self.bus = None;
            return self.fault(e);
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
        let Some(effects) = self.state.play() else {
            return;
        };
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
        self.apply(effects);
        if self.share_wanted {
            self.run_share();
        }
    }

    fn internal(&mut self, i: Internal) {
        match i {
            Internal::FirstFrame(g) if g == self.generation => self.became_playing(),
            Internal::FirstFrame(_) => {}
        }
    }

    /// Once a tick: consumers' housekeeping (a recorder's flush and retention).
    fn housekeeping(&mut self) {
        self.poll_share_stop(false);
        self.meeting_tick();
        for a in self.state.running_mut() {
            a.consumer.tick();
        }
    }

    fn bus_message(&mut self, msg: gst::Message) {
        match msg.view() {
            // The grabber, not the camera: the share stops, capture goes on.
            gst::MessageView::Error(e) if Task::is_share_message(&msg) && self.share_wanted => {
                self.stop_share(Some(MediaError::from_bus(&msg, e)));
            }
            gst::MessageView::Error(_) if Task::is_share_message(&msg) => {}
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
        if !self.state.fault() {
            return;
        }
        let delay = self.backoff.next_delay();
        tracing::info!("restarting capture in {delay:?}");
        self.notify(MediaNotice::State {
            state: MediaState::Restarting,
            encoder: None,
        });
        self.restart_at = Some(Instant::now() + delay);
    }

    /// Drops the capture and stops every consumer at once (see [`State::teardown`]).
    fn teardown(&mut self) {
        let effects = self.state.teardown();
        self.apply(effects);
        self.release_capture();
    }

    fn release_capture(&mut self) {
        if let Some(c) = self.capture.take() {
            c.release();
        }
        self.bus = None;
    }

    fn begin_stop(&mut self, after: After) {
        self.restart_at = None;
        let effects = self.state.begin_stop(after, Instant::now().into_std());
        self.apply(effects);
    }

    /// Completes a stop once its consumers have finished (a recorder finalising its segment),
    /// or its deadline has passed. True when the task should end.
    fn finish_stop(&mut self) -> bool {
        let Some(stopped) = self.state.poll_stop(Instant::now().into_std()) else {
            return false;
        };
        if stopped.gave_up {
            tracing::warn!("consumers did not finish within {FINISH_TIMEOUT:?}");
        }
        self.apply(stopped.effects);
        self.release_capture();
        match stopped.after {
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

    /// Once a second: the stats, the overload step, and the stall watchdog.
    fn stats(&mut self) {
        self.watch_share_signal();
        let Some(c) = &self.capture else { return };
        let fps_now = self.vitals.fps(self.config.media.video.fps);
        let load = c.meter.as_ref().map(|m| m.take(fps_now));
        let second = Second {
            totals: Totals {
                frames: c.frames.load(Ordering::Relaxed),
                video_bytes: c.video_bytes.load(Ordering::Relaxed),
                audio_frames: c.audio_frames.load(Ordering::Relaxed),
            },
            load,
            has_video: c.vtee.is_some(),
            has_audio: c.opustee.is_some(),
            playing: self.state.playing(),
            stopping: self.state.stopping(),
            can_adapt: c.decimator.is_some(),
        };
        let verdict = self.vitals.second(Instant::now().into_std(), second);
        self.notify(MediaNotice::Stats {
            fps: verdict.fps,
            bitrate_kbps: self.bitrate,
            encoded_kbps: verdict.encoded_kbps,
            encode_usage: verdict.encode_usage,
            processing: super::echo::EchoPath::shared().report(),
        });
        if let (Some(step), Some(d), Some(load)) = (verdict.adapted, &c.decimator, load) {
            d.set(step.fps);
            tracing::info!(
                fps = step.fps,
                usage = load.usage,
                lag_ms = load.lag.as_millis() as u64,
                "encoder load: frame rate now {} of {}",
                step.fps,
                step.full_fps
            );
            self.notify(MediaNotice::Overload {
                fps: step.fps,
                full_fps: step.full_fps,
                usage: verdict.encode_usage,
            });
        }
        if let Some(stall) = verdict.stall {
            self.fault(stall.into());
        }
    }
}

/// Detaches a consumer's branches and asks it to finish; true when it will report `Finished`.
fn begin_finish(active: &mut Active) -> bool {
    active.branches.drain(..).for_each(Attached::detach);
    active.consumer.finish()
}

/// Detaches a consumer's branches and stops it at once.
fn close(active: &mut Active) {
    active.branches.drain(..).for_each(Attached::detach);
    active.sinks.clear();
    active.consumer.shutdown();
}

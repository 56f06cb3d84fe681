//! Which branches a consumer gets: one per feed the capture has, and two for the program (the
//! camera's tee and the share's, each behind a [`ProgramInput`]); and the meeting's composition
//! kept while a consumer takes it.

use super::Task;
use crate::media::consumer::Consumer;
use crate::media::consumer::{FeedSink, KeyframeRequester, Reporter, StartContext};
use crate::media::error::MediaError;
use crate::media::pipeline::Capture;
use crate::media::share::{ProgramInput, ProgramSource};
use crate::media::sink;
use crate::media::ConsumerSpec;
use crate::media::Feed;
use crate::model::OutputSource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the engine keeps of a consumer it runs; [`State`] keeps where it is in its life.
pub(super) struct Active {
    pub(super) spec: ConsumerSpec,
    pub(super) consumer: Box<dyn Consumer>,
    pub(super) branches: Vec<sink::Attached>,
    /// Its sinks and the feeds they take, once started.
    pub(super) sinks: Vec<Arc<dyn crate::media::consumer::FeedSink>>,
    pub(super) feeds: Vec<Feed>,
    /// Its own keyframe requests, aimed at the encoder of its picture.
    pub(super) keyframes: crate::media::consumer::KeyframeRequester,
    /// Open while its branches feed it; closed when they move.
    pub(super) gate: Arc<AtomicBool>,
}

impl Active {
    pub(super) fn new(spec: ConsumerSpec) -> Active {
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

/// A branch's sink that stops taking samples once its consumer's branches moved (see
/// [`switch_source`]): an old branch goes only once its tee is idle, and a sample it still
/// carried must not land after the new feed's first keyframe.
struct Gated {
    sink: Box<dyn FeedSink>,
    open: Arc<AtomicBool>,
}

impl FeedSink for Gated {
    fn push(&self, sample: &gstreamer::Sample) -> crate::media::consumer::Pushed {
        match self.open.load(Ordering::Acquire) {
            true => self.sink.push(sample),
            false => crate::media::consumer::Pushed::Idle,
        }
    }
}

/// The consumer's feeds the capture has, with their tees.
fn available(
    capture: &mut Capture,
    wanted: Vec<Feed>,
) -> Result<Vec<(Feed, gstreamer::Element)>, MediaError> {
    let mut out = Vec::new();
    for feed in wanted {
        match capture.tee_for(feed) {
            Ok(t) => out.push((feed, t)),
            Err(MediaError::NoSource(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The keyframes a consumer of `feeds` asks for itself (HLS and the recorder, at their segment
/// boundaries): the meeting's encoder for the meeting's picture, else the camera's.
fn own_keyframes(capture: &Capture, feeds: &[Feed]) -> KeyframeRequester {
    match feeds.contains(&Feed::Meeting) {
        true => capture.meeting_keyframes(),
        false => capture.keyframes(),
    }
}

/// Starts `active` on `capture`: one branch per feed the capture has.
pub(super) fn start_consumer(
    capture: &mut Capture,
    active: &mut Active,
    reporter: Reporter,
) -> Result<(), MediaError> {
    let (feeds, tees): (Vec<Feed>, Vec<_>) = available(capture, active.consumer.feeds())?
        .into_iter()
        .unzip();
    if feeds.is_empty() {
        return Err(MediaError::NoSource("video or audio"));
    }
    // The consumer's own requester, so a change of source can aim it elsewhere.
    let own = own_keyframes(capture, &feeds).fork();
    let sinks = active.consumer.start(StartContext {
        reporter,
        keyframes: own.clone(),
        feeds: feeds.clone(),
    })?;
    active.keyframes = own;
    active.sinks = sinks.into_iter().map(Arc::from).collect();
    active.feeds = feeds.clone();
    let sinks = active.sinks.clone();
    if let Err(e) = attach_all(capture, active, feeds.into_iter().zip(tees).zip(sinks)) {
        super::close(active);
        return Err(e);
    }
    Ok(())
}

/// Attaches one branch per feed (two for the program) to the consumer's sinks.
fn attach_all(
    capture: &mut Capture,
    active: &mut Active,
    feeds: impl Iterator<Item = ((Feed, gstreamer::Element), Arc<dyn FeedSink>)>,
) -> Result<(), MediaError> {
    let keyframes = capture.keyframes();
    let open = Arc::new(AtomicBool::new(true));
    active.gate = open.clone();
    for ((feed, tee), sink) in feeds {
        let share = capture.share.as_ref();
        let mut branches = Vec::new();
        match (feed, share) {
            (Feed::Program, Some(share)) => {
                let (share_tee, share_keys) = share.program_tee();
                for (source, tee, keys) in [
                    (ProgramSource::Camera, tee, keyframes.clone()),
                    (ProgramSource::Share, share_tee, share_keys),
                ] {
                    let input = ProgramInput {
                        source,
                        switch: capture.program.clone(),
                        sink: sink.clone(),
                    };
                    branches.push((tee, Box::new(input) as Box<dyn FeedSink>, keys));
                }
            }
            (Feed::Share, Some(share)) => {
                branches.push((tee, Box::new(sink) as Box<dyn FeedSink>, share.keyframes()))
            }
            (f, _) if f.is_meeting() => {
                branches.push((tee, Box::new(sink), capture.meeting_keyframes()))
            }
            _ => branches.push((tee, Box::new(sink), keyframes.clone())),
        }
        for (tee, sink, keys) in branches {
            let sink = Box::new(Gated {
                sink,
                open: open.clone(),
            });
            active.branches.push(sink::attach(
                &capture.pipeline,
                &tee,
                feed.is_video(),
                sink,
                keys,
            )?);
        }
    }
    Ok(())
}

/// A running consumer takes its feeds from `source` from now on, its output running on: its
/// branches move to the new feeds' tees (video from the new encoder's next keyframe, asked for
/// at once), and its own keyframe requests go to that encoder. Err when the consumer has no
/// source or its feeds do not match one to one; the caller then starts it again instead.
pub(super) fn switch_source(
    capture: &mut Capture,
    active: &mut Active,
    source: OutputSource,
) -> Result<(), MediaError> {
    let refused = |why: &str| MediaError::Start(format!("switching the source: {why}"));
    if !active.consumer.set_source(source) {
        return Err(refused("this output has no source"));
    }
    let feeds = available(capture, active.consumer.feeds())?;
    if active.sinks.is_empty() {
        // Not started: it starts on the new feeds.
        return Ok(());
    }
    if feeds.len() != active.sinks.len()
        || feeds
            .iter()
            .zip(&active.feeds)
            .any(|((new, _), old)| new.is_video() != old.is_video())
    {
        return Err(refused("the feeds do not match"));
    }
    active.gate.store(false, Ordering::Release);
    active.branches.drain(..).for_each(sink::Attached::detach);
    let new: Vec<Feed> = feeds.iter().map(|(f, _)| *f).collect();
    active.keyframes.retarget(&own_keyframes(capture, &new));
    active.feeds = new;
    let sinks = active.sinks.clone();
    attach_all(capture, active, feeds.into_iter().zip(sinks))
}

impl Task {
    /// [`MediaAction::Attach`](crate::media::MediaAction::Attach): runs the consumer, replacing
    /// one of the same id; the same output with only another source (a reloaded config)
    /// switches, running on.
    pub(super) fn attach(&mut self, id: super::Id, spec: crate::media::ConsumerSpec) {
        let switches = self.state.item_mut(&id).is_some_and(|a| {
            a.spec != spec
                && spec
                    .source()
                    .is_some_and(|source| a.spec.with_source(source) == spec)
        });
        if let (true, Some(source)) = (switches, spec.source()) {
            return self.set_source(id, source);
        }
        let effects = self
            .state
            .attach(id, |a| a.spec == spec, || Active::new(spec.clone()));
        self.apply(effects);
    }

    /// [`MediaAction::SetSource`](crate::media::MediaAction::SetSource): the consumer moves
    /// its branches and runs on, or, when it cannot, starts again on the new source.
    pub(super) fn set_source(&mut self, id: super::Id, source: OutputSource) {
        let Some(active) = self.state.item_mut(&id) else {
            tracing::debug!(consumer = %id, "set-source: not attached");
            return;
        };
        if active.spec.source() == Some(source) {
            return;
        }
        let spec = active.spec.with_source(source);
        let switched = match self.capture.as_mut() {
            Some(capture) => switch_source(capture, active, source),
            None if active.consumer.set_source(source) => Ok(()),
            None => Err(MediaError::Start("this output has no source".into())),
        };
        match switched {
            Ok(()) => {
                active.spec = spec;
                tracing::info!(consumer = %id, ?source, "the output's source switched");
            }
            Err(e) => {
                tracing::warn!(consumer = %id, "the output starts again on its new source: {e}");
                let effects =
                    self.state
                        .attach(id, |a| a.spec == spec, || Active::new(spec.clone()));
                self.apply(effects);
            }
        }
    }

    /// The meeting's composition follows the room (inputs, layout) while a running consumer
    /// takes a meeting feed, and goes when none does.
    pub(super) fn meeting_tick(&mut self) {
        let Some(capture) = self.capture.as_mut().filter(|c| c.meeting.is_some()) else {
            return;
        };
        let used = self
            .state
            .running_mut()
            .any(|a| a.consumer.feeds().iter().any(|f| f.is_meeting()));
        if !used {
            capture.drop_meeting();
        } else if let Some(m) = capture.meeting.as_mut() {
            m.tick(&capture.pipeline, std::time::Instant::now());
        }
    }
}

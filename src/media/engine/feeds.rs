//! Which branches a consumer gets: one per feed the capture has, and two for the program (the
//! camera's tee and the share's, each behind a [`ProgramInput`]); and the meeting's composition
//! kept while a consumer takes it.

use super::{Active, Task};
use crate::media::consumer::{FeedSink, Reporter, StartContext};
use crate::media::error::MediaError;
use crate::media::pipeline::Capture;
use crate::media::share::{ProgramInput, ProgramSource};
use crate::media::sink;
use crate::media::Feed;
use std::sync::Arc;

/// Starts `active` on `capture`: one branch per feed the capture has.
pub(super) fn start_consumer(
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
    // A consumer of the meeting's picture asks the meeting's encoder for its keyframes (HLS and
    // the recorder, at their segment boundaries).
    let own_keyframes = match feeds.contains(&Feed::Meeting) {
        true => capture.meeting_keyframes(),
        false => keyframes.clone(),
    };
    let sinks = active.consumer.start(StartContext {
        reporter,
        keyframes: own_keyframes,
        feeds: feeds.clone(),
    })?;
    for ((feed, tee), sink) in feeds.into_iter().zip(tees).zip(sinks) {
        let share = capture.share.as_ref();
        let mut branches = Vec::new();
        match (feed, share) {
            (Feed::Program, Some(share)) => {
                let sink: Arc<dyn FeedSink> = Arc::from(sink);
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
            (Feed::Share, Some(share)) => branches.push((tee, sink, share.keyframes())),
            (f, _) if f.is_meeting() => branches.push((tee, sink, capture.meeting_keyframes())),
            _ => branches.push((tee, sink, keyframes.clone())),
        }
        for (tee, sink, keys) in branches {
            match sink::attach(&capture.pipeline, &tee, feed.is_video(), sink, keys) {
                Ok(b) => active.branches.push(b),
                Err(e) => {
                    super::close(active);
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

impl Task {
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

//! Consumers: everything that takes media from the one capture and encode — the recorder, a
//! room's WebRTC tracks, RTMP outputs, HLS, a transcriber — as peers behind one trait.
//!
//! A consumer declares the [`Feed`]s it needs. The engine attaches one branch per feed to the
//! capture's tees while capture runs, hands each sample to the consumer's [`FeedSink`], and
//! forwards what the consumer reports ([`ConsumerEvent`]) to the agent. The engine knows no
//! consumer by name: the agent says which to run with a [`ConsumerSpec`].
//!
//! Isolation: each branch starts with a leaky queue on its own thread, and sinks never block.
//! A consumer that is slow or stalls loses its own samples; its video then restarts at a
//! keyframe, and capture and the other consumers never wait for it.

use super::error::MediaError;
use super::hls::HlsSpec;
use super::recorder::RecorderSpec;
use super::rtmp::RtmpSpec;
use super::tap::TapSender;
use crate::model::OutputSource;
use gstreamer as gst;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A stream a consumer can take from the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    /// H.264 access units (byte-stream, constrained baseline, SPS/PPS on every keyframe).
    H264,
    /// The share's H.264 (as [`Feed::H264`], from its own encode): nothing while no share runs.
    Share,
    /// What the local outputs show: the camera's H.264, or the share's while there is one
    /// (switching at a keyframe; the picture size changes with it).
    Program,
    /// Opus packets, 20 ms.
    Opus,
    /// AAC frames (raw, with codec_data caps); its encoder runs only while someone takes it.
    Aac,
    /// Raw audio after the mute: S16LE mono at this rate (16000 for speech recognition).
    Pcm {
        /// Samples per second.
        rate: u32,
    },
    /// The meeting's H.264: the box's camera and every remote participant in a layout
    /// (`media::meeting`); composed and encoded only while someone takes it.
    Meeting,
    /// The meeting's mix (every voice and the box's processed mic) in AAC.
    MeetingAac,
    /// The meeting's mix in Opus, 20 ms.
    MeetingOpus,
}

impl Feed {
    /// True for the video feed.
    pub fn is_video(self) -> bool {
        matches!(
            self,
            Feed::H264 | Feed::Share | Feed::Program | Feed::Meeting
        )
    }

    /// The room's feed of the same form: the meeting's H.264, AAC and Opus are muxed, parsed
    /// and sent as the camera's, the mic's.
    pub fn base(self) -> Feed {
        match self {
            Feed::Meeting => Feed::H264,
            Feed::MeetingAac => Feed::Aac,
            Feed::MeetingOpus => Feed::Opus,
            f => f,
        }
    }

    /// True for the meeting's feeds.
    pub fn is_meeting(self) -> bool {
        matches!(self, Feed::Meeting | Feed::MeetingAac | Feed::MeetingOpus)
    }

    /// This feed taken from `source`: the room's own (unchanged), or the meeting's picture for
    /// the camera's or the program's, and the meeting's mix for the mic's encodes.
    pub fn from_source(self, source: OutputSource) -> Feed {
        match (source, self) {
            (OutputSource::Meeting, Feed::H264 | Feed::Program) => Feed::Meeting,
            (OutputSource::Meeting, Feed::Aac) => Feed::MeetingAac,
            (OutputSource::Meeting, Feed::Opus) => Feed::MeetingOpus,
            _ => self,
        }
    }
}

/// Whether a sink took a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Taken.
    Ok,
    /// The consumer is behind and dropped it; its video must restart at a keyframe, asked for
    /// now.
    Full,
    /// The consumer is not taking samples for now (an output rebuilding after its ingest was
    /// lost): dropped, and its video restarts at a keyframe, which the consumer asks for itself
    /// when it takes samples again. Asking on every keyframe meanwhile would make every frame a
    /// keyframe for everyone.
    Idle,
}

/// Where the engine hands one feed's samples. Called on a streaming thread: it must not block.
pub trait FeedSink: Send + Sync {
    /// Takes one sample.
    fn push(&self, sample: &gst::Sample) -> Pushed;
}

/// A sink shared between branches (the engine keeps the consumer's, so a change of source can
/// move its branches while it runs on).
impl FeedSink for Arc<dyn FeedSink> {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        (**self).push(sample)
    }
}

/// What a consumer reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerEvent {
    /// It is producing output (a segment is open, the ingest accepted the stream, ...).
    Started,
    /// It wrote a complete file (a recording segment).
    FileClosed {
        path: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// It lost its output and is rebuilding it after `retry_in`; capture goes on.
    Retrying {
        error: MediaError,
        /// When it tries again.
        retry_in: std::time::Duration,
    },
    /// It finished cleanly after [`Consumer::finish`].
    Finished,
    /// It failed for good; the engine detaches it.
    Failed(MediaError),
}

/// Which consumer an action or a notice is about. The agent picks the id and knows what each
/// one is; the engine only uses it as a key (one consumer per id) and names it in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerId {
    /// The local recorder.
    Recorder,
    /// The room session's tap on the encoded feeds.
    RoomTap,
    /// HLS for the box's HTTP server.
    Hls,
    /// The local mic's speech tap for the live transcriber.
    Transcriber,
    /// An RTMP output, by its configured or given name.
    Rtmp(String),
}

impl std::fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumerId::Recorder => f.write_str("recorder"),
            ConsumerId::RoomTap => f.write_str("room"),
            ConsumerId::Hls => f.write_str("hls"),
            ConsumerId::Transcriber => f.write_str("transcriber"),
            ConsumerId::Rtmp(name) => write!(f, "rtmp:{name}"),
        }
    }
}

/// How a consumer reports; cheap to clone into its own tasks and threads.
#[derive(Debug, Clone)]
pub struct Reporter {
    id: ConsumerId,
    generation: u64,
    tx: mpsc::UnboundedSender<(ConsumerId, u64, ConsumerEvent)>,
}

impl Reporter {
    /// A reporter for consumer `id` in its `generation`-th start; reports of an older generation
    /// are ignored by the engine.
    pub fn new(
        id: ConsumerId,
        generation: u64,
        tx: mpsc::UnboundedSender<(ConsumerId, u64, ConsumerEvent)>,
    ) -> Reporter {
        Reporter { id, generation, tx }
    }

    /// Sends one event; a closed engine is not an error here.
    pub fn send(&self, event: ConsumerEvent) {
        let _ = self.tx.send((self.id.clone(), self.generation, event));
    }
}

/// What a consumer gets when it starts.
pub struct StartContext {
    /// Where it reports.
    pub reporter: Reporter,
    /// Asks the shared video encoder for a keyframe (recorders at segment boundaries).
    pub keyframes: KeyframeRequester,
    /// The feeds it gets: those of [`Consumer::feeds`] the capture has, in that order.
    pub feeds: Vec<Feed>,
}

/// A handle that asks the shared encoder for a keyframe, at a running time or now.
///
/// Clones share their target: the engine hands each consumer a [`KeyframeRequester::fork`] of
/// its own, which it can [`retarget`](KeyframeRequester::retarget) when the consumer's source
/// changes while it runs.
#[derive(Debug, Clone, Default)]
pub struct KeyframeRequester(Arc<Mutex<Option<gst::Element>>>);

impl KeyframeRequester {
    /// Asks `element` (an encoder, or an element upstream events pass through to one).
    pub fn new(element: Option<gst::Element>) -> KeyframeRequester {
        KeyframeRequester(Arc::new(Mutex::new(element)))
    }

    fn target(&self) -> Option<gst::Element> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A requester of its own, aimed where this one is.
    pub fn fork(&self) -> KeyframeRequester {
        KeyframeRequester::new(self.target())
    }

    /// Aims this requester (and its clones) where `other` is aimed.
    pub fn retarget(&self, other: &KeyframeRequester) {
        let to = other.target();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }

    /// Asks for a keyframe (with SPS/PPS) now, or at `running_time` on the capture's clock.
    pub fn request(&self, running_time: Option<gst::ClockTime>) {
        use gstreamer::prelude::*;
        let Some(pad) = self.target().and_then(|e| e.static_pad("src")) else {
            return;
        };
        let mut ev = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true);
        if let Some(rt) = running_time {
            ev = ev.running_time(rt);
        }
        pad.send_event(ev.build());
    }
}

/// One consumer of the capture.
pub trait Consumer: Send {
    /// The feeds it wants. Those the capture cannot give (no camera, no mic) are left out of
    /// [`StartContext::feeds`]; a consumer left with none is not started.
    fn feeds(&self) -> Vec<Feed>;
    /// Builds and starts its own output for `ctx.feeds`. Called once capture plays, and again
    /// after a capture restart; returns one sink per feed of `ctx.feeds`, in that order.
    fn start(&mut self, ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>, MediaError>;
    /// Ends its output cleanly (a recorder finalises its segment). Returns true when it will
    /// report [`ConsumerEvent::Finished`] later, false when it is already done (the default:
    /// a consumer that only hands samples on has nothing to finalise).
    fn finish(&mut self) -> bool {
        false
    }
    /// Stops at once, after a failure or a capture fault (the default: nothing of its own runs).
    fn shutdown(&mut self) {}
    /// Housekeeping, once a second while it runs (flush, retention).
    fn tick(&mut self) {}
    /// Takes its feeds from `source` from now on ([`Consumer::feeds`] says the new ones, in the
    /// same order, each of the same form): the engine moves its branches while its output runs
    /// on. False (the default) for a consumer without a source.
    fn set_source(&mut self, _source: OutputSource) -> bool {
        false
    }
}

/// Which consumer to run, as the agent asks for it. Data only, so the agent's pure state machine
/// can say it and tests can compare it; [`ConsumerSpec::build`] makes the consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerSpec {
    /// The local recorder.
    Recorder(RecorderSpec),
    /// Encoded samples to a channel (a room's WebRTC tracks).
    Tap(TapSender),
    /// Encoded samples of the given feeds to a channel.
    TapFeeds(Vec<Feed>, TapSender),
    /// One RTMP output.
    Rtmp(RtmpSpec),
    /// HLS, written for the box's HTTP server.
    Hls(HlsSpec),
    /// The local mic's speech, after the mute, to the transcriber.
    Pcm(super::pcm::PcmSender),
}

impl ConsumerSpec {
    /// What the output carries, for the consumers that have a source.
    pub fn source(&self) -> Option<OutputSource> {
        match self {
            ConsumerSpec::Recorder(s) => Some(s.config.source),
            ConsumerSpec::Rtmp(s) => Some(s.source),
            ConsumerSpec::Hls(s) => Some(s.source),
            _ => None,
        }
    }

    /// The same spec carrying `source` (unchanged for consumers without one).
    pub fn with_source(&self, source: OutputSource) -> ConsumerSpec {
        let mut spec = self.clone();
        match &mut spec {
            ConsumerSpec::Recorder(s) => s.config.source = source,
            ConsumerSpec::Rtmp(s) => s.source = source,
            ConsumerSpec::Hls(s) => s.source = source,
            _ => {}
        }
        spec
    }

    /// Makes the consumer.
    pub fn build(self) -> Box<dyn Consumer> {
        match self {
            ConsumerSpec::Recorder(s) => Box::new(super::recorder::RecorderConsumer::new(s)),
            ConsumerSpec::Tap(s) => Box::new(super::tap::Tap::new(s)),
            ConsumerSpec::TapFeeds(f, s) => Box::new(super::tap::Tap::with_feeds(s, f)),
            ConsumerSpec::Rtmp(s) => Box::new(super::rtmp::Rtmp::new(s)),
            ConsumerSpec::Hls(s) => Box::new(super::hls::Hls::new(s)),
            ConsumerSpec::Pcm(s) => Box::new(super::pcm::PcmTap::new(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConsumerId;

    #[test]
    fn ids_read_in_logs_as_they_always_have() {
        let ids = [
            ConsumerId::Recorder,
            ConsumerId::RoomTap,
            ConsumerId::Hls,
            ConsumerId::Transcriber,
            ConsumerId::Rtmp("yt".into()),
        ];
        let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["recorder", "room", "hls", "transcriber", "rtmp:yt"]);
        assert_ne!(ConsumerId::Rtmp("a".into()), ConsumerId::Rtmp("b".into()));
    }
}

//! The media engine: one capture and one encode per codec, teed to consumers (the recorder, a
//! room, RTMP, HLS, a transcriber) that attach and detach while capture runs.
//!
//! The agent talks to the engine through [`MediaControl`] and hears back through
//! [`MediaNotice`]s: an action's outcome is reported only once it has really happened.
//!
//! Layer 5 of docs/architecture.md: it imports only config, events, the backoff and the
//! helpers below it; the transcriber, rooms, the agent, `check`, `probe`, `http` and `run`
//! import it.

pub mod consumer;
pub mod echo;
pub mod element;
pub mod encoder;
pub mod engine;
pub mod error;
pub mod filemic;
pub mod grabber;
pub mod hls;
pub mod layout;
pub mod meeting;
pub mod overload;
pub mod pcm;
pub mod pip;
pub mod pipeline;
pub mod pipemic;
pub mod recorder;
pub mod retention;
pub mod rtmp;
pub mod share;
pub mod sharepattern;
#[cfg(any(test, feature = "test-util"))]
pub mod sim;
pub mod sink;
pub mod speaker;
pub mod tap;
pub mod tracks;
mod tracks_read;
pub mod v4l2;

pub use consumer::{ConsumerEvent, ConsumerId, ConsumerSpec, Feed};
pub use error::MediaError;
pub use tap::{EncodedSample, TapSender};

use crate::event::MediaState;

/// What the agent asks of the media engine. Every action returns at once; its outcome comes back
/// as a [`MediaNotice`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaAction {
    /// Build the pipeline, pick the encoder and start capturing.
    Start,
    /// Tear down and rebuild the pipeline on request.
    Restart,
    /// Take a reloaded configuration; the pipeline is rebuilt only if its media or recording
    /// settings changed.
    Reconfigure(Box<crate::config::Config>),
    /// Finalise every consumer (the recorder closes its segment) and stop.
    Stop,
    /// Silence the microphone for every consumer (true) or let it through (false).
    SetMicMuted(bool),
    /// Send camera frames (true) or black frames (false) to every consumer.
    SetCameraEnabled(bool),
    /// Ask the video encoder for a keyframe now.
    RequestKeyframe,
    /// Change the video encoder's bitrate, kbit/s.
    SetBitrate(u32),
    /// Set the speaker's volume, percent (0..=100); it holds for every speaker built after.
    SetSpeakerVolume(u32),
    /// Pin a remote participant to the meeting feed's focus (None: unpin).
    Pin(Option<String>),
    /// Run a consumer of the capture (the recorder, a room's tap, an RTMP output, HLS) under
    /// `id`, replacing any consumer of that id. It starts once capture plays, and again after
    /// every capture restart, until detached.
    Attach {
        /// Names the consumer in its notices and for [`MediaAction::Detach`].
        id: ConsumerId,
        spec: ConsumerSpec,
    },
    /// Stop a consumer cleanly (a recorder finalises its segment); it reports `Finished`.
    Detach { id: ConsumerId },
    /// A consumer with a source (the recorder, an RTMP output, HLS) carries `source` from now
    /// on: while it runs, its branches move and its output goes on (a new segment or a
    /// discontinuity where the picture's format changes); if they cannot, it starts again.
    SetSource {
        id: ConsumerId,
        source: crate::model::OutputSource,
    },
    /// Start the content share (`[media.share]`) beside the camera, which keeps running; it
    /// starts once capture plays and again after a capture restart, until stopped.
    StartShare,
    /// Stop the content share; the camera keeps running.
    StopShare,
    /// Ask the share's encoder for a keyframe now (a room's new subscriber).
    RequestShareKeyframe,
}

/// What the content share did.
#[derive(Debug, Clone, PartialEq)]
pub enum ShareNotice {
    /// Its capture and encode run (its first frame is on its way).
    Started,
    /// It stopped on request.
    Stopped,
    /// It could not start, or its source failed (a grabber unplugged); it is stopped, and the
    /// camera carries on.
    Failed(MediaError),
    /// The grabber has a signal (true) or lost it (false); reported at start and on change.
    Signal(bool),
}

/// What the media engine reports to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaNotice {
    /// The pipeline changed state; `encoder` names the H.264 encoder once chosen.
    State {
        state: MediaState,
        /// Encoder element name.
        encoder: Option<String>,
    },
    /// Measured over the last second.
    Stats {
        /// Encoded frames per second.
        fps: f64,
        /// Video bitrate target, kbit/s.
        bitrate_kbps: u32,
        /// Video bitrate the encoder actually produced over the last second, kbit/s.
        encoded_kbps: u32,
        /// Time the video encoder spent per frame, as a share of the frame interval (1.0: no
        /// time to spare).
        encode_usage: f64,
        /// The mic's processing and the canceller's figures; None while nothing runs.
        processing: Option<echo::ProcessingReport>,
    },
    /// The encoder could not keep up and the frame rate stepped down, or there was room again
    /// and it stepped back up.
    Overload {
        /// Frames per second now sent.
        fps: u32,
        /// The configured rate.
        full_fps: u32,
        /// The encoder's load over the last second, as a share of its time budget.
        usage: f64,
    },
    /// The mic mute is in effect (true: no audio leaves).
    MicMuted(bool),
    /// Camera frames are (true) or are not (false) what leaves.
    CameraEnabled(bool),
    /// What a consumer reported. `Finished` also comes for a consumer that was detached, and
    /// `Failed` for one that could not start; after either the consumer is gone.
    Consumer {
        /// The consumer's id, as attached.
        id: ConsumerId,
        event: ConsumerEvent,
    },
    /// A fault in capture or encode; the engine restarts the pipeline with backoff.
    Error(MediaError),
    /// What the content share did.
    Share(ShareNotice),
}

/// The agent's handle on a media engine.
pub trait MediaControl: Send {
    /// Carries out one action without blocking for long; results come back as notices.
    fn apply(&mut self, action: MediaAction);
}

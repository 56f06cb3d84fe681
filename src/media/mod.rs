//! The media engine: one capture and one encode per codec, teed to consumers (the recorder, a
//! room, RTMP, HLS, a transcriber) that attach and detach while capture runs.
//!
//! The agent talks to the engine through [`MediaControl`] and hears back through
//! [`MediaNotice`]s: an action's outcome is reported only once it has really happened.

pub mod encoder;
pub mod engine;
pub mod pipeline;
pub mod recorder;
pub mod retention;
pub mod sink;
pub mod v4l2;

use crate::event::MediaState;
use crate::model::StreamKind;
use std::time::Duration;
use tokio::sync::mpsc;

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
    /// Attach the local recorder.
    StartRecording,
    /// Detach the local recorder, finalising its last segment.
    StopRecording,
    /// Silence the microphone for every consumer (true) or let it through (false).
    SetMicMuted(bool),
    /// Send camera frames (true) or black frames (false) to every consumer.
    SetCameraEnabled(bool),
    /// Ask the video encoder for a keyframe now.
    RequestKeyframe,
    /// Change the video encoder's bitrate, kbit/s.
    SetBitrate(u32),
    /// Hand encoded samples to a consumer outside GStreamer (a room's WebRTC tracks): H.264
    /// access units (Annex B byte-stream, constrained baseline, SPS/PPS on every keyframe) and
    /// Opus packets, from the one shared encode. A keyframe is forced when a tap attaches.
    AttachTap {
        /// Names the tap for [`MediaAction::DetachTap`].
        id: String,
        /// Where samples go. When it is full, samples for this tap are dropped (never blocking
        /// capture) and the next video sample sent is a keyframe.
        sender: TapSender,
    },
    /// Stop handing samples to a tap.
    DetachTap {
        /// The tap's id.
        id: String,
    },
}

/// One encoded sample from the shared encoders.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSample {
    /// Audio (Opus) or video (H.264).
    pub kind: StreamKind,
    /// The encoded bytes.
    pub data: bytes::Bytes,
    /// Presentation time on the pipeline clock.
    pub pts: Option<Duration>,
    /// Duration, when known.
    pub duration: Option<Duration>,
    /// True for an H.264 IDR access unit.
    pub keyframe: bool,
}

/// The sending side of a tap; equal when it feeds the same channel.
#[derive(Debug, Clone)]
pub struct TapSender(pub mpsc::Sender<EncodedSample>);

impl PartialEq for TapSender {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

/// What the media engine reports to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaNotice {
    /// The pipeline changed state; `encoder` names the H.264 encoder once chosen.
    State {
        /// New state.
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
    },
    /// The mic mute is in effect (true: no audio leaves).
    MicMuted(bool),
    /// Camera frames are (true) or are not (false) what leaves.
    CameraEnabled(bool),
    /// The recorder is writing.
    RecordingStarted,
    /// A segment file was closed and is complete.
    SegmentClosed {
        /// The file.
        path: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// The recorder stopped and its last segment is finalised.
    RecordingStopped,
    /// The recorder failed (disk full, write error); capture goes on.
    RecordingFailed {
        /// Why.
        reason: String,
    },
    /// A fault in capture or encode; the engine restarts the pipeline with backoff.
    Error {
        /// What happened.
        message: String,
    },
}

/// The agent's handle on a media engine.
pub trait MediaControl: Send {
    /// Carries out one action without blocking for long; results come back as notices.
    fn apply(&mut self, action: MediaAction);
}

//! Joining meeting rooms as the local participant.
//!
//! The agent asks with [`RoomAction`]s and hears back through [`RoomNotice`]s; everything in
//! between runs in one task of its own ([`session`], its rules pure code in `session/state.rs`),
//! like librespot's Spirc: a room backend ([`signaller::Signaller`]: Janus VideoRoom, or WHIP and
//! WHEP) for
//! signalling, WebRTC connections from the webrtc crate ([`peer`]) for media, and a GStreamer
//! pipeline ([`playback`]) that plays the remote participants. The box publishes the media engine's one encode through a tap: the
//! session never encodes.
//!
//! `run.rs` wires it with [`spawn`] and hands the returned [`RoomLink`] to the agent
//! (`Agent::attach_room`).
//!
//! Layer 7 of docs/architecture.md: it takes the media engine's encode through a tap and
//! knows nothing of the agent; the agent (its actions and notices) and `run` import it.

pub mod janus;
pub mod peer;
pub mod playback;
pub mod rtcp;
pub mod session;
pub mod signaller;
pub mod whip;

use crate::config::{Config, RoomBackendKind};
use crate::media::TapSender;
use crate::model::{ChatMessage, Metadata, Mode, Participant, ServiceState, StreamKind};
use std::collections::BTreeMap;
use tokio::sync::{mpsc, watch};

/// What the agent asks of the room session.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomAction {
    /// Join (or switch to) a room; the session keeps rejoining after faults until told to leave.
    Join(JoinRequest),
    /// Leave the room.
    Leave,
    /// End the room's session for everyone, then leave.
    End,
    /// Send a chat message to everyone, or to one participant (backends that can).
    SendChat {
        text: String,
        /// A participant id for a private message.
        to: Option<String>,
    },
    /// Start (true) or stop (false) cloud recording on the room server.
    SetCloudRecording(bool),
    /// The camera was turned on (true) or off (false): stop sending video at once, and
    /// renegotiate the publication (through [`signaller::Signaller::renegotiate`]) so the room
    /// marks the box's video stream disabled, or enabled again; the others see the camera go
    /// off rather than a frozen or black picture. Kept across joins.
    SetCamera(bool),
    /// The content share started (true) or stopped (false): the publication gets (or turns
    /// off) a second video stream described as a share, renegotiated like the camera. Kept
    /// across joins.
    SetShare(bool),
    /// Leave and end the task.
    Shutdown,
}

/// Who joins where, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    pub room_id: String,
    /// The name shown to the others.
    pub display_name: String,
    /// Metadata shown to the others (backends that carry it).
    pub metadata: Metadata,
    /// Microphone published at join.
    pub mic: bool,
    /// Camera published at join.
    pub webcam: bool,
    /// Send-and-receive, receive-only or signalling-only.
    pub mode: Mode,
}

/// What the room session reports to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomNotice {
    /// The connection to the meeting changed state.
    State(crate::model::MeetingState),
    /// In the room, media flowing.
    Joined {
        room_id: String,
        /// The server's id for this run of the room.
        session_id: Option<String>,
        /// The id the server gave this box.
        participant_id: String,
    },
    /// Out of the room.
    Left {
        room_id: String,
        /// `left`, `ended`, `kicked`, `shutdown`, `refused`.
        reason: String,
    },
    /// A remote participant is in the room.
    ParticipantJoined(Participant),
    /// A remote participant left.
    ParticipantLeft(String),
    /// A remote participant's stream started or stopped.
    Stream {
        participant_id: String,
        kind: StreamKind,
        /// True when it started.
        enabled: bool,
    },
    /// Someone started or stopped talking.
    Talking {
        participant_id: String,
        /// True when they started.
        talking: bool,
    },
    /// A chat message arrived.
    Chat(ChatMessage),
    /// Cloud recording changed state.
    CloudRecording {
        state: ServiceState,
        /// Why, when it failed.
        reason: Option<String>,
    },
    /// The session publishes: feed this tap from the shared encode.
    AttachTap(TapSender),
    /// The session stopped publishing.
    DetachTap,
    /// A receiver lost a picture: send a keyframe.
    KeyframeRequested,
    /// A receiver of the share (one that just subscribed) needs a keyframe of it.
    ShareKeyframeRequested,
    /// Congestion control wants this video bitrate, kbit/s (before the configured bounds).
    BitrateWanted(u32),
    /// Something went wrong; the session carries on (or retries).
    Error(String),
}

/// Counters for tests, benchmarks and `status`: what has been received and decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomStats {
    /// Per remote participant.
    pub participants: BTreeMap<String, RemoteStats>,
    /// Video samples handed to the publisher.
    pub video_samples_sent: u64,
    /// Audio samples handed to the publisher.
    pub audio_samples_sent: u64,
}

/// What has been received from one remote participant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteStats {
    /// Whole video frames received (access units out of the depayloader), decoded or not.
    pub video_frames: u64,
    /// Video frames decoded for the screen; stays 0 on a box with no remote video to show.
    pub decoded_frames: u64,
    /// RTP packets received (audio and video).
    pub packets: u64,
    /// Last measured audio level, dBFS (RMS), once audio decodes.
    pub audio_dbfs: Option<f64>,
}

/// The agent's end of a running room session.
pub struct RoomLink {
    /// Where actions go.
    pub actions: mpsc::UnboundedSender<RoomAction>,
    /// Where notices come from.
    pub notices: mpsc::UnboundedReceiver<RoomNotice>,
    /// Live counters.
    pub stats: watch::Receiver<RoomStats>,
    /// The backend's name.
    pub backend: &'static str,
    /// Where remote participants' speech goes while transcription runs.
    pub speech: crate::media::pcm::PcmHub,
}

/// Starts the room session task for `config.room`, or `None` when no backend is configured.
/// Must be called inside a Tokio runtime.
pub fn spawn(config: &Config) -> Option<RoomLink> {
    let backend: Box<dyn signaller::Signaller> = match config.room.backend {
        RoomBackendKind::None => return None,
        RoomBackendKind::Janus => Box::new(janus::Janus::new(config.room.clone())),
        RoomBackendKind::Whip => Box::new(whip::Whip::new(config.room.clone())),
    };
    Some(session::spawn(config, backend))
}

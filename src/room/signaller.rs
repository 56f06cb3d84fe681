//! The room backend trait: the signalling half of a room, like gst-plugins-rs's `Signallable`.
//!
//! A backend speaks one room server's protocol (Janus VideoRoom, or WHIP and WHEP; LiveKit
//! could follow) and nothing else: it joins and leaves, trades session descriptions for the WebRTC
//! session, and reports what happens in the room as [`SignalEvent`]s. The WebRTC media, the
//! reconnect policy and the agent's vocabulary live in [`super::session`], so a new backend
//! touches neither the agent nor the media code.

use super::JoinRequest;
use crate::model::Mode;

/// Why a backend operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The server is unreachable or the connection dropped; retrying later may work.
    #[error("signalling: {0}")]
    Transport(String),
    /// The server refused (bad PIN, no such room, not allowed); retrying will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The server answered something the backend cannot use.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The operation does not exist on this backend.
    #[error("not supported by this room backend: {0}")]
    Unsupported(String),
}

/// A participant already publishing, or starting to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePublisher {
    pub participant_id: String,
    pub display_name: String,
    /// Publishes audio.
    pub audio: bool,
    /// Publishes video.
    pub video: bool,
    /// Publishes a data channel (chat).
    pub data: bool,
    /// Publishes a content share: a video stream the room describes as a share.
    pub share: bool,
}

/// The outcome of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The room id as the server names it.
    pub room_id: String,
    /// The server's id for this run of the room (a Janus session id), if it has one.
    pub session_id: Option<String>,
    /// The id the server gave the local participant.
    pub participant_id: String,
    /// Everyone already publishing.
    pub publishers: Vec<RemotePublisher>,
    /// The server lists who is in the room (Janus). Without a roster (WHEP), a participant is
    /// listed only while its subscription stands, and one that fails is tried again later.
    pub roster: bool,
}

/// Who writes a subscription's offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offerer {
    /// The server offers what it sends ([`Signaller::subscribe`], then [`Signaller::accept`]).
    Server,
    /// The box offers to receive ([`Signaller::subscribe_with_offer`]), as WHEP does.
    Local,
}

/// A STUN or TURN server for the box's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URL.
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// Something the room server reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalEvent {
    /// A participant entered (not necessarily publishing yet).
    ParticipantJoined {
        participant_id: String,
        /// Their name.
        display_name: String,
    },
    /// A participant started publishing (or changed what it publishes).
    Published(RemotePublisher),
    /// The server offers a subscription anew (the participant turned a stream off or on):
    /// answer it on the subscription's connection and [`Signaller::accept`] the answer.
    SubscriptionOffer {
        subscription_id: String,
        /// The server's new SDP offer.
        offer: String,
    },
    /// A participant stopped publishing.
    Unpublished {
        participant_id: String,
    },
    ParticipantLeft {
        participant_id: String,
    },
    /// A participant started or stopped talking (server-side audio levels).
    Talking {
        participant_id: String,
        /// True when they started.
        talking: bool,
    },
    /// The server says the media of the local publisher or of a subscription went down.
    MediaDown {
        /// What: `publisher` or a subscription id.
        what: String,
        reason: String,
    },
    /// The room ended for everyone (destroyed) or the box was removed from it.
    RoomClosed {
        /// `ended` or `kicked`.
        reason: String,
    },
    /// The signalling connection dropped; the session reconnects.
    Disconnected {
        reason: String,
    },
}

/// An offer from the server for receiving one participant's media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The backend's id for this subscription.
    pub id: String,
    /// The server's SDP offer.
    pub offer: String,
    /// The track ids (the offer's `a=msid`) of the participant's content shares: their video
    /// is a share, not a camera.
    pub share_tracks: Vec<String>,
}

/// What the local participant publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishKinds {
    /// Microphone.
    pub audio: bool,
    /// Camera.
    pub video: bool,
    /// A data channel for chat.
    pub data: bool,
    /// The `mid` of the content share's media section, when the publication has one: the
    /// room is told it is a share (Janus: a `descriptions` entry).
    pub share: Option<String>,
}

/// The signalling half of a room (see the module documentation).
///
/// Methods take `&mut self` and are called from one task. [`Signaller::next_event`] must be
/// cancel-safe: the session polls it in a `select!` beside its other work.
#[async_trait::async_trait]
pub trait Signaller: Send {
    /// The backend's name (`janus`), for logs and errors.
    fn name(&self) -> &'static str;

    /// Connects (if needed) and joins the room; creates it first when configured to.
    async fn join(&mut self, req: &JoinRequest) -> Result<Joined, RoomError>;

    /// Publishes the local participant's media: sends the local SDP offer, returns the answer.
    async fn publish(&mut self, offer: &str, kinds: PublishKinds) -> Result<String, RoomError>;

    /// Renegotiates what the local participant publishes (a track turned off or on): sends the
    /// new local offer, returns the answer. The server then tells the others which streams are
    /// off. Backends that cannot renegotiate a running publication keep the default, which
    /// refuses; the session then only stops sending.
    async fn renegotiate(&mut self, offer: &str, kinds: PublishKinds) -> Result<String, RoomError> {
        let _ = (offer, kinds);
        Err(RoomError::Unsupported("renegotiating a publication".into()))
    }

    /// Stops publishing, staying in the room.
    async fn unpublish(&mut self) -> Result<(), RoomError>;

    /// Asks for one participant's media; the server offers.
    async fn subscribe(&mut self, participant_id: &str) -> Result<Subscription, RoomError>;

    /// Sends the local answer to a subscription's offer; media starts flowing.
    async fn accept(&mut self, subscription_id: &str, answer: &str) -> Result<(), RoomError>;

    /// Who offers a subscription on this backend.
    fn subscription_offerer(&self) -> Offerer {
        Offerer::Server
    }

    /// Sends the box's receive-only `offer` for one participant's media, as the subscription
    /// the session calls `subscription_id`, and returns the server's answer
    /// ([`Offerer::Local`] backends).
    async fn subscribe_with_offer(
        &mut self,
        subscription_id: &str,
        participant_id: &str,
        offer: &str,
    ) -> Result<String, RoomError> {
        let _ = (subscription_id, participant_id, offer);
        Err(RoomError::Unsupported("offering a subscription".into()))
    }

    /// STUN and TURN servers the server named for the box's next connections.
    fn ice_servers(&self) -> Vec<IceServer> {
        Vec::new()
    }

    /// Drops a subscription.
    async fn unsubscribe(&mut self, subscription_id: &str) -> Result<(), RoomError>;

    /// Leaves the room and closes the connection.
    async fn leave(&mut self) -> Result<(), RoomError>;

    /// Ends the room's session for everyone, where the server allows it.
    async fn end_for_all(&mut self) -> Result<(), RoomError>;

    /// Starts (true) or stops server-side (cloud) recording of the room.
    async fn set_recording(&mut self, on: bool) -> Result<(), RoomError>;

    /// The next event; `None` once no connection exists (before a join, after a leave).
    async fn next_event(&mut self) -> Option<SignalEvent>;

    /// How the local participant takes part, if the backend restricts it.
    fn mode(&self, requested: Mode) -> Mode {
        requested
    }
}

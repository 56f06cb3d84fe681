//! The concept model roombox follows (VideoSDK's): Meeting/Room, Session, Participant, Stream.
//!
//! These types are what the agent's state holds, what `roombox status` prints and what the MQTT
//! state topic carries. They serialize with camelCase field names (`roomId`, `participantId`) so
//! the wire vocabulary matches the concept model exactly.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Free-form participant metadata (a JSON object), as in VideoSDK's meeting config.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The kind of a stream or track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Microphone audio.
    Audio,
    /// Camera video.
    Video,
    /// Screen share.
    Share,
}

/// One stream (track) of a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    /// Stream id, unique within the room (the room server's id, or a local one).
    pub id: String,
    /// Audio, video or share.
    pub kind: StreamKind,
    /// Codec name as negotiated (`H264`, `opus`, ...); empty until known.
    pub codec: String,
    /// Whether the sender has paused it (muted mic, camera off).
    pub paused: bool,
}

/// How a participant takes part in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Publishes camera and mic, and receives the others.
    #[default]
    SendAndReceive,
    /// Receives only; publishes nothing.
    ReceiveOnly,
    /// Signalling only: neither sends nor receives media.
    SignallingOnly,
}

/// A participant of a meeting: the local one (this box) or a remote one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// Unique id within the room.
    pub participant_id: String,
    /// Human-readable name shown to the others.
    pub display_name: String,
    /// True for this box.
    pub local: bool,
    /// Send-and-receive, receive-only or signalling-only.
    pub mode: Mode,
    /// Free-form metadata given at join.
    #[serde(default)]
    pub metadata: Metadata,
    /// Whether the participant's microphone is sending.
    pub mic_on: bool,
    /// Whether the participant's camera is sending.
    pub webcam_on: bool,
    /// Streams by stream id.
    #[serde(default)]
    pub streams: BTreeMap<String, Stream>,
}

/// The lifecycle of the connection to a meeting, with VideoSDK's state names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MeetingState {
    /// Joining, or rejoining after a fault.
    Connecting,
    /// In the room, media flowing.
    Connected,
    /// The join failed; a retry may follow.
    Failed,
    /// The connection dropped; the agent is about to rejoin.
    Disconnected,
    /// Leaving.
    Closing,
    /// Not in a room.
    #[default]
    Closed,
}

/// The lifecycle of a service the box runs or asks for: recording, livestream, HLS, transcription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceState {
    /// Asked to start; not yet producing.
    Starting,
    /// Running.
    Started,
    /// Asked to stop; finishing.
    Stopping,
    /// Not running.
    #[default]
    Stopped,
    /// Stopped by a fault (the event carries the reason).
    Failed,
}

impl ServiceState {
    /// True while the service is starting or running.
    pub fn is_active(self) -> bool {
        matches!(self, ServiceState::Starting | ServiceState::Started)
    }
}

/// Where a recording is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingTarget {
    /// Segmented files on this box's disk.
    #[default]
    Local,
    /// On the room server (cloud recording).
    Cloud,
}

/// A room (meeting) the box is in or joining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// The room (meeting) id.
    pub room_id: String,
    /// The id of this run of the room, once the server has given one.
    pub session_id: Option<String>,
}

/// A chat message in the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Sender's participant id.
    pub from: String,
    /// Sender's display name, where known.
    pub display_name: Option<String>,
    pub text: String,
    /// Milliseconds since the Unix epoch at which the box saw it.
    pub timestamp_ms: u64,
}

/// Where a message of the viewers' chat came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedSource {
    /// A participant of the room.
    Room,
    /// The box itself (its console).
    Local,
    /// A viewer of the live stream.
    Viewer,
}

/// One message of the viewers' chat: the room's chat and the viewers', in one feed with ids so
/// the room can hide one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedMessage {
    /// Unique while the agent runs.
    pub id: u64,
    /// Room, local or viewer.
    pub source: FeedSource,
    /// The sender's name (a participant's display name, or the name a viewer gave).
    pub name: String,
    pub text: String,
    /// Milliseconds since the Unix epoch at which the box saw it.
    pub timestamp_ms: u64,
    /// Hidden from viewers by the room.
    pub hidden: bool,
}

/// A viewer's question, waiting for the room to answer or dismiss it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    /// Unique while the agent runs.
    pub id: u64,
    /// The name the viewer gave.
    pub name: String,
    pub text: String,
    /// Milliseconds since the Unix epoch at which it was asked.
    pub timestamp_ms: u64,
}

/// How a question left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuestionOutcome {
    /// The room answered it.
    Answered,
    /// The room dismissed it.
    Dismissed,
}

/// A live poll of the room and its viewers: a question, its options with their counts, and
/// whether it still takes votes. Who voted is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Poll {
    /// Unique while the agent runs.
    pub id: u64,
    pub question: String,
    /// In the order given; votes name an option by its index.
    pub options: Vec<PollOption>,
    /// Still takes votes.
    pub open: bool,
    /// Milliseconds since the Unix epoch at which it opened.
    pub created_ms: u64,
    /// And closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<u64>,
}

/// One option of a [`Poll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOption {
    pub text: String,
    pub votes: u32,
}

impl Poll {
    /// The results in one line, as they go to the room's chat: `Poll: Lunch? Pizza 3, Sushi 1`.
    pub fn results(&self) -> String {
        let counts: Vec<String> = self
            .options
            .iter()
            .map(|o| format!("{} {}", o.text, o.votes))
            .collect();
        format!("Poll: {} {}", self.question, counts.join(", "))
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// An RTMP output as the concept model names it (`outputs: [{url, streamKey}]`): config's
// `[[livestream.outputs]]` and the `start-livestream` command both read one, with these checks.

/// Output names are event fields and consumer ids: short, printable, no spaces.
pub fn check_output_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "`{name}` is not a valid output name; expected 1 to 32 letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

/// A stream key. Its `Debug` and `Display` print `****`, so it cannot leak through a log line
/// by accident; the state and events never hold one (they show redacted URLs). It serializes as
/// itself, since commands that carry it travel as JSON.
#[derive(Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StreamKey(String);

impl StreamKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> StreamKey {
        StreamKey(key.into().trim().to_string())
    }

    /// The key itself, for the one place that needs it: the sink's location.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the key replaced by `****`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "****")
        }
    }
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

/// Checks an RTMP URL: `rtmp://` or `rtmps://`, a host, and an application path.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    let rest = url
        .strip_prefix("rtmp://")
        .or_else(|| url.strip_prefix("rtmps://"))
        .ok_or_else(|| format!("`{}` is not an rtmp:// or rtmps:// URL", redact_tail(url)))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{}` has no host", redact_tail(url)));
    }
    if path.trim_matches('/').is_empty() {
        return Err(format!(
            "`{}` has no application path (rtmp://host/app)",
            redact_tail(url)
        ));
    }
    Ok(())
}

/// A URL for an error message: everything after the application path hidden, since people
/// paste URLs with the key inside.
fn redact_tail(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let mut parts = rest.splitn(3, '/');
    let host = parts.next().unwrap_or("");
    let app = parts.next();
    let more = parts.next().is_some();
    let mut out = if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    };
    if let Some(app) = app {
        out.push('/');
        out.push_str(app);
    }
    if more {
        out.push_str("/****");
    }
    out
}

/// How a meeting's participants are laid out in a composed picture (VideoSDK's recording and
/// livestream layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutKind {
    /// Everyone in equal tiles.
    #[default]
    Grid,
    /// The pinned participant, the presenter or the active speaker large, the others in a strip
    /// below.
    Spotlight,
    /// The pinned participant, the presenter or the active speaker large, the others in a
    /// column on the right.
    Sidebar,
}

/// Which kind of output a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// The local recording.
    Recording,
    /// The RTMP outputs.
    Livestream,
    /// HLS.
    Hls,
}

/// What an output (the recording, an RTMP output, HLS) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputSource {
    /// The box's own camera (or program) and microphone.
    #[default]
    Room,
    /// The whole meeting: every participant in a layout, every voice mixed.
    Meeting,
}

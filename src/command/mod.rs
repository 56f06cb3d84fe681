//! Commands: every input (button, MQTT, the local control socket, timers) becomes one of these.
//!
//! A command serializes as a JSON object whose `command` field names it in kebab-case, with its
//! arguments beside it: `{"command":"join","roomId":"abc","mic":false}`. The MQTT API puts the
//! name in the topic (`cmd/join`) and the arguments in the payload; [`Command::from_parts`] joins
//! the two.
//!
//! Layer 1 of docs/architecture.md: it imports only `model`, so that `config` can read a
//! button's action as a command; every layer above may import it.

use crate::model::{Metadata, Mode, RecordingTarget};
use serde::{Deserialize, Serialize};
use std::fmt;

mod update;
mod validate;
mod viewers;
pub use update::UpdateManifest;
pub use viewers::{
    MAX_POLL_OPTION, MAX_POLL_OPTIONS, MAX_POLL_QUESTION, MAX_VIEWER_NAME, MAX_VIEWER_TEXT,
    MIN_POLL_OPTIONS,
};

/// Largest accepted encoded command, in bytes. Larger payloads are refused unread.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Join a room as the local participant. Absent fields take the config's values.
    #[serde(rename_all = "camelCase")]
    Join {
        /// Room to join; the configured room when absent.
        #[serde(default)]
        room_id: Option<String>,
        /// Display name; the configured one when absent.
        #[serde(default)]
        display_name: Option<String>,
        /// Metadata shown to the others.
        #[serde(default)]
        metadata: Option<Metadata>,
        /// Microphone on at join.
        #[serde(default)]
        mic: Option<bool>,
        /// Camera on at join.
        #[serde(default)]
        webcam: Option<bool>,
        /// Send-and-receive or receive-only.
        #[serde(default)]
        mode: Option<Mode>,
    },
    /// Leave the room; the session goes on for the others.
    Leave,
    /// End the session for everyone, where the server allows it.
    End,
    /// Join when out of a room, leave when in one (the join button's short press).
    ToggleJoin,
    /// Turn the microphone on.
    EnableMic,
    /// Turn the microphone off: no audio leaves the box.
    DisableMic,
    /// Flip the microphone.
    ToggleMic,
    /// Turn the camera on.
    EnableWebcam,
    /// Turn the camera off: no video leaves the box.
    DisableWebcam,
    /// Flip the camera.
    ToggleWebcam,
    /// Start the content share (`[media.share]`): a second video beside the camera, which keeps
    /// running.
    StartShare,
    /// Stop the content share.
    StopShare,
    /// Start the share when it is off, stop it when it is on (a button's press).
    ToggleShare,
    /// Send a chat message to the room.
    #[serde(rename_all = "camelCase")]
    SendChat {
        message: String,
        /// A participant id for a private message; everyone when absent.
        #[serde(default)]
        to: Option<String>,
    },
    /// Start recording, locally or on the room server.
    StartRecording {
        /// Local (default) or cloud.
        #[serde(default)]
        target: RecordingTarget,
    },
    StopRecording {
        /// Local (default) or cloud.
        #[serde(default)]
        target: RecordingTarget,
    },
    /// Start an RTMP simulcast to the given outputs (the configured ones when empty). Outputs
    /// already streaming are refused by name; the others are added.
    StartLivestream {
        /// Where to send.
        #[serde(default)]
        outputs: Vec<LivestreamOutput>,
    },
    /// Stop the RTMP simulcast: every output, or only the one named.
    StopLivestream {
        /// One output's name; all of them when absent.
        #[serde(default)]
        name: Option<String>,
    },
    /// Start serving HLS.
    StartHls,
    /// Stop serving HLS.
    StopHls,
    /// Start realtime transcription.
    StartTranscription {
        /// Language code (`en-US`); the configured one when absent.
        #[serde(default)]
        language: Option<String>,
    },
    /// Stop realtime transcription.
    StopTranscription,
    /// Transcribe a local recording: one segment (`file`, its name in the recording directory),
    /// or every segment written between `from` and `to` (ms since the epoch; either may be
    /// absent). Writes `.vtt` and `.srt` beside each segment.
    TranscribeRecording {
        /// A segment's file name (`roombox-2026-11-23T20-31-05Z-0003.mkv`).
        #[serde(default)]
        file: Option<String>,
        /// Segments that end at or after this time, ms since the epoch.
        #[serde(default)]
        from: Option<u64>,
        /// Segments that start at or before this time, ms since the epoch.
        #[serde(default)]
        to: Option<u64>,
    },
    /// Ask the encoder for a keyframe now.
    RequestKeyframe,
    /// Change the video bitrate while running.
    SetBitrate {
        /// Kilobits per second.
        kbps: u32,
    },
    /// Pin a remote participant to the meeting feed's focus (the large tile of spotlight and
    /// sidebar; always shown in a grid); without `participantId`, unpin.
    #[serde(rename_all = "camelCase")]
    Pin {
        #[serde(default)]
        participant_id: Option<String>,
    },
    /// What an output carries from now on: the room's own picture and sound, or the whole
    /// meeting. A running output switches without stopping (a new segment, or a
    /// discontinuity, where the picture's format changes); one not running starts with it.
    SetOutputSource {
        /// `recording`, `livestream` or `hls`.
        output: crate::model::OutputKind,
        /// For `livestream`: the RTMP output (every one when absent).
        #[serde(default)]
        name: Option<String>,
        source: crate::model::OutputSource,
    },
    /// Set the speaker's volume (the room's far end as the box plays it). The echo canceller's
    /// reference is taken after the volume, so a change does not disturb it.
    SetVolume {
        /// 0 (silent) to 100 (as received).
        percent: u32,
    },
    /// Reply with the full agent state.
    GetState,
    /// Reply at once; for liveness and round-trip checks.
    Ping,
    /// Blink the LEDs so a person can find the box.
    Identify {
        /// For how long, in seconds.
        #[serde(default = "default_identify_seconds")]
        seconds: u32,
    },
    /// Reload the configuration from disk (as SIGHUP does).
    ReloadConfig,
    /// Restart the media pipeline (capture and encode) without restarting the agent.
    RestartMedia,
    /// Stop the agent cleanly: recordings are finalised; systemd restarts it if so configured.
    Restart,
    /// A viewer of the live stream writes in the viewers' chat; it is relayed into the room as
    /// `viewer: <name>: <message>`. The web server builds it from the viewers' page.
    ViewerChat {
        /// The name the viewer gave.
        name: String,
        message: String,
    },
    /// A viewer asks the room a question; it waits in the console's queue.
    AskQuestion {
        /// The name the viewer gave.
        name: String,
        text: String,
    },
    /// The room answered a viewer's question: it leaves the queue.
    AnswerQuestion {
        /// The question's id.
        id: u64,
    },
    /// The room dismissed a viewer's question: it leaves the queue.
    DismissQuestion {
        /// The question's id.
        id: u64,
    },
    /// Hide a message of the viewers' chat from the viewers.
    HideMessage {
        /// The message's id.
        id: u64,
    },
    /// Open a live poll for the room and its viewers: a question and 2 to 6 distinct options.
    /// One poll is open at a time.
    CreatePoll {
        question: String,
        options: Vec<String>,
    },
    /// Close the open poll: its results become an event and go to the room's chat.
    ClosePoll {
        /// The poll's id.
        id: u64,
    },
    /// A vote in the open poll, once per name (the viewers' page sends it; a viewer's token
    /// can send nothing else of the poll's).
    #[serde(rename_all = "camelCase")]
    Vote {
        /// The poll's id.
        poll_id: u64,
        /// The option's index, from 0.
        option: usize,
        /// The name the viewer gave.
        name: String,
    },
    /// Read the room's calendar now, not at the next poll.
    CalendarRefresh,
    /// Join the room of one of today's meetings (from its join window to its end).
    #[serde(rename_all = "camelCase")]
    JoinMeeting {
        /// The meeting's `id` in the state's calendar.
        event_id: String,
    },
    /// Book the room from now, while it is free: 15, 30 or 60 minutes, up to the next meeting.
    BookNow {
        /// 15, 30 or 60.
        minutes: u32,
    },
    /// Install a signed software update: download it (resuming), check its size, hash and
    /// signature, wait until the room is idle or in a maintenance window (unless `force`), then
    /// install it; progress comes as `update-state-changed` events.
    Update {
        /// What to install, signed by the fleet key.
        manifest: UpdateManifest,
        /// Install even while the room is busy, and reinstall the running version.
        #[serde(default)]
        force: bool,
    },
}

fn default_identify_seconds() -> u32 {
    10
}

/// One RTMP output of a livestream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LivestreamOutput {
    /// A name for events and status, unique on the box; `output-N` when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// `rtmp://host[:port]/app`, without the key.
    pub url: String,
    /// The stream key appended to the URL. It never appears in a log, event or status.
    #[serde(default)]
    pub stream_key: crate::model::StreamKey,
}

/// Stable error codes of command replies; the MQTT API documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The payload is not valid JSON, or not an object.
    BadJson,
    /// No such command.
    UnknownCommand,
    /// A field is missing, unknown or of the wrong type.
    InvalidArgument,
    /// A value is outside its allowed range.
    OutOfRange,
    /// The payload exceeds [`MAX_COMMAND_BYTES`].
    PayloadTooLarge,
    /// The command does not apply in the current state (e.g. leave while not in a room).
    InvalidState,
    /// The feature is not configured or not available on this box.
    Unavailable,
    /// The command's signature, timestamp or nonce was refused.
    Unauthorized,
    /// The agent could not carry it out.
    Internal,
}

/// Why a command was refused. Refused commands change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct CommandError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// What was wrong, for a person.
    pub message: String,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
        }
    }
}

impl Command {
    /// The command's kebab-case name, as used in MQTT topics.
    pub fn name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m
                .get("command")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    }

    /// Decodes a complete JSON command (`{"command": "...", ...}`) and checks its ranges.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        if bytes.len() > MAX_COMMAND_BYTES {
            return Err(CommandError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "payload is {} bytes; the limit is {MAX_COMMAND_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| CommandError::new(ErrorCode::BadJson, format!("not JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(CommandError::new(
                ErrorCode::BadJson,
                "a command is a JSON object",
            ));
        };
        let name = match map.get("command") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(CommandError::new(
                    ErrorCode::InvalidArgument,
                    "`command` must be a string",
                ))
            }
            None => {
                return Err(CommandError::new(
                    ErrorCode::InvalidArgument,
                    "missing field `command`",
                ))
            }
        };
        Self::from_map(&name, map)
    }

    /// Builds a command from its name (an MQTT topic's last level) and a JSON payload of its
    /// arguments. An empty payload means no arguments.
    pub fn from_parts(name: &str, payload: &[u8]) -> Result<Command, CommandError> {
        if payload.len() > MAX_COMMAND_BYTES {
            return Err(CommandError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "payload is {} bytes; the limit is {MAX_COMMAND_BYTES}",
                    payload.len()
                ),
            ));
        }
        let map = if payload.iter().all(|b| b.is_ascii_whitespace()) {
            serde_json::Map::new()
        } else {
            match serde_json::from_slice::<serde_json::Value>(payload) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => {
                    return Err(CommandError::new(
                        ErrorCode::BadJson,
                        "the payload must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(CommandError::new(
                        ErrorCode::BadJson,
                        format!("not JSON: {e}"),
                    ))
                }
            }
        };
        if let Some(other) = map.get("command").and_then(|v| v.as_str()) {
            if other != name {
                return Err(CommandError::new(
                    ErrorCode::InvalidArgument,
                    format!("payload names command `{other}` but the topic names `{name}`"),
                ));
            }
        }
        Self::from_map(name, map)
    }

    fn from_map(
        name: &str,
        mut map: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Command, CommandError> {
        if !Self::NAMES.contains(&name) {
            return Err(CommandError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `{name}`"),
            ));
        }
        map.insert(
            "command".into(),
            serde_json::Value::String(name.to_string()),
        );
        let keys: Vec<String> = map.keys().cloned().collect();
        let cmd: Command = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| CommandError::new(ErrorCode::InvalidArgument, format!("{name}: {e}")))?;
        // serde ignores `deny_unknown_fields` for unit variants of a tagged enum: compare with the
        // keys the command itself has (every field serializes, `None` as null).
        if let Ok(serde_json::Value::Object(known)) = serde_json::to_value(&cmd) {
            if let Some(extra) = keys.iter().find(|k| !known.contains_key(*k)) {
                return Err(CommandError::new(
                    ErrorCode::InvalidArgument,
                    format!("{name}: unknown field `{extra}`"),
                ));
            }
        }
        cmd.validate()?;
        Ok(cmd)
    }

    /// Every command name, as used in topics and the `command` field.
    pub const NAMES: &'static [&'static str] = &[
        "join",
        "leave",
        "end",
        "toggle-join",
        "enable-mic",
        "disable-mic",
        "toggle-mic",
        "enable-webcam",
        "disable-webcam",
        "toggle-webcam",
        "start-share",
        "stop-share",
        "toggle-share",
        "send-chat",
        "start-recording",
        "stop-recording",
        "start-livestream",
        "stop-livestream",
        "start-hls",
        "stop-hls",
        "start-transcription",
        "stop-transcription",
        "transcribe-recording",
        "request-keyframe",
        "set-bitrate",
        "set-volume",
        "pin",
        "set-output-source",
        "get-state",
        "ping",
        "identify",
        "reload-config",
        "restart-media",
        "restart",
        "viewer-chat",
        "ask-question",
        "answer-question",
        "dismiss-question",
        "hide-message",
        "create-poll",
        "close-poll",
        "vote",
        "calendar-refresh",
        "join-meeting",
        "book-now",
        "update",
    ];
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests;

//! Events: every change of the agent's state, broadcast to the outputs (LEDs, MQTT, logs).
//!
//! An event serializes as a JSON object whose `event` field names it in kebab-case, with the
//! names of the concept model: `{"event":"meeting-state-changed","state":"CONNECTED"}`.

use crate::model::{
    ChatMessage, FeedMessage, MeetingState, Participant, Poll, Question, QuestionOutcome,
    RecordingTarget, ServiceState, StreamKind,
};
use serde::{Deserialize, Serialize};

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The local participant is in the room.
    #[serde(rename_all = "camelCase")]
    MeetingJoined {
        room_id: String,
        /// The session (one run of the room).
        session_id: Option<String>,
        /// The local participant's id.
        participant_id: String,
    },
    /// The local participant left the room.
    #[serde(rename_all = "camelCase")]
    MeetingLeft {
        room_id: String,
        /// Why: `left`, `ended`, `kicked`, `shutdown`, ...
        reason: String,
    },
    /// The connection to the meeting changed state.
    MeetingStateChanged { state: MeetingState },
    /// A remote participant joined.
    ParticipantJoined { participant: Participant },
    /// A remote participant left.
    #[serde(rename_all = "camelCase")]
    ParticipantLeft { participant_id: String },
    /// A participant's stream started (for the local participant: mic or camera turned on).
    #[serde(rename_all = "camelCase")]
    StreamEnabled {
        participant_id: String,
        kind: StreamKind,
        /// The stream's id.
        stream_id: String,
    },
    /// A participant's stream stopped (for the local participant: mic muted or camera off).
    #[serde(rename_all = "camelCase")]
    StreamDisabled {
        participant_id: String,
        kind: StreamKind,
        /// The stream's id.
        stream_id: String,
    },
    /// The active speaker changed (none when nobody speaks).
    #[serde(rename_all = "camelCase")]
    SpeakerChanged {
        /// The speaker's participant id.
        participant_id: Option<String>,
    },
    /// A participant was pinned to (true) or unpinned from (false) the meeting feed's focus.
    #[serde(rename_all = "camelCase")]
    PinStateChanged {
        participant_id: String,
        pinned: bool,
    },
    /// What an output carries changed (`set-output-source`); `name` is the RTMP output's.
    /// Also when an output that asked for the meeting runs while the box is in no room
    /// (`carries` = room: the box's own picture and sound), and when the box then joins or
    /// leaves one.
    #[serde(rename_all = "camelCase")]
    OutputSourceChanged {
        output: crate::model::OutputKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// What it asked for.
        source: crate::model::OutputSource,
        /// What it carries now: the meeting only while the box is in a room.
        carries: crate::model::OutputSource,
    },
    /// The presenter changed: who shares content now (one presenter at a time), none when
    /// nobody does. The box's own share names the box's participant id.
    #[serde(rename_all = "camelCase")]
    PresenterChanged {
        /// The presenter's participant id.
        participant_id: Option<String>,
    },
    /// The box's share was stopped or refused by the one-presenter rule (another participant
    /// presents); `presenterChanged` follows where the presenter changed.
    #[serde(rename_all = "camelCase")]
    ShareRefused {
        /// Who presents instead.
        participant_id: String,
        /// `stopped` (the box's share ended) or `refused` (it was not started).
        outcome: String,
    },
    /// A chat message arrived in the room.
    ChatMessage { message: ChatMessage },
    RecordingStateChanged {
        /// Local or cloud.
        target: RecordingTarget,
        state: ServiceState,
        /// Why, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A local recording segment was closed and is complete on disk.
    #[serde(rename_all = "camelCase")]
    RecordingSegmentClosed {
        path: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// An RTMP output changed state (simulcast or fallback).
    LivestreamStateChanged {
        state: ServiceState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        /// Its URL, with the stream key shown as `****`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// Why: the failure, or what made the fallback switch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// HLS serving changed state.
    #[serde(rename_all = "camelCase")]
    HlsStateChanged {
        state: ServiceState,
        /// Where to play it, once started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playback_url: Option<String>,
        /// Why, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    TranscriptionStateChanged {
        state: ServiceState,
        /// The language transcribed, while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// Why, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Transcribed text: one caption of one participant's utterance.
    #[serde(rename_all = "camelCase")]
    TranscriptionText {
        /// Who spoke, where known.
        participant_id: Option<String>,
        #[serde(default)]
        participant_name: String,
        text: String,
        /// Milliseconds since the epoch when the caption was made.
        timestamp_ms: u64,
        /// Wall clock of the utterance's start, ms since the epoch.
        #[serde(default)]
        start_ms: u64,
        /// Wall clock of its end, ms since the epoch.
        #[serde(default)]
        end_ms: u64,
        /// Its start from the start of the transcription session (the transcript file's 0).
        #[serde(default)]
        meeting_start_ms: u64,
        /// Its end from the start of the transcription session.
        #[serde(default)]
        meeting_end_ms: u64,
        /// True: this text will not be revised (every caption today is final).
        #[serde(default, rename = "final")]
        is_final: bool,
    },
    /// Audio was not transcribed: the engine fell behind by more than `max_backlog`, and the
    /// oldest utterances waiting were dropped so captions stay current.
    #[serde(rename_all = "camelCase")]
    TranscriptionDropped {
        participant_id: String,
        /// How much audio, ms.
        audio_ms: u64,
    },
    /// Progress of a recording's transcription (`transcribe-recording`, `post_on_stop`).
    #[serde(rename_all = "camelCase")]
    TranscriptionProgress {
        /// The recording's first segment.
        recording: String,
        /// Audio transcribed so far, ms.
        done_ms: u64,
        /// The recording's length, ms.
        total_ms: u64,
        /// STARTED while it runs, STOPPED when the files are written, FAILED with `reason`.
        state: ServiceState,
        /// The WebVTT file, once written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vtt: Option<String>,
        /// The SRT file, once written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        srt: Option<String>,
        /// Why, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The encoder could not keep up and the frame rate stepped down (`reason` `cpu`), or it
    /// stepped back up (`none` at the full rate). The names follow WebRTC's
    /// `qualityLimitationReason`.
    #[serde(rename_all = "camelCase")]
    QualityLimitationChanged {
        /// `cpu` while limited, `none` at the full rate.
        reason: String,
        /// Frames per second now sent.
        fps: u32,
        /// The configured rate.
        full_fps: u32,
    },
    /// The media pipeline changed state.
    MediaStateChanged {
        state: MediaState,
        /// The H.264 encoder in use.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoder: Option<String>,
    },
    /// The box was asked to show itself; LEDs blink for this long.
    Identify { seconds: u32 },
    /// The configuration was reloaded.
    ConfigReloaded,
    /// A message in the viewers' chat: the room's chat, the box's own, or a viewer's.
    FeedMessage { message: FeedMessage },
    /// The room hid a message of the viewers' chat.
    FeedMessageHidden {
        /// The message's id.
        id: u64,
    },
    /// A viewer asked a question; it waits in the console's queue.
    QuestionAsked { question: Question },
    /// A question left the queue.
    QuestionClosed {
        /// The question's id.
        id: u64,
        /// Answered or dismissed.
        outcome: QuestionOutcome,
    },
    /// The room opened a poll.
    PollCreated { poll: Poll },
    /// A vote was counted: the poll with its new counts.
    PollUpdated { poll: Poll },
    /// The poll closed: its results.
    PollClosed { poll: Poll },
    /// The room's calendar was read and today's meetings changed (or it could not be read:
    /// `error`, and the last good day stands).
    #[serde(rename_all = "camelCase")]
    CalendarUpdated {
        /// How many meetings today and tomorrow.
        meetings: usize,
        /// The next meeting to start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<MeetingSummary>,
        /// Why the calendar could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A meeting's join window opened (`calendar.join_before` ahead of its start).
    MeetingStartingSoon { meeting: MeetingSummary },
    /// A booking nobody came to was given back: declined for the room on the server, or
    /// deleted if this box made it.
    BookingReleased {
        meeting: MeetingSummary,
        /// Why: `no-show`.
        reason: String,
    },
    /// A software update moved on: DOWNLOADING (with `percent`), VERIFYING, WAITING (with
    /// what the room is busy with in `reason`), INSTALLING, RESTARTING, HEALTHY, ROLLED_BACK or
    /// FAILED (with `reason`).
    UpdateStateChanged {
        state: UpdatePhase,
        /// The version being installed.
        version: String,
        /// Download progress, 0 to 100, while DOWNLOADING.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<u8>,
        /// Why: a failure, a rollback, or what an update waits for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Something went wrong; the agent carries on.
    Error {
        /// Stable code: `media`, `recording`, `room`, `fleet`, `controls`, `config`, `calendar`.
        code: String,
        message: String,
    },
}

/// A meeting of the room's calendar, as events name it: never its description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeetingSummary {
    /// The meeting's id in the state's calendar (for `join-meeting`).
    pub id: String,
    /// Its title, or "Private meeting".
    pub title: String,
    /// ms since the epoch.
    pub start_ms: u64,
    /// ms since the epoch.
    pub end_ms: u64,
    /// The room the box would join for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

/// The media pipeline's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaState {
    /// Not started.
    #[default]
    Stopped,
    /// Building and starting the pipeline.
    Starting,
    /// Capturing and encoding.
    Playing,
    /// Failed; a restart follows after a backoff.
    Restarting,
}

/// Where a software update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdatePhase {
    /// No update asked for since start-up.
    #[default]
    Idle,
    /// Fetching the package (resuming what an earlier attempt left).
    Downloading,
    /// Checking its size and SHA-256.
    Verifying,
    /// Verified; waiting for the room to be idle or a maintenance window.
    Waiting,
    /// Handed to the root installer (`roombox-update.service`).
    Installing,
    /// The package is installed and the agent restarts into it.
    Restarting,
    /// The new version proved healthy and the update is committed.
    Healthy,
    /// The new version did not prove healthy; the previous package is back.
    RolledBack,
    /// The update stopped; nothing was installed.
    Failed,
}

impl UpdatePhase {
    /// True from the download to the restart: another update is refused meanwhile.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            UpdatePhase::Downloading
                | UpdatePhase::Verifying
                | UpdatePhase::Waiting
                | UpdatePhase::Installing
                | UpdatePhase::Restarting
        )
    }
}

impl Event {
    /// `stream-enabled` or `stream-disabled` for one participant's stream.
    pub fn stream(
        enabled: bool,
        participant_id: String,
        kind: StreamKind,
        stream_id: String,
    ) -> Event {
        if enabled {
            Event::StreamEnabled {
                participant_id,
                kind,
                stream_id,
            }
        } else {
            Event::StreamDisabled {
                participant_id,
                kind,
                stream_id,
            }
        }
    }

    /// The kebab-case name, as in the `event` field.
    pub fn name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m
                .get("event")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_use_the_concept_model_names() {
        let e = Event::MeetingStateChanged {
            state: MeetingState::Connected,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"meeting-state-changed","state":"CONNECTED"}"#
        );
        let e = Event::RecordingStateChanged {
            target: RecordingTarget::Local,
            state: ServiceState::Failed,
            reason: Some("disk full".into()),
        };
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.name(), "recording-state-changed");
    }
}

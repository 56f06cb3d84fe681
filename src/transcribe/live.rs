//! What the agent's pure state and the live transcriber say to each other: actions the state
//! asks for, and notices the transcriber reports back. The transcriber itself, which does the
//! I/O (the engine's thread, the speech taps, the transcript files), is in `service.rs`.

use super::transcript::Caption;
use crate::model::ServiceState;
use std::time::{Duration, SystemTime};

/// What the state asks of the live transcriber.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscriptionAction {
    /// Start with the engine the agent just loaded: tap the local mic (attributed to
    /// `local_id`) and the room's remote participants.
    Start {
        /// The language loaded.
        language: String,
        /// The local participant's id, which the mic's speech is attributed to.
        local_id: String,
        /// Whether the box has a mic to tap (a box without one transcribes the room only).
        mic: bool,
    },
    /// Stop: untap, let the engine finish the utterance in hand, close the transcript.
    Stop,
    /// Add a caption to the running transcript.
    Append(Caption),
    /// Transcribe these recording segments (queued, resumed after a restart).
    TranscribeFiles(Vec<std::path::PathBuf>),
}

/// What the live transcriber (and a recording's transcription) reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscriptionNotice {
    /// Running; the transcript file (name only) it writes.
    Started {
        /// The WebVTT file's name.
        transcript: Option<String>,
    },
    /// An utterance's text.
    Text {
        /// Who spoke.
        participant_id: String,
        /// Wall clock of its first sample.
        started_at: SystemTime,
        /// Its start from the session's start.
        offset: Duration,
        /// Its length.
        duration: Duration,
        /// The words.
        text: String,
    },
    /// Audio dropped untranscribed: the engine was more than `max_backlog` behind.
    Dropped {
        participant_id: String,
        /// How much.
        audio: Duration,
    },
    /// The transcriber failed; it stops.
    Failed(String),
    /// One utterance could not be transcribed; the transcriber goes on.
    Error(String),
    /// It stopped after [`TranscriptionAction::Stop`].
    Stopped,
    /// A recording's transcription moved on.
    Progress {
        /// The recording's first segment (its name).
        recording: String,
        /// Audio done.
        done: Duration,
        /// Audio in all.
        total: Duration,
        /// STARTED while it runs; STOPPED once written; FAILED.
        state: ServiceState,
        /// The WebVTT file, once written.
        vtt: Option<String>,
        /// The SRT file, once written.
        srt: Option<String>,
        /// Why it failed.
        reason: Option<String>,
    },
}

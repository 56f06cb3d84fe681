//! What the state machine answers with: the [`Effect`]s the agent loop carries out, the
//! [`Reply`] to a command (now, or [`Reply::Later`] under a [`Token`] once I/O is done), and the
//! [`IoNotice`]s that bring that I/O's results back.

use super::{EngineLoadFailed, HostUnresolved};
use crate::command::{CommandError, ErrorCode};
use crate::event::Event;
use crate::media::MediaAction;
use crate::room::RoomAction;
use std::path::PathBuf;

/// Names a deferred reply: the I/O effect carries it, the [`IoNotice`] brings it back, and the
/// agent loop keeps the requester's reply under it meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub(super) u64);

impl Token {
    /// The number under it, for a task outside the machine to name the request by.
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// Something the agent loop must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the media engine.
    Media(MediaAction),
    /// Ask the room session.
    Room(RoomAction),
    /// Ask the live transcriber or the recordings' transcription queue.
    Transcription(crate::transcribe::live::TranscriptionAction),
    /// Broadcast an event.
    Emit(Event),
    /// Re-read the configuration from disk and apply it.
    ReloadConfig,
    /// Drain and exit.
    Shutdown,
    /// Ask the update I/O; it answers with [`IoNotice::Update`].
    Update(super::UpdateAction),
    /// Ask the calendar task.
    Calendar(crate::calendar::CalendarAction),
    /// Write a book-now booking; answered by [`IoNotice::CalendarBooked`].
    BookMeeting {
        token: Token,
        booking: crate::calendar::source::Booking,
    },
    /// Resolve the hosts of these RTMP URLs, in order, stopping at the first that does not
    /// resolve; answered by [`IoNotice::HostsResolved`].
    ResolveHosts {
        /// The reply waiting for it.
        token: Token,
        /// The outputs' URLs (no stream key).
        urls: Vec<String>,
    },
    /// Load the speech engine for `language` (a large model: off the loop's thread);
    /// answered by [`IoNotice::SpeechEngineLoaded`]. The loop keeps the engine for the
    /// [`crate::transcribe::live::TranscriptionAction::Start`] that follows.
    LoadSpeechEngine {
        /// The reply waiting for it.
        token: Token,
        /// The primary language subtag (`en`).
        language: String,
    },
    /// List a recording's segments on disk; answered by [`IoNotice::SegmentsFound`].
    FindSegments {
        /// The reply waiting for it.
        token: Token,
        /// The recording directory.
        dir: PathBuf,
        /// A segment of the recording (its name), or the newest recording.
        file: Option<String>,
        /// Only segments from this time, ms since the epoch.
        from: Option<u64>,
        /// Only segments up to this time, ms since the epoch.
        to: Option<u64>,
        /// A recording runs: its newest segment is still being written and is left out.
        skip_newest: bool,
    },
}

/// The results of I/O the machine asked for with an [`Effect`].
#[derive(Debug, Clone, PartialEq)]
pub enum IoNotice {
    /// For [`Effect::ResolveHosts`].
    HostsResolved {
        /// As asked.
        token: Token,
        /// The first URL whose host did not resolve, if any.
        result: Result<(), HostUnresolved>,
    },
    /// For [`Effect::LoadSpeechEngine`]: the engine's description (`whisper.cpp tiny.en`).
    SpeechEngineLoaded {
        /// As asked.
        token: Token,
        /// The engine's description, or why it could not be loaded.
        result: Result<String, EngineLoadFailed>,
    },
    /// For [`Effect::FindSegments`].
    SegmentsFound {
        /// As asked.
        token: Token,
        /// The segments, oldest first, or why there are none to transcribe.
        result: Result<Vec<PathBuf>, String>,
    },
    /// The live transcriber runs and takes the local mic's speech here; no reply waits for it.
    TranscriberStarted(crate::media::pcm::PcmSender),
    /// For [`Effect::BookMeeting`].
    CalendarBooked {
        token: Token,
        result: Result<(), crate::calendar::BookFailed>,
        /// How long the booking is.
        minutes: u64,
    },
    /// The update I/O's progress and outcomes; no reply waits for them.
    Update(super::UpdateNotice),
}

impl IoNotice {
    /// The deferred reply this result completes, if any.
    pub fn token(&self) -> Option<Token> {
        match self {
            IoNotice::HostsResolved { token, .. }
            | IoNotice::SpeechEngineLoaded { token, .. }
            | IoNotice::SegmentsFound { token, .. }
            | IoNotice::CalendarBooked { token, .. } => Some(*token),
            IoNotice::TranscriberStarted(_) | IoNotice::Update(_) => None,
        }
    }
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Answered now.
    Now(Result<serde_json::Value, CommandError>),
    /// Answered once the I/O asked for under this token is done: the answer is the reply of
    /// [`super::StateMachine::io_notice`] for it.
    Later(Token),
}

impl Reply {
    /// True for an answer given now that is not an error.
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Now(Ok(_)))
    }

    /// The answer given now; panics on a deferred one.
    #[cfg(test)]
    pub fn result(self) -> Result<serde_json::Value, CommandError> {
        match self {
            Reply::Now(r) => r,
            Reply::Later(t) => panic!("the reply is deferred under {t:?}"),
        }
    }

    /// The error given now; panics otherwise.
    #[cfg(test)]
    pub fn unwrap_err(self) -> CommandError {
        match self.result() {
            Err(e) => e,
            Ok(v) => panic!("not an error: {v}"),
        }
    }
}

/// The outcome of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The reply to whoever sent the command.
    pub reply: Reply,
    /// What to do.
    pub effects: Vec<Effect>,
}

impl Step {
    pub(super) fn ok(effects: Vec<Effect>) -> Step {
        Step::reply(Ok(serde_json::json!({"ok": true})), effects)
    }
    pub(super) fn reply(
        reply: Result<serde_json::Value, CommandError>,
        effects: Vec<Effect>,
    ) -> Step {
        Step {
            reply: Reply::Now(reply),
            effects,
        }
    }
    pub(super) fn err(code: ErrorCode, message: impl Into<String>) -> Step {
        Step::refuse(CommandError::new(code, message))
    }
    pub(super) fn refuse(e: CommandError) -> Step {
        Step::reply(Err(e), Vec::new())
    }
    pub(super) fn later(token: Token, effects: Vec<Effect>) -> Step {
        Step {
            reply: Reply::Later(token),
            effects,
        }
    }
}

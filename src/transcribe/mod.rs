//! On-device speech to text: live captions for every voice in the meeting, and transcripts of
//! recordings, with no cloud.
//!
//! The pieces, each behind a small seam so the state and the text handling are tested without a
//! model:
//! - a [`Transcriber`] turns one utterance (16 kHz mono PCM) into timed text;
//! - voice activity detection cuts a source's audio into utterances, so silence is never
//!   transcribed;
//! - one bounded worker, at the lowest CPU priority, runs the engine for every source; when it
//!   cannot keep up, the oldest audio is dropped and said so, and capture and the call never wait
//!   on it;
//! - the agent attributes each text to its participant and writes the running transcript.
//!
//! Layer 6 of docs/architecture.md: it takes PCM from `media` and knows nothing of rooms or
//! the agent; the agent, `check` and `http` (transcripts) import it.

pub mod live;
pub mod model;
pub mod transcript;

use std::time::{Duration, SystemTime};

/// The rate every engine here listens at (Whisper's).
pub const SAMPLE_RATE: u32 = 16_000;

/// A piece of text from one utterance; times are from the utterance's first sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Where the piece starts in the utterance.
    pub start: Duration,
    /// Where it ends.
    pub end: Duration,
    /// The words, trimmed.
    pub text: String,
}

/// Whose voice an utterance is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Speaker {
    /// The participant's id (the local participant's for the box's own microphone).
    pub participant_id: String,
    /// Their display name, as the room gave it.
    pub name: String,
}

/// One utterance, cut from one speaker's audio, waiting to be transcribed.
#[derive(Debug, Clone)]
pub struct Utterance {
    /// Who spoke.
    pub speaker: Speaker,
    /// Wall-clock time of the first sample.
    pub started_at: SystemTime,
    /// Time of the first sample from the start of the transcription session (meeting-relative).
    pub offset: Duration,
    /// Mono samples at [`SAMPLE_RATE`], in -1..1.
    pub pcm: Vec<f32>,
}

impl Utterance {
    /// How long the utterance lasts.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.pcm.len() as f64 / f64::from(SAMPLE_RATE))
    }
}

/// Why an engine could not be loaded or could not transcribe.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranscribeError {
    /// The model file is missing, unreadable or not a model.
    #[error("the model {path} cannot be used: {reason}")]
    Model {
        /// The model's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The engine does not know the language asked for.
    #[error("unknown language {0:?}")]
    Language(String),
    /// The engine failed on an utterance.
    #[error("transcription failed: {0}")]
    Engine(String),
}

/// A speech-to-text engine. It blocks, so it runs on the transcription worker's own thread.
pub trait Transcriber: Send {
    /// The engine's name and model, for logs and `roombox status` (`whisper.cpp tiny.en`).
    fn describe(&self) -> String;
    /// Transcribes one utterance of mono samples at [`SAMPLE_RATE`].
    fn transcribe(&mut self, pcm: &[f32]) -> Result<Vec<Piece>, TranscribeError>;
    /// Transcribes an utterance that follows `context`, the same speaker's last words, which an
    /// engine that can takes as its prompt (Whisper decodes a short utterance far better
    /// knowing what came before). The default ignores it.
    fn transcribe_after(
        &mut self,
        pcm: &[f32],
        context: &str,
    ) -> Result<Vec<Piece>, TranscribeError> {
        let _ = context;
        self.transcribe(pcm)
    }
}

pub mod gate;
pub mod ggml;
pub mod linear;
pub mod post;
pub mod repeat;
pub mod service;
pub mod stretch;
pub mod vad;
pub mod wav;
pub mod whisper;
pub mod worker;

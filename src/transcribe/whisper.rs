//! The Whisper engine: whisper.cpp 1.8.3 through `whisper-rs`.
//!
//! Why whisper.cpp and not CTranslate2: it builds in under two minutes of CPU against CTranslate2's
//! seventeen, runs on Pi and Jetson (CUDA there) from one vendored source, and is as accurate on
//! our clips (docs/transcription.md has the measurements).
//!
//! Each utterance is decoded with whisper.cpp's own state cleared (`no_context`), so speakers
//! never prime each other through it; the caller passes the same speaker's recent words as the
//! prompt instead ([`Transcriber::transcribe_after`]). Decoding is guarded as offline Whisper's
//! is: whisper.cpp's temperature fallback on low entropy or a low average log-probability, its
//! no-speech check, and, on top, a second decode at a higher temperature (without the prompt)
//! when the text compresses like a loop or repeats a clause (`repeat.rs`).
//!
//! Live, the encoder's window is shrunk to the utterance (`audio_ctx`), which is what makes short
//! utterances cheap: whisper.cpp otherwise encodes a full 30 s window for every one. Offline
//! ([`Whisper::set_offline`]), a recording's stretch of speech is decoded as offline Whisper does:
//! full 30 s windows, each conditioned on the text before it, beam search of 5.

use std::path::Path;
use std::sync::Once;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::{ggml, repeat, Piece, TranscribeError, Transcriber, SAMPLE_RATE};

/// Encoder frames per second of audio: Whisper's 30 s window is 1500 frames.
const FRAMES_PER_SECOND: usize = 50;
/// The full window, in encoder frames.
const FULL_CTX: usize = 1500;
/// Frames added after the utterance's own, and the smallest window used: whisper.cpp lost words
/// at the end of an utterance whose window ended with it, and very short windows hallucinate.
const CTX_MARGIN: usize = 64;
const MIN_CTX: usize = 256;
/// Candidates sampled at each fallback temperature offline (whisper.cpp's CLI and
/// faster-whisper: 5).
const OFFLINE_BEST_OF: u8 = 5;
/// The temperature a looped decode is tried again from (whisper.cpp then steps it by 0.2).
const RETRY_TEMPERATURE: f32 = 0.2;
/// Room for a prompt's tokens: a token is at least one byte, so this holds any prompt of up to
/// 256 bytes ([`super::worker::CONTEXT_CHARS`] is 200); whisper-rs must never be asked for more
/// tokens than it has room for.
const MAX_PROMPT_TOKENS: usize = 256;
/// The beam width offline (faster-whisper's and whisper.cpp's CLI default).
const OFFLINE_BEAM: u8 = 5;

/// How the decoder searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// Best token at each step: the fastest.
    Greedy,
    /// Beam search of this width (whisper.cpp's default is 5): slower, occasionally more accurate.
    Beam(u8),
}

/// A loaded Whisper model, ready to transcribe on the calling thread.
pub struct Whisper {
    /// whisper.cpp's decoding state (its buffers and KV caches); it keeps the model alive.
    state: WhisperState,
    /// The model, for its tokenizer: prompts are passed as tokens, since whisper-rs leaks the
    /// C string of a text prompt on every call.
    ctx: WhisperContext,
    /// The language every utterance is decoded as (Whisper's two-letter code).
    language: String,
    /// Threads whisper.cpp computes with.
    threads: usize,
    /// Greedy or beam, from [`Whisper::set_decoding`].
    decoding: Decoding,
    /// Candidates sampled at each fallback temperature ([`Whisper::set_best_of`]).
    best_of: u8,
    /// Whether a decode that fails whisper.cpp's entropy or log-probability checks is retried
    /// at a higher temperature (random sampling).
    fallback: bool,
    /// Whether the encoder window is sized to each utterance (the default) or always Whisper's
    /// full 30 s, as other Whisper implementations run it (the conversion check compares so).
    shrink_window: bool,
    /// For `describe()`: `whisper.cpp tiny.en (q8_0)`.
    name: String,
    /// Silero's check of each utterance before it is decoded, when its model is installed.
    gate: Option<super::gate::SpeechGate>,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("name", &self.name)
            .field("language", &self.language)
            .field("threads", &self.threads)
            .field("decoding", &self.decoding)
            .finish()
    }
}

/// Routes whisper.cpp's and ggml's own logging (which goes to stderr by default) into `tracing`,
/// once per process.
fn quiet_whisper_cpp() {
    static HOOK: Once = Once::new();
    HOOK.call_once(whisper_rs::install_logging_hooks);
}

impl Whisper {
    /// Loads the ggml model at `model` to decode `language` (`en`, or any Whisper language for a
    /// multilingual model) with `threads` threads. The file is checked first, so a missing,
    /// truncated or garbage file is an error in words, never an abort inside whisper.cpp.
    pub fn load(model: &Path, language: &str, threads: usize) -> Result<Whisper, TranscribeError> {
        Whisper::load_with(model, language, threads, false)
    }

    /// [`Whisper::load`], choosing whether whisper.cpp uses flash attention (faster on some CPUs,
    /// measured in docs/transcription.md).
    pub fn load_with(
        model: &Path,
        language: &str,
        threads: usize,
        flash_attn: bool,
    ) -> Result<Whisper, TranscribeError> {
        let model_err = |reason: String| TranscribeError::Model {
            path: model.display().to_string(),
            reason,
        };
        quiet_whisper_cpp();
        // "auto" is whisper.cpp's detection, which a caption of a known room does not want.
        if language == "auto" || whisper_rs::get_lang_id(language).is_none() {
            return Err(TranscribeError::Language(language.to_string()));
        }
        let info = ggml::check(model).map_err(model_err)?;
        if !info.multilingual && language != "en" {
            return Err(TranscribeError::Language(format!(
                "{language} (the model {} is English-only)",
                model.display()
            )));
        }
        let path = model
            .to_str()
            .ok_or_else(|| model_err("its path is not UTF-8".into()))?;
        let mut params = WhisperContextParameters::default();
        params.flash_attn(flash_attn);
        let ctx = WhisperContext::new_with_params(path, params)
            .map_err(|e| model_err(format!("whisper.cpp refused it ({e}); see the log for why")))?;
        let state = ctx
            .create_state()
            .map_err(|e| model_err(format!("whisper.cpp cannot make a state for it: {e}")))?;
        let en = if info.multilingual { "" } else { ".en" };
        Ok(Whisper {
            state,
            ctx,
            language: language.to_string(),
            threads: threads.max(1),
            decoding: Decoding::Greedy,
            best_of: 1,
            fallback: true,
            shrink_window: true,
            name: format!("whisper.cpp {}{en} ({})", info.size, info.weights),
            gate: None,
        })
    }

    /// Chooses greedy or beam decoding (greedy by default: docs/transcription.md).
    pub fn set_decoding(&mut self, decoding: Decoding) {
        self.decoding = decoding;
    }

    /// Checks each utterance with Silero first: one without speech is not decoded.
    pub fn set_gate(&mut self, gate: super::gate::SpeechGate) {
        self.name.push_str(" + Silero speech gate");
        self.gate = Some(gate);
    }

    /// Turns whisper.cpp's temperature fallback on (the default) or off. Off, every decode is
    /// one deterministic pass; on, a doubtful one is decoded again with sampling.
    pub fn set_fallback(&mut self, on: bool) {
        self.fallback = on;
    }

    /// Sizes the encoder window to each utterance (on, the default: several times faster on
    /// short utterances) or uses the full 30 s window every time (off).
    pub fn set_window_to_utterance(&mut self, on: bool) {
        self.shrink_window = on;
    }

    /// How many candidates are sampled at each fallback temperature: one live (the default), so
    /// that a loop's fallback costs one decode per step and not five (docs/transcription.md).
    pub fn set_best_of(&mut self, n: u8) {
        self.best_of = n.max(1);
    }

    /// Decodes as offline Whisper does, for recordings: beam search of 5, five candidates at each
    /// fallback temperature, and full 30 s windows.
    pub fn set_offline(&mut self) {
        self.decoding = Decoding::Beam(OFFLINE_BEAM);
        self.best_of = OFFLINE_BEST_OF;
        self.shrink_window = false;
    }

    /// One whisper.cpp decode of `pcm` after `prompt`, from `temperature` (whisper.cpp falls back
    /// in steps of 0.2 from there when fallback is on).
    fn decode(
        &mut self,
        pcm: &[f32],
        prompt: &str,
        temperature: f32,
    ) -> Result<Vec<Piece>, TranscribeError> {
        let strategy = match self.decoding {
            Decoding::Greedy => SamplingStrategy::Greedy {
                best_of: i32::from(self.best_of),
            },
            Decoding::Beam(width) => SamplingStrategy::BeamSearch {
                beam_size: i32::from(width.max(1)),
                patience: -1.0,
            },
        };
        // A prompt that does not tokenize (a NUL byte, or too long) is left out.
        let tokens = if prompt.is_empty() || prompt.len() > MAX_PROMPT_TOKENS {
            Vec::new()
        } else {
            self.ctx
                .tokenize(prompt, MAX_PROMPT_TOKENS)
                .unwrap_or_default()
        };
        let mut params = FullParams::new(strategy);
        params.set_language(Some(&self.language));
        params.set_n_threads(i32::try_from(self.threads).unwrap_or(1));
        params.set_no_context(true);
        if !tokens.is_empty() {
            params.set_tokens(&tokens);
        }
        params.set_temperature(temperature);
        if self.fallback {
            // whisper.cpp's defaults, which are faster-whisper's: said here so they stay.
            params.set_temperature_inc(0.2);
            params.set_entropy_thold(2.4);
            params.set_logprob_thold(-1.0);
            params.set_no_speech_thold(0.6);
        } else {
            params.set_temperature_inc(0.0);
        }
        params.set_suppress_nst(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        // Bounded by FULL_CTX, so the cast cannot truncate.
        if self.shrink_window {
            params.set_audio_ctx(audio_ctx(pcm.len()) as i32);
        }
        self.state
            .full(params, pcm)
            .map_err(|e| TranscribeError::Engine(format!("whisper.cpp: {e}")))?;
        let mut pieces = Vec::new();
        for segment in self.state.as_iter() {
            let text = segment
                .to_str_lossy()
                .map_err(|e| TranscribeError::Engine(format!("whisper.cpp segment: {e}")))?;
            if is_tag(&text) {
                continue;
            }
            // whisper.cpp's times are in centiseconds.
            let cs = |t: i64| std::time::Duration::from_millis(t.max(0).unsigned_abs() * 10);
            pieces.push(Piece {
                start: cs(segment.start_timestamp()),
                end: cs(segment.end_timestamp()),
                text: text.trim().to_string(),
            });
        }
        Ok(pieces)
    }
}

/// Whether a decode looks like a loop: a segment that compresses like one, or a clause repeated.
fn looped(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| repeat::looks_looped(&p.text)) || repeat::has_repeat(&joined(pieces))
}

fn joined(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The encoder window for `samples` of audio, in frames: the audio's own plus a margin, or the
/// full window when it is longer than that.
fn audio_ctx(samples: usize) -> usize {
    let frames = samples.div_ceil(SAMPLE_RATE as usize / FRAMES_PER_SECOND);
    let ctx = (frames + CTX_MARGIN).max(MIN_CTX);
    if ctx >= FULL_CTX {
        // 0 is whisper.cpp's "the model's own" (1500).
        0
    } else {
        ctx
    }
}

/// Whether a segment's text is only a non-speech tag ("[BLANK_AUDIO]", "(wind blowing)"), which
/// Whisper emits for noise and which no caption should show.
fn is_tag(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || (t.starts_with('*') && t.ends_with('*'))
}

impl Transcriber for Whisper {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn transcribe(&mut self, pcm: &[f32]) -> Result<Vec<Piece>, TranscribeError> {
        self.transcribe_after(pcm, "")
    }

    fn transcribe_after(
        &mut self,
        pcm: &[f32],
        context: &str,
    ) -> Result<Vec<Piece>, TranscribeError> {
        if pcm.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(gate) = self.gate.as_mut() {
            if !gate.has_speech(pcm) {
                return Ok(Vec::new());
            }
        }
        let first = self.decode(pcm, context, 0.0)?;
        // Beyond one window whisper.cpp's own per-window fallback is the guard: decoding a whole
        // stretch of a recording again would cost far more than the repeat it might fix (and
        // `repeat::dedupe` still removes a repeated clause).
        if !self.fallback
            || pcm.len() > FULL_CTX * SAMPLE_RATE as usize / FRAMES_PER_SECOND
            || !looped(&first)
        {
            return Ok(first);
        }
        // A loop: sample again, without the prompt (which a loop may have come from), as
        // faster-whisper does on a high compression ratio; keep the retry unless it loops too.
        let retry = self.decode(pcm, "", RETRY_TEMPERATURE)?;
        tracing::debug!(first = %joined(&first), retry = %joined(&retry), "transcription: a looped decode, tried again");
        if looped(&retry) {
            Ok(first)
        } else {
            Ok(retry)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_window_follows_the_utterance() {
        // 1 s: its 50 frames plus the margin, but never below the minimum.
        assert_eq!(audio_ctx(16_000), MIN_CTX);
        // 10 s: 500 frames + 64.
        assert_eq!(audio_ctx(160_000), 564);
        // 29 s and more: the whole window.
        assert_eq!(audio_ctx(29 * 16_000), 0);
        assert_eq!(audio_ctx(45 * 16_000), 0);
    }

    #[test]
    fn non_speech_tags_are_not_captions() {
        assert!(is_tag(" [BLANK_AUDIO]"));
        assert!(is_tag("(wind blowing)"));
        assert!(is_tag("   "));
        assert!(!is_tag(" Hello (there)."));
    }

    #[test]
    fn an_unknown_language_is_refused_before_the_model_is_read() {
        let err = Whisper::load(Path::new("/nonexistent"), "xx", 1).unwrap_err();
        assert_eq!(err, TranscribeError::Language("xx".into()));
    }

    #[test]
    fn a_missing_or_garbage_model_is_an_error_not_an_abort() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope.bin");
        match Whisper::load(&missing, "en", 1) {
            Err(TranscribeError::Model { reason, .. }) => assert!(reason.contains("cannot open")),
            other => panic!("expected a model error, got {other:?}"),
        }
        let garbage = dir.path().join("garbage.bin");
        std::fs::write(&garbage, vec![0x5a; 100_000]).expect("write");
        match Whisper::load(&garbage, "en", 1) {
            Err(TranscribeError::Model { reason, .. }) => assert!(reason.contains("bad magic")),
            other => panic!("expected a model error, got {other:?}"),
        }
    }
}

//! Transcribes WAV files (16 kHz mono) with roombox's engine and prints one JSON line per file:
//! the text, the audio's length and the time it took. The bench (`benches/transcribe.sh`), with its
//! conversion check, runs it.
//!
//!     cargo run --release --example transcribe_file -- MODEL.bin [--threads N] [--beam N]
//!         [--whole] [--full-window] [--flash] [--no-fallback] [--silero VAD.bin]
//!         [--gate VAD.bin] [--best-of N] [--long-hangover MS]
//!         [--long-from MS] [--long-until MS] [--live | --post] FILE.wav...
//!
//! `--live` decodes as the live captions do (`worker::transcribe_pcm`: VAD cuts, each utterance
//! after the speaker's last words, repeats dropped); `--post` as a recording's transcript
//! (`worker::transcribe_recording` with the engine set offline: beam 5, full windows, cut only
//! at silences of 30 s or more). Without either, each VAD cut is decoded alone, with no context.
//! Each piece's times and text also go to stderr, to compare segmentation with other engines.
//!
//! `--whole` hands each file to the engine in one piece instead of cutting it into utterances
//! with the VAD first, as faster-whisper does without its `vad_filter`. `--full-window` encodes
//! Whisper's whole 30 s window every time, as faster-whisper does (the conversion check).
//! `--silero` cuts utterances with whisper.cpp's Silero VAD (a ggml model) instead of roombox's
//! energy VAD, with the same utterance rules (the VAD bench, `benches/vad.sh`); `--gate` keeps
//! the energy VAD's cuts and has Silero check each one before it is decoded, as the agent does
//! (`[transcription] speech_gate`). Each line also
//! says how long the VAD took, how many utterances it cut and how much audio they held.
//! `--long-hangover`, `--long-from` and `--long-until` set how the pause that ends an utterance
//! shrinks as it grows (`VadConfig`'s fields of those names); `--long-hangover 600` gives the VAD
//! of before it shrank, one hangover of 600 ms for every utterance.

use std::path::PathBuf;
use std::time::Instant;

use roombox::transcribe::vad::{self, Speech, VadConfig};
use roombox::transcribe::whisper::{Decoding, Whisper};
use roombox::transcribe::{wav, Piece, Transcriber, SAMPLE_RATE};
use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

/// Cuts `pcm` with Silero under the energy VAD's rules: utterances at least `min_utterance`
/// long, ended by `hangover` of silence, padded by `pre_roll`, at most `max_utterance`.
fn silero_split(ctx: &mut WhisperVadContext, c: &VadConfig, pcm: &[f32]) -> Vec<Speech> {
    let mut p = WhisperVadParams::new();
    p.set_min_speech_duration(c.min_utterance.as_millis() as i32);
    p.set_min_silence_duration(c.hangover.as_millis() as i32);
    p.set_speech_pad(c.pre_roll.as_millis() as i32);
    p.set_max_speech_duration(c.max_utterance.as_secs_f32());
    let Ok(segments) = ctx.segments_from_samples(p, pcm) else {
        return Vec::new();
    };
    // whisper.cpp gives segment bounds in centiseconds.
    let at = |cs: f32| ((cs as f64 / 100.0 * f64::from(SAMPLE_RATE)) as usize).min(pcm.len());
    segments
        .map(|s| {
            let (a, b) = (at(s.start), at(s.end));
            Speech {
                start: a as u64,
                pcm: pcm[a..b.max(a)].to_vec(),
            }
        })
        .filter(|s| !s.pcm.is_empty())
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(args.next().ok_or("usage: transcribe_file MODEL FILE...")?);
    let (mut threads, mut decoding, mut whole, mut flash, mut fallback, mut files) =
        (1, Decoding::Greedy, false, false, true, vec![]);
    let mut full_window = false;
    let (mut live, mut post) = (false, false);
    let mut best_of = None;
    let mut silero: Option<WhisperVadContext> = None;
    let mut gate = None;
    let mut config = VadConfig::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().ok_or("--threads N")?.parse()?,
            "--beam" => decoding = Decoding::Beam(args.next().ok_or("--beam N")?.parse()?),
            "--whole" => whole = true,
            "--flash" => flash = true,
            "--no-fallback" => fallback = false,
            "--full-window" => full_window = true,
            "--live" => live = true,
            "--best-of" => best_of = Some(args.next().ok_or("--best-of N")?.parse()?),
            "--post" => post = true,
            "--long-hangover" | "--long-from" | "--long-until" => {
                let ms = args.next().ok_or(format!("{a} MS"))?.parse()?;
                let d = std::time::Duration::from_millis(ms);
                match a.as_str() {
                    "--long-hangover" => config.long_hangover = d,
                    "--long-from" => config.long_from = d,
                    _ => config.long_until = d,
                }
            }
            "--gate" => gate = Some(PathBuf::from(args.next().ok_or("--gate VAD.bin")?)),
            "--silero" => {
                let path = args.next().ok_or("--silero VAD.bin")?;
                let mut cp = WhisperVadContextParams::new();
                cp.set_n_threads(1);
                silero = Some(
                    WhisperVadContext::new(&path, cp)
                        .map_err(|e| format!("cannot load the Silero VAD {path}: {e:?}"))?,
                );
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    let t = Instant::now();
    let mut engine = Whisper::load_with(&model, "en", threads, flash)?;
    engine.set_decoding(decoding);
    engine.set_fallback(fallback);
    engine.set_window_to_utterance(!full_window);
    if post {
        engine.set_offline();
    }
    if let Some(n) = best_of {
        engine.set_best_of(n);
    }
    if let Some(g) = gate {
        engine.set_gate(roombox::transcribe::gate::SpeechGate::load(&g)?);
    }
    eprintln!(
        "loaded {} in {:.2} s",
        engine.describe(),
        t.elapsed().as_secs_f64()
    );
    for file in files {
        let pcm = wav::read_wav(&file)?;
        let t = Instant::now();
        let (pieces, vad_s, utterances, speech_s) = if whole {
            (engine.transcribe(&pcm)?, 0.0, 1, pcm.len())
        } else if live {
            let p =
                roombox::transcribe::worker::transcribe_pcm(&mut engine, &config, &pcm, |_, _| {})?;
            (p, 0.0, 0, pcm.len())
        } else if post {
            let p =
                roombox::transcribe::worker::transcribe_recording(&mut engine, &pcm, |_, _| {})?;
            (p, 0.0, 0, pcm.len())
        } else {
            let cut = Instant::now();
            let speech = match silero.as_mut() {
                Some(ctx) => silero_split(ctx, &config, &pcm),
                None => vad::split(&config, &pcm),
            };
            let vad_s = cut.elapsed().as_secs_f64();
            let held = speech.iter().map(|s| s.pcm.len()).sum();
            let mut pieces = Vec::new();
            for s in &speech {
                for p in engine.transcribe(&s.pcm)? {
                    pieces.push(Piece {
                        start: s.offset() + p.start,
                        end: s.offset() + p.end,
                        text: p.text,
                    });
                }
            }
            (pieces, vad_s, speech.len(), held)
        };
        let compute = t.elapsed().as_secs_f64();
        for p in &pieces {
            eprintln!(
                "{:7.2} {:7.2} {}",
                p.start.as_secs_f64(),
                p.end.as_secs_f64(),
                p.text
            );
        }
        let text: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        println!(
            "{}",
            serde_json::json!({
                "file": file.display().to_string(),
                "audio": pcm.len() as f64 / f64::from(SAMPLE_RATE),
                "compute": compute,
                "vad": vad_s,
                "utterances": utterances,
                "speech": speech_s as f64 / f64::from(SAMPLE_RATE),
                "text": text.join(" "),
            })
        );
    }
    Ok(())
}

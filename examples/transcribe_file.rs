//! Transcribes WAV files (16 kHz mono) with roombox's engine and prints one JSON line per file:
//! the text, the audio's length and the time it took. The bench (`benches/transcribe.sh`), with its
//! conversion check, runs it.
//!
//!     cargo run --release --example transcribe_file -- MODEL.bin [--threads N] [--beam N]
//!         [--whole] [--full-window] [--flash] [--no-fallback] FILE.wav...
//!
//! `--whole` hands each file to the engine in one piece instead of cutting it into utterances
//! with the VAD first, as faster-whisper does without its `vad_filter`. `--full-window` encodes
//! Whisper's whole 30 s window every time, as faster-whisper does (the conversion check).

use std::path::PathBuf;
use std::time::Instant;

use roombox::transcribe::whisper::{Decoding, Whisper};
use roombox::transcribe::{vad::VadConfig, wav, worker, Transcriber, SAMPLE_RATE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(args.next().ok_or("usage: transcribe_file MODEL FILE...")?);
    let (mut threads, mut decoding, mut whole, mut flash, mut fallback, mut files) =
        (1, Decoding::Greedy, false, false, true, vec![]);
    let mut full_window = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().ok_or("--threads N")?.parse()?,
            "--beam" => decoding = Decoding::Beam(args.next().ok_or("--beam N")?.parse()?),
            "--whole" => whole = true,
            "--flash" => flash = true,
            "--no-fallback" => fallback = false,
            "--full-window" => full_window = true,
            _ => files.push(PathBuf::from(a)),
        }
    }
    let t = Instant::now();
    let mut engine = Whisper::load_with(&model, "en", threads, flash)?;
    engine.set_decoding(decoding);
    engine.set_fallback(fallback);
    engine.set_window_to_utterance(!full_window);
    eprintln!(
        "loaded {} in {:.2} s",
        engine.describe(),
        t.elapsed().as_secs_f64()
    );
    for file in files {
        let pcm = wav::read_wav(&file)?;
        let t = Instant::now();
        let pieces = if whole {
            engine.transcribe(&pcm)?
        } else {
            worker::transcribe_pcm(&mut engine, &VadConfig::default(), &pcm, |_, _| {})?
        };
        let compute = t.elapsed().as_secs_f64();
        let text: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        println!(
            "{}",
            serde_json::json!({
                "file": file.display().to_string(),
                "audio": pcm.len() as f64 / f64::from(SAMPLE_RATE),
                "compute": compute,
                "text": text.join(" "),
            })
        );
    }
    Ok(())
}

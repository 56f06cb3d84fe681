//! The transcription worker: one thread, at the lowest CPU priority, that owns the engine and
//! transcribes every source's utterances in turn.
//!
//! Whoever hands it audio (the agent, for the mic and each remote participant) never waits:
//! [`Worker::submit`] only queues. The queue is bounded by how much audio it holds, not by count:
//! when the CPU cannot keep up, the oldest utterances go first (a late caption is worth less than
//! a current one) and a [`WorkerEvent::Dropped`] says so. Capture and the call run at normal
//! priority, so the engine only gets the CPU they leave.
//!
//! Each speaker's last words ([`Contexts`]) are the prompt of their next short utterance, and
//! what the engine says is checked against them, so a sentence Whisper says twice is captioned
//! once.

use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::repeat;
use super::vad::{self, VadConfig};
use super::{Piece, Speaker, TranscribeError, Transcriber, Utterance};

/// The most of a speaker's last words passed as the prompt: about two sentences. Whisper takes
/// up to 224 tokens, but a long prompt costs decoding time and is more often copied.
pub const CONTEXT_CHARS: usize = 200;
/// A speaker silent for longer than this starts afresh: the old words are another topic.
pub const CONTEXT_GAP: Duration = Duration::from_secs(60);
/// Live, only an utterance shorter than this is prompted. A short one decoded blind is where
/// Whisper guesses ("We will go in direct to heaven"); on longer ones, on recorded human speech,
/// the prompt cost more words than it saved (BENCHMARKS.md, docs/transcription.md).
pub const PROMPT_UNDER: Duration = Duration::from_secs(3);

/// Each speaker's recent words: the prompt for their next utterance, and what a repeat is
/// checked against.
#[derive(Debug, Default)]
pub struct Contexts {
    /// By participant id: where their last text ended (session time) and its tail.
    by: HashMap<String, (Duration, String)>,
}

impl Contexts {
    /// The prompt for `who`'s live utterance at `offset` lasting `duration`: their last words
    /// ([`Contexts::last_words`]) when it is shorter than [`PROMPT_UNDER`], else none.
    pub fn prompt(&self, who: &str, offset: Duration, duration: Duration) -> &str {
        if duration < PROMPT_UNDER {
            self.last_words(who, offset)
        } else {
            ""
        }
    }

    /// `who`'s last words before `offset`, unless they have been silent for more than
    /// [`CONTEXT_GAP`].
    pub fn last_words(&self, who: &str, offset: Duration) -> &str {
        match self.by.get(who) {
            Some((end, text)) if offset.saturating_sub(*end) <= CONTEXT_GAP => text,
            _ => "",
        }
    }

    /// Takes the engine's `pieces` for `who`'s utterance at `offset` lasting `duration`: drops
    /// what repeats (within it, or the end of their last words), and keeps the rest as their
    /// context.
    pub fn accept(
        &mut self,
        who: &str,
        offset: Duration,
        duration: Duration,
        pieces: Vec<Piece>,
    ) -> Vec<Piece> {
        let before = self.last_words(who, offset).to_string();
        let kept = repeat::dedupe(&before, pieces);
        if !kept.is_empty() {
            let mut text = before;
            for p in &kept {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&p.text);
            }
            let tail = repeat::tail(&text, CONTEXT_CHARS).to_string();
            self.by.insert(who.to_string(), (offset + duration, tail));
        }
        kept
    }
}

/// What the worker reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// An utterance's text.
    Text {
        /// Who spoke.
        speaker: Speaker,
        /// Wall-clock time of the utterance's first sample.
        started_at: SystemTime,
        /// Meeting-relative time of its first sample.
        offset: Duration,
        /// How long the utterance lasts.
        duration: Duration,
        /// The text, in timed pieces from the utterance's start; never empty (an utterance
        /// that held no words gives no event).
        pieces: Vec<Piece>,
    },
    /// An utterance was dropped untranscribed because the backlog was full.
    Dropped {
        /// Whose audio it was.
        speaker: Speaker,
        /// How much audio was lost.
        audio: Duration,
    },
    /// The engine failed on an utterance of this speaker's; the worker goes on with the next.
    Failed(Speaker, TranscribeError),
}

/// The queue the submitters and the worker thread share.
struct Queue {
    /// Utterances waiting, oldest first.
    waiting: VecDeque<Utterance>,
    /// Their total audio, kept so `submit` need not sum the queue.
    audio: Duration,
    /// Set when the [`Worker`] is dropped: the thread ends after the utterance in hand.
    closed: bool,
}

/// The handle to the worker thread. Dropping it stops the thread after the utterance it is on;
/// utterances still queued are discarded.
pub struct Worker {
    /// The queue and the condition the thread waits on.
    shared: Arc<(Mutex<Queue>, Condvar)>,
    /// For `Dropped` events, which `submit` sends.
    events: UnboundedSender<WorkerEvent>,
    /// The most audio the queue holds.
    max_backlog: Duration,
    /// The engine's `describe()`, taken before it moved to its thread.
    engine: String,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("engine", &self.engine)
            .field("max_backlog", &self.max_backlog)
            .finish()
    }
}

impl Worker {
    /// Starts the worker thread with `engine`. The queue holds at most `max_backlog` of audio.
    pub fn spawn(
        engine: Box<dyn Transcriber>,
        max_backlog: Duration,
    ) -> (Worker, UnboundedReceiver<WorkerEvent>) {
        let (tx, rx) = unbounded_channel();
        let shared = Arc::new((
            Mutex::new(Queue {
                waiting: VecDeque::new(),
                audio: Duration::ZERO,
                closed: false,
            }),
            Condvar::new(),
        ));
        let describe = engine.describe();
        let thread_shared = Arc::clone(&shared);
        let thread_tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("transcribe".into())
            .spawn(move || run(engine, &thread_shared, &thread_tx));
        if let Err(e) = spawned {
            // No thread, no transcription: say so once for every utterance that comes.
            tracing::error!("cannot start the transcription thread: {e}");
            lock(&shared.0).closed = true;
        }
        (
            Worker {
                shared,
                events: tx,
                max_backlog,
                engine: describe,
            },
            rx,
        )
    }

    /// Queues an utterance; never blocks on the engine. If the queue then holds more than the
    /// maximum backlog, the oldest utterances are dropped (each with a `Dropped` event) until it
    /// fits. The newest is always kept, even when it alone is longer than the backlog.
    pub fn submit(&self, utterance: Utterance) {
        let (m, cv) = &*self.shared;
        let mut q = lock(m);
        if q.closed {
            let _ = self.events.send(WorkerEvent::Failed(
                utterance.speaker,
                TranscribeError::Engine("the transcription worker has stopped".into()),
            ));
            return;
        }
        q.audio += utterance.duration();
        q.waiting.push_back(utterance);
        while q.audio > self.max_backlog && q.waiting.len() > 1 {
            let Some(old) = q.waiting.pop_front() else {
                break;
            };
            q.audio = q.audio.saturating_sub(old.duration());
            let _ = self.events.send(WorkerEvent::Dropped {
                audio: old.duration(),
                speaker: old.speaker,
            });
        }
        cv.notify_one();
    }

    /// How much audio waits in the queue (not counting the utterance being transcribed).
    pub fn backlog(&self) -> Duration {
        lock(&self.shared.0).audio
    }

    /// The engine's name and model.
    pub fn engine(&self) -> &str {
        &self.engine
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        let mut q = lock(m);
        q.closed = true;
        q.waiting.clear();
        q.audio = Duration::ZERO;
        cv.notify_one();
    }
}

/// Lowers the calling thread to the least CPU priority Linux has: `SCHED_IDLE` (runs only when
/// nothing else wants the CPU), and nice 19 in case the policy cannot be set. Threads it starts
/// (whisper.cpp's compute threads) inherit both.
pub fn lowest_priority() {
    // SAFETY: plain syscalls on the calling thread (0 = this thread on Linux); no memory shared.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, 19) != 0 {
            tracing::warn!(
                "transcription: cannot lower the thread to nice 19: {}",
                std::io::Error::last_os_error()
            );
        }
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            tracing::debug!(
                "transcription: SCHED_IDLE refused ({}); nice 19 only",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The worker thread: takes the oldest utterance, transcribes it, reports, until closed.
fn run(
    mut engine: Box<dyn Transcriber>,
    shared: &(Mutex<Queue>, Condvar),
    events: &UnboundedSender<WorkerEvent>,
) {
    lowest_priority();
    let (m, cv) = shared;
    let mut contexts = Contexts::default();
    loop {
        let utterance = {
            let mut q = lock(m);
            loop {
                if q.closed {
                    return;
                }
                if let Some(u) = q.waiting.pop_front() {
                    q.audio = q.audio.saturating_sub(u.duration());
                    break u;
                }
                q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let who = &utterance.speaker.participant_id;
        let prompt = contexts
            .prompt(who, utterance.offset, utterance.duration())
            .to_string();
        let said = engine
            .transcribe_after(&utterance.pcm, &prompt)
            .map(|pieces| contexts.accept(who, utterance.offset, utterance.duration(), pieces));
        let event = match said {
            Ok(pieces) if pieces.is_empty() => continue,
            Ok(pieces) => WorkerEvent::Text {
                duration: utterance.duration(),
                speaker: utterance.speaker,
                started_at: utterance.started_at,
                offset: utterance.offset,
                pieces,
            },
            Err(e) => WorkerEvent::Failed(utterance.speaker, e),
        };
        if events.send(event).is_err() {
            // Nobody listens any more.
            return;
        }
    }
}

/// Transcribes a whole buffer on the calling thread as the live captions do (the bench and
/// the tests compare the two paths): cut into utterances by the VAD, each decoded after the
/// text before it, repeats dropped. Returns the pieces with times from the buffer's start.
/// `progress(done, total)` is called after each utterance with the audio covered so far.
/// Blocks for as long as the engine takes; call it from a blocking thread.
pub fn transcribe_pcm(
    engine: &mut dyn Transcriber,
    vad: &VadConfig,
    pcm: &[f32],
    progress: impl FnMut(Duration, Duration),
) -> Result<Vec<Piece>, TranscribeError> {
    transcribe_cuts(engine, vad::split(vad, pcm), pcm.len(), true, progress)
}

/// [`transcribe_pcm`] of the local mic with the echo canceller's linear output beside it
/// (`linear`, by sample index, as the live captions keep it): each utterance is decoded from
/// the signal the live captions would pick ([`super::linear`]).
pub fn transcribe_pcm_linear(
    engine: &mut dyn Transcriber,
    vad: &VadConfig,
    pcm: &[f32],
    linear: &super::linear::LinearTrack,
) -> Result<Vec<Piece>, TranscribeError> {
    let cuts = vad::split(vad, pcm)
        .into_iter()
        .map(|s| linear.chosen(s))
        .collect();
    transcribe_cuts(engine, cuts, pcm.len(), true, |_, _| {})
}

/// How the VAD finds a recording's speech for its transcript: a piece of speech ends at a
/// silence of 2 s however long it has run (no caption waits for it), and is at most 5 minutes
/// long. The pieces are then joined across every pause shorter than a Whisper window
/// ([`super::stretch`]), so only long silences are skipped.
pub fn recording_vad() -> VadConfig {
    VadConfig {
        hangover: Duration::from_secs(2),
        long_hangover: Duration::from_secs(2),
        max_utterance: Duration::from_secs(300),
        ..VadConfig::default()
    }
}

/// Transcribes a whole recording on the calling thread as offline Whisper does: the whole file
/// in 30 s windows (whisper.cpp seeks each to the last segment's end and conditions it on the
/// text before), skipping only silences of 30 s or more ([`super::stretch`]); each stretch
/// between them is decoded after the text before it. Give it an engine set up for recordings
/// ([`super::whisper::Whisper::set_offline`]).
pub fn transcribe_recording(
    engine: &mut dyn Transcriber,
    pcm: &[f32],
    progress: impl FnMut(Duration, Duration),
) -> Result<Vec<Piece>, TranscribeError> {
    let speech: Vec<_> = vad::split(&recording_vad(), pcm)
        .iter()
        .map(|s| s.start..s.start + s.pcm.len() as u64)
        .collect();
    let stretches = super::stretch::recording_stretches(&speech, pcm.len() as u64)
        .into_iter()
        .map(|r| vad::Speech {
            start: r.start,
            pcm: pcm[r.start as usize..r.end as usize].to_vec(),
        })
        .collect();
    transcribe_cuts(engine, stretches, pcm.len(), false, progress)
}

/// Decodes `cuts` in order, each after the text before it: prompted as live captions are
/// (`live`: short utterances only), or always, as offline Whisper conditions each window.
fn transcribe_cuts(
    engine: &mut dyn Transcriber,
    cuts: Vec<vad::Speech>,
    samples: usize,
    live: bool,
    mut progress: impl FnMut(Duration, Duration),
) -> Result<Vec<Piece>, TranscribeError> {
    let total = vad::samples_to_duration(samples as u64);
    let mut contexts = Contexts::default();
    let mut out = Vec::new();
    for speech in cuts {
        let offset = speech.offset();
        let duration = vad::samples_to_duration(speech.pcm.len() as u64);
        let prompt = if live {
            contexts.prompt("", offset, duration)
        } else {
            contexts.last_words("", offset)
        }
        .to_string();
        let pieces = engine.transcribe_after(&speech.pcm, &prompt)?;
        for p in contexts.accept("", offset, duration, pieces) {
            // Whisper times a window's last segment by its 30 s window, not by the audio in it:
            // keep every piece inside its stretch, and at least 10 ms long.
            let end = p.end.min(duration).max(Duration::from_millis(10));
            let start = p.start.min(end - Duration::from_millis(10));
            out.push(Piece {
                start: offset + start,
                end: offset + end,
                text: p.text,
            });
        }
        progress(
            vad::samples_to_duration(speech.start + speech.pcm.len() as u64).min(total),
            total,
        );
    }
    progress(total, total);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcribe::SAMPLE_RATE;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A real engine that is not a model: it takes `delay` per utterance (or waits for `gate` to
    /// open) and answers with the utterance's sample count. It tests the queue, not speech.
    struct Counter {
        delay: Duration,
        gate: Option<Arc<AtomicBool>>,
    }

    impl Transcriber for Counter {
        fn describe(&self) -> String {
            "counter".into()
        }
        fn transcribe(&mut self, pcm: &[f32]) -> Result<Vec<Piece>, TranscribeError> {
            if let Some(gate) = &self.gate {
                while !gate.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            std::thread::sleep(self.delay);
            if pcm.first() == Some(&-1.0) {
                return Err(TranscribeError::Engine("marked to fail".into()));
            }
            if pcm.first() == Some(&-0.5) {
                return Ok(Vec::new());
            }
            Ok(vec![Piece {
                start: Duration::ZERO,
                end: Duration::from_secs_f64(pcm.len() as f64 / f64::from(SAMPLE_RATE)),
                text: pcm.len().to_string(),
            }])
        }
    }

    fn speaker(id: &str) -> Speaker {
        Speaker {
            participant_id: id.into(),
            name: id.to_uppercase(),
        }
    }

    fn utterance(who: &str, secs: u64, first: f32) -> Utterance {
        let mut pcm = vec![0.1; (secs * u64::from(SAMPLE_RATE)) as usize];
        pcm[0] = first;
        Utterance {
            speaker: speaker(who),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            offset: Duration::from_secs(secs),
            pcm,
        }
    }

    async fn next(rx: &mut UnboundedReceiver<WorkerEvent>) -> WorkerEvent {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the channel is open")
    }

    #[tokio::test]
    async fn texts_come_in_order_with_their_speaker_and_times() {
        let engine = Counter {
            delay: Duration::ZERO,
            gate: None,
        };
        let (worker, mut rx) = Worker::spawn(Box::new(engine), Duration::from_secs(60));
        assert_eq!(worker.engine(), "counter");
        worker.submit(utterance("a", 1, 0.1));
        worker.submit(utterance("b", 2, 0.1));
        for (who, secs) in [("a", 1u64), ("b", 2)] {
            match next(&mut rx).await {
                WorkerEvent::Text {
                    speaker: s,
                    offset,
                    duration,
                    pieces,
                    ..
                } => {
                    assert_eq!(s, speaker(who));
                    assert_eq!(offset, Duration::from_secs(secs));
                    assert_eq!(duration, Duration::from_secs(secs));
                    assert_eq!(pieces[0].text, (secs * 16_000).to_string());
                }
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn failures_are_reported_and_wordless_utterances_are_silent() {
        let engine = Counter {
            delay: Duration::ZERO,
            gate: None,
        };
        let (worker, mut rx) = Worker::spawn(Box::new(engine), Duration::from_secs(60));
        worker.submit(utterance("a", 1, -1.0));
        worker.submit(utterance("b", 1, -0.5));
        worker.submit(utterance("c", 1, 0.1));
        assert_eq!(
            next(&mut rx).await,
            WorkerEvent::Failed(
                speaker("a"),
                TranscribeError::Engine("marked to fail".into())
            )
        );
        // b gave no words, so the next event is c's.
        assert!(
            matches!(next(&mut rx).await, WorkerEvent::Text { speaker: s, .. } if s == speaker("c"))
        );
    }

    #[tokio::test]
    async fn a_slow_engine_drops_the_oldest_audio_and_submit_never_waits() {
        // The engine holds its first utterance until the gate opens: everything after it queues.
        let gate = Arc::new(AtomicBool::new(false));
        let engine = Counter {
            delay: Duration::ZERO,
            gate: Some(Arc::clone(&gate)),
        };
        let (worker, mut rx) = Worker::spawn(Box::new(engine), Duration::from_secs(10));
        worker.submit(utterance("first", 1, 0.1));
        // Let the thread take "first" off the queue.
        while worker.backlog() > Duration::ZERO {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = std::time::Instant::now();
        for (i, who) in ["q1", "q2", "q3", "q4", "q5"].iter().enumerate() {
            worker.submit(utterance(who, 3, 0.1 + i as f32 / 100.0));
        }
        assert!(t.elapsed() < Duration::from_millis(500), "submit waited");
        // 15 s of audio against a 10 s backlog: the two oldest (6 s) went.
        assert_eq!(worker.backlog(), Duration::from_secs(9));
        for who in ["q1", "q2"] {
            assert_eq!(
                next(&mut rx).await,
                WorkerEvent::Dropped {
                    speaker: speaker(who),
                    audio: Duration::from_secs(3)
                }
            );
        }
        gate.store(true, Ordering::SeqCst);
        let mut texts = Vec::new();
        for _ in 0..4 {
            match next(&mut rx).await {
                WorkerEvent::Text { speaker, .. } => texts.push(speaker.participant_id),
                other => panic!("expected text, got {other:?}"),
            }
        }
        assert_eq!(texts, ["first", "q3", "q4", "q5"]);
        assert_eq!(worker.backlog(), Duration::ZERO);
    }

    #[tokio::test]
    async fn an_utterance_longer_than_the_backlog_is_still_transcribed() {
        let engine = Counter {
            delay: Duration::ZERO,
            gate: None,
        };
        let (worker, mut rx) = Worker::spawn(Box::new(engine), Duration::from_secs(2));
        worker.submit(utterance("long", 5, 0.1));
        assert!(matches!(next(&mut rx).await, WorkerEvent::Text { .. }));
    }

    /// An engine that says a fixed sentence (Whisper's loop: twice, when the first sample is
    /// 0.9) and notes the prompt it was given.
    struct Parrot {
        prompts: Arc<Mutex<Vec<String>>>,
    }

    impl Transcriber for Parrot {
        fn describe(&self) -> String {
            "parrot".into()
        }
        fn transcribe(&mut self, pcm: &[f32]) -> Result<Vec<Piece>, TranscribeError> {
            self.transcribe_after(pcm, "")
        }
        fn transcribe_after(
            &mut self,
            pcm: &[f32],
            context: &str,
        ) -> Result<Vec<Piece>, TranscribeError> {
            lock(&self.prompts).push(context.to_string());
            let text = match pcm.first() {
                Some(x) if *x > 0.85 => {
                    "It was the age of foolishness. It was the age of foolishness."
                }
                Some(x) if *x > 0.25 => "It was the age of foolishness.",
                _ => "It was the age of wisdom.",
            };
            Ok(vec![Piece {
                start: Duration::ZERO,
                end: Duration::from_secs(1),
                text: text.into(),
            }])
        }
    }

    #[tokio::test]
    async fn each_speaker_is_prompted_with_their_own_last_words_and_repeats_go() {
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let engine = Parrot {
            prompts: Arc::clone(&prompts),
        };
        let (worker, mut rx) = Worker::spawn(Box::new(engine), Duration::from_secs(60));
        // Short utterances (1 s), which are prompted, at these offsets.
        let short = |who: &str, at: u64, first: f32| Utterance {
            offset: Duration::from_secs(at),
            ..utterance(who, 1, first)
        };
        worker.submit(short("a", 1, 0.1));
        worker.submit(short("b", 2, 0.9));
        worker.submit(short("a", 3, 0.5));
        // a's last words said again: nothing new, so no caption.
        worker.submit(short("a", 5, 0.5));
        worker.submit(short("b", 9, 0.1));
        // A long one is decoded without the prompt.
        worker.submit(Utterance {
            offset: Duration::from_secs(12),
            ..utterance("b", 4, 0.5)
        });
        let mut said = Vec::new();
        for _ in 0..5 {
            match next(&mut rx).await {
                WorkerEvent::Text {
                    speaker, pieces, ..
                } => said.push((speaker.participant_id, pieces[0].text.clone())),
                other => panic!("expected text, got {other:?}"),
            }
        }
        let s = |w: &str, t: &str| (w.to_string(), t.to_string());
        assert_eq!(
            said,
            [
                s("a", "It was the age of wisdom."),
                s("b", "It was the age of foolishness."),
                s("a", "It was the age of foolishness."),
                s("b", "It was the age of wisdom."),
                s("b", "It was the age of foolishness."),
            ]
        );
        assert_eq!(
            *lock(&prompts),
            [
                "",
                "",
                "It was the age of wisdom.",
                "It was the age of wisdom. It was the age of foolishness.",
                "It was the age of foolishness.",
                "",
            ]
        );
    }

    #[test]
    fn a_speaker_silent_for_long_starts_afresh_and_the_prompt_stays_bounded() {
        let mut c = Contexts::default();
        let long = "word ".repeat(100);
        let piece = Piece {
            start: Duration::ZERO,
            end: Duration::from_secs(1),
            text: long.trim().to_string(),
        };
        c.accept("a", Duration::ZERO, Duration::from_secs(30), vec![piece]);
        let short = Duration::from_secs(1);
        assert!(c.prompt("a", Duration::from_secs(31), short).len() <= CONTEXT_CHARS);
        assert!(!c.prompt("a", Duration::from_secs(31), short).is_empty());
        // A long utterance is decoded without it (but still checked against it).
        assert_eq!(c.prompt("a", Duration::from_secs(31), PROMPT_UNDER), "");
        assert!(!c.last_words("a", Duration::from_secs(31)).is_empty());
        assert_eq!(
            c.prompt("a", Duration::from_secs(30) + CONTEXT_GAP * 2, short),
            ""
        );
        assert_eq!(c.prompt("b", Duration::from_secs(31), short), "");
    }

    #[test]
    fn the_worker_thread_runs_at_the_lowest_priority() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            lowest_priority();
            // SAFETY: reads the calling thread's own scheduling settings.
            let (nice, policy) = unsafe {
                (
                    libc::getpriority(libc::PRIO_PROCESS, 0),
                    libc::sched_getscheduler(0),
                )
            };
            let _ = tx.send((nice, policy));
        })
        .join()
        .expect("thread");
        let (nice, policy) = rx.recv().expect("result");
        assert_eq!(nice, 19);
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    #[test]
    fn a_whole_buffer_is_cut_and_timed_from_its_start() {
        let mut engine = Counter {
            delay: Duration::ZERO,
            gate: None,
        };
        // 1 s of silence, 1 s of a loud tone, 1 s of silence, 1 s of tone, 1 s of silence.
        let sr = SAMPLE_RATE as usize;
        let tone = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| 0.3 * (i as f32 * 200.0 * std::f32::consts::TAU / sr as f32).sin())
                .collect()
        };
        let mut pcm = vec![0.0; sr];
        pcm.extend(tone(sr));
        pcm.extend(vec![0.0; sr]);
        pcm.extend(tone(sr));
        pcm.extend(vec![0.0; sr]);
        let mut seen = Vec::new();
        let pieces = transcribe_pcm(&mut engine, &VadConfig::default(), &pcm, |d, t| {
            seen.push((d, t))
        })
        .expect("transcribed");
        assert_eq!(pieces.len(), 2);
        assert!(
            pieces[0].start >= Duration::from_millis(750)
                && pieces[0].start <= Duration::from_secs(1)
        );
        assert!(
            pieces[1].start >= Duration::from_millis(2750)
                && pieces[1].start <= Duration::from_secs(3)
        );
        assert_eq!(
            seen.last(),
            Some(&(Duration::from_secs(5), Duration::from_secs(5)))
        );
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}

//! Transcripts of recordings (`transcribe-recording`, and `post_on_stop`): each segment decoded
//! with GStreamer to 16 kHz mono and transcribed as offline Whisper does (no latency to keep, so
//! no cutting mid-phrase: the VAD only skips long silences, and Whisper decodes the speech in
//! 30 s windows conditioned on the text before, beam search, temperature fallback;
//! `worker::transcribe_recording`), on one thread at the lowest CPU priority, and written as
//! `.vtt` and `.srt` beside it.
//!
//! The segments waiting are kept in a pending-work file in the state directory, rewritten on
//! every change, so work queued before an agent restart (or a power cut) is picked up again.

use super::live::TranscriptionNotice;
use super::transcript::{merge_by_time, srt, vtt, Caption};
use super::Transcriber;
use crate::model::ServiceState;
use crate::sync::lock;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::UnboundedSender;

/// The pending-work file's name in the state directory.
pub const PENDING_FILE: &str = "transcribe-pending.json";
/// Progress is reported at most this often per segment.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a recording's transcription needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct PostSetup {
    /// The model file.
    pub model: PathBuf,
    pub language: String,
    /// Engine threads.
    pub threads: usize,
    /// The Silero speech gate's model, when installed and on.
    pub gate: Option<PathBuf>,
    /// Who the recording's voice is (the box's own mic): id and display name.
    pub speaker: (String, String),
}

struct Queue {
    waiting: VecDeque<PathBuf>,
    /// The segment being transcribed, still listed in the pending file until it is written.
    current: Option<PathBuf>,
    setup: PostSetup,
}

/// The queue of segments to transcribe, and its thread.
#[derive(Clone)]
pub struct PostQueue {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    pending: PathBuf,
}

/// Reads the pending-work file: the segments still to do. A missing or unreadable file is no
/// work (it is rewritten on the next change).
pub fn read_pending(path: &Path) -> Vec<PathBuf> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<PathBuf>>(&b).ok())
        .unwrap_or_default()
}

fn write_pending(path: &Path, q: &Queue) {
    let list: Vec<&PathBuf> = q.current.iter().chain(q.waiting.iter()).collect();
    let tmp = path.with_extension("json.tmp");
    let ok = serde_json::to_vec(&list)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = ok {
        tracing::warn!(file = %path.display(), error = %e, "transcription: cannot save the pending work");
    }
}

impl PostQueue {
    /// Starts the queue's thread, resuming whatever the pending-work file in `state_dir` lists.
    pub fn spawn(
        state_dir: &Path,
        setup: PostSetup,
        notices: UnboundedSender<TranscriptionNotice>,
    ) -> PostQueue {
        let pending = state_dir.join(PENDING_FILE);
        let resumed: VecDeque<PathBuf> = read_pending(&pending).into_iter().collect();
        if !resumed.is_empty() {
            tracing::info!(
                segments = resumed.len(),
                "transcription: resuming recordings' transcription"
            );
        }
        let shared = Arc::new((
            Mutex::new(Queue {
                waiting: resumed,
                current: None,
                setup,
            }),
            Condvar::new(),
        ));
        let q = PostQueue { shared, pending };
        let thread_q = q.clone();
        let spawned = std::thread::Builder::new()
            .name("transcribe-rec".into())
            .spawn(move || thread_q.run(notices));
        if let Err(e) = spawned {
            tracing::error!("cannot start the recordings' transcription thread: {e}");
        }
        q
    }

    /// Takes a new configuration (model, language) for the segments not yet started.
    pub fn set_setup(&self, setup: PostSetup) {
        lock(&self.shared.0).setup = setup;
    }

    /// Queues segments (those already queued are not queued twice).
    pub fn push(&self, segments: Vec<PathBuf>) {
        let (m, cv) = &*self.shared;
        let mut q = lock(m);
        for s in segments {
            if q.current.as_ref() != Some(&s) && !q.waiting.contains(&s) {
                q.waiting.push_back(s);
            }
        }
        write_pending(&self.pending, &q);
        cv.notify_one();
    }

    fn run(&self, notices: UnboundedSender<TranscriptionNotice>) {
        super::worker::lowest_priority();
        let mut engine: Option<(PostSetup, Box<dyn Transcriber>)> = None;
        loop {
            let (segment, setup) = {
                let (m, cv) = &*self.shared;
                let mut q = lock(m);
                while q.waiting.is_empty() {
                    // Idle: the engine's memory (75 MB and up) goes back.
                    engine = None;
                    q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                let Some(s) = q.waiting.pop_front() else {
                    continue;
                };
                q.current = Some(s.clone());
                (s, q.setup.clone())
            };
            if engine.as_ref().is_none_or(|(s, _)| *s != setup) {
                engine = None;
                match super::service::load_whisper(
                    &setup.model,
                    &setup.language,
                    setup.threads,
                    setup.gate.as_deref(),
                ) {
                    Ok(mut e) => {
                        e.set_offline();
                        engine = Some((setup.clone(), Box::new(e)));
                    }
                    Err(e) => {
                        let _ = notices.send(progress(
                            &segment,
                            0,
                            0,
                            ServiceState::Failed,
                            None,
                            None,
                            Some(e.to_string()),
                        ));
                    }
                }
            }
            if let Some((_, e)) = engine.as_mut() {
                let n = transcribe_segment(&segment, e.as_mut(), &setup, &notices);
                let _ = notices.send(n);
            }
            let mut q = lock(&self.shared.0);
            q.current = None;
            write_pending(&self.pending, &q);
        }
    }
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn progress(
    segment: &Path,
    done: u64,
    total: u64,
    state: ServiceState,
    vtt: Option<String>,
    srt: Option<String>,
    reason: Option<String>,
) -> TranscriptionNotice {
    TranscriptionNotice::Progress {
        recording: name_of(segment),
        done: Duration::from_millis(done),
        total: Duration::from_millis(total),
        state,
        vtt,
        srt,
        reason,
    }
}

/// Transcribes one segment and writes its `.vtt` and `.srt`; returns the final notice.
fn transcribe_segment(
    segment: &Path,
    engine: &mut dyn Transcriber,
    setup: &PostSetup,
    notices: &UnboundedSender<TranscriptionNotice>,
) -> TranscriptionNotice {
    let fail = |reason: String| {
        progress(
            segment,
            0,
            0,
            ServiceState::Failed,
            None,
            None,
            Some(reason),
        )
    };
    let speakers = match speakers(segment, setup) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let len_ms = |pcm: &[f32]| pcm.len() as u64 * 1000 / u64::from(super::SAMPLE_RATE);
    let total_ms = speakers.iter().map(|s| len_ms(&s.2)).max().unwrap_or(0);
    let _ = notices.send(progress(
        segment,
        0,
        total_ms,
        ServiceState::Started,
        None,
        None,
        None,
    ));
    // The segment's wall-clock start: its end (last write) less its length.
    let end = std::fs::metadata(segment)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let start = end
        .checked_sub(Duration::from_millis(total_ms))
        .unwrap_or(end)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let mut last = std::time::Instant::now();
    let n = speakers.len() as u64;
    let mut each = Vec::new();
    for (i, (id, name, pcm)) in speakers.iter().enumerate() {
        // Progress over the whole: the tracks one after the other.
        let pieces = super::worker::transcribe_recording(engine, pcm, |done, _| {
            if last.elapsed() >= PROGRESS_EVERY {
                last = std::time::Instant::now();
                let track_ms = len_ms(pcm).max(1);
                let done = (i as u64 * total_ms
                    + (done.as_millis() as u64).min(track_ms) * total_ms / track_ms)
                    / n;
                let _ = notices.send(progress(
                    segment,
                    done,
                    total_ms,
                    ServiceState::Started,
                    None,
                    None,
                    None,
                ));
            }
        });
        let pieces = match pieces {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        };
        each.push(
            pieces
                .iter()
                .filter(|p| !p.text.trim().is_empty())
                .map(|p| Caption {
                    participant_id: id.clone(),
                    participant_name: name.clone(),
                    text: p.text.trim().to_string(),
                    start_ms: start + p.start.as_millis() as u64,
                    end_ms: start + p.end.as_millis() as u64,
                    meeting_start_ms: p.start.as_millis() as u64,
                    meeting_end_ms: p.end.as_millis() as u64,
                })
                .collect(),
        );
    }
    let captions = merge_by_time(each);
    let vtt_path = segment.with_extension("vtt");
    let srt_path = segment.with_extension("srt");
    let written = std::fs::write(&vtt_path, vtt(&captions))
        .and_then(|()| std::fs::write(&srt_path, srt(&captions)));
    if let Err(e) = written {
        return fail(format!(
            "cannot write the transcript beside {}: {e}",
            segment.display()
        ));
    }
    progress(
        segment,
        total_ms,
        total_ms,
        ServiceState::Stopped,
        Some(name_of(&vtt_path)),
        Some(name_of(&srt_path)),
        None,
    )
}

/// Who speaks in `segment`, each with their audio (16 kHz mono): one per participant track of a
/// Matroska recording of the meeting (`media::tracks`), else the box's own voice in the whole
/// recording's audio.
fn speakers(segment: &Path, setup: &PostSetup) -> Result<Vec<(String, String, Vec<f32>)>, String> {
    let floats = |b: &[u8]| {
        b.chunks_exact(2)
            .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
            .collect::<Vec<f32>>()
    };
    if segment.extension().is_some_and(|e| e == "mkv") {
        match crate::media::tracks::read_voices(segment, super::SAMPLE_RATE) {
            Ok(v) if !v.is_empty() => {
                return Ok(v
                    .into_iter()
                    .map(|v| (v.id, v.name, floats(&v.pcm)))
                    .collect())
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("transcription: the participants' tracks: {e}"),
        }
    }
    let pcm =
        crate::media::filemic::decode(segment, super::SAMPLE_RATE, 1).map_err(|e| e.to_string())?;
    Ok(vec![(
        setup.speaker.0.clone(),
        setup.speaker.1.clone(),
        floats(&pcm),
    )])
}

/// The segments of a `transcribe-recording` request, oldest first: `file` in `dir`, or every
/// segment whose span meets `from..=to` (ms since the epoch). `writing` (the segment being
/// recorded) is never included. Errors are for the reply.
pub fn select_segments(
    dir: &Path,
    file: Option<&str>,
    from: Option<u64>,
    to: Option<u64>,
    writing: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    let is_segment = |p: &Path| {
        p.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(crate::media::recorder::SEGMENT_PREFIX)
        }) && p.extension().is_some_and(|e| e == "mkv" || e == "mp4")
    };
    if let Some(f) = file {
        let p = dir.join(f);
        if !is_segment(&p) || !p.is_file() {
            return Err(format!("there is no recording `{f}` in {}", dir.display()));
        }
        if writing == Some(p.as_path()) {
            return Err(format!("`{f}` is still being recorded"));
        }
        return Ok(vec![p]);
    }
    if from.is_none() && to.is_none() {
        return Err("give file, or from and/or to (ms since the epoch)".into());
    }
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
    };
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        if !is_segment(&p) || writing == Some(p.as_path()) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let end = meta.modified().map(ms).unwrap_or(0);
        let start = meta.created().map(ms).unwrap_or(end);
        if from.is_none_or(|f| end >= f) && to.is_none_or(|t| start <= t) {
            found.push((start, p));
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no recording in {} between {} and {}",
            dir.display(),
            from.map_or("the start".into(), |f| f.to_string()),
            to.map_or("now".into(), |t| t.to_string())
        ));
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_chosen_by_name_or_time_and_missing_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("roombox-2026-01-01T00-00-00Z-0001.mkv");
        let b = dir.path().join("roombox-2026-01-01T00-00-10Z-0002.mkv");
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let d = dir.path();
        assert_eq!(
            select_segments(
                d,
                Some("roombox-2026-01-01T00-00-00Z-0001.mkv"),
                None,
                None,
                None
            )
            .unwrap(),
            vec![a.clone()]
        );
        assert!(
            select_segments(d, Some("roombox-nope.mkv"), None, None, None)
                .unwrap_err()
                .contains("no recording")
        );
        assert!(select_segments(d, Some("notes.txt"), None, None, None).is_err());
        assert!(select_segments(d, None, None, None, None).is_err());
        let all = select_segments(d, None, Some(0), None, Some(&b)).unwrap();
        assert_eq!(
            all,
            vec![a.clone()],
            "the segment being written is left out"
        );
        assert!(select_segments(d, None, None, Some(1), None)
            .unwrap_err()
            .contains("no recording"));
    }

    #[test]
    fn pending_work_survives_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PENDING_FILE);
        assert!(read_pending(&path).is_empty());
        let q = Queue {
            waiting: [PathBuf::from("/r/b.mkv")].into(),
            current: Some(PathBuf::from("/r/a.mkv")),
            setup: PostSetup {
                model: PathBuf::new(),
                language: "en".into(),
                threads: 1,
                gate: None,
                speaker: ("b".into(), "B".into()),
            },
        };
        write_pending(&path, &q);
        assert_eq!(
            read_pending(&path),
            vec![PathBuf::from("/r/a.mkv"), PathBuf::from("/r/b.mkv")]
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(read_pending(&path).is_empty());
    }
}

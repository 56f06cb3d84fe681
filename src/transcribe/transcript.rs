//! Transcripts on disk: WebVTT, SRT and JSON lines, and the running transcript of a live
//! session in the state directory.
//!
//! The text formats are pure functions of [`Caption`]s, so they are tested without a model.
//! A live session appends each caption to `<session>.vtt` and `<session>.jsonl` as it comes
//! (a crash loses nothing already said); a recording's transcript is written whole.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One caption: one participant's utterance, as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caption {
    /// Who spoke.
    pub participant_id: String,
    pub participant_name: String,
    /// The words.
    pub text: String,
    /// Wall clock of the start, ms since the epoch.
    pub start_ms: u64,
    /// Wall clock of the end, ms since the epoch.
    pub end_ms: u64,
    /// Start from the start of the session (the transcript's 0).
    pub meeting_start_ms: u64,
    /// End from the start of the session.
    pub meeting_end_ms: u64,
}

/// Each speaker's captions (each list in time order) merged into one transcript by start time;
/// cues that start together keep the order of the speakers given.
pub fn merge_by_time(speakers: Vec<Vec<Caption>>) -> Vec<Caption> {
    let mut all: Vec<Caption> = speakers.into_iter().flatten().collect();
    all.sort_by_key(|c| c.meeting_start_ms);
    all
}

/// `hh:mm:ss.mmm` (WebVTT) or `hh:mm:ss,mmm` (SRT).
fn timestamp(ms: u64, sep: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text: one line (a blank line would end the cue), and no markup: `<`, `>` and `&` are
/// escaped, which also breaks any `-->` a speaker said into the text.
fn cue_text(c: &Caption) -> String {
    let text: String = c
        .text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let name = c
        .participant_name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<v {name}>{text}")
}

/// The header every WebVTT file starts with.
pub const VTT_HEADER: &str = "WEBVTT\n\n";

/// One WebVTT cue, with the speaker as a voice span (`<v Name>`), ending in a blank line.
pub fn vtt_cue(c: &Caption) -> String {
    let end = c.meeting_end_ms.max(c.meeting_start_ms + 1);
    format!(
        "{} --> {}\n{}\n\n",
        timestamp(c.meeting_start_ms, '.'),
        timestamp(end, '.'),
        cue_text(c)
    )
}

/// A whole WebVTT file.
pub fn vtt(captions: &[Caption]) -> String {
    let mut s = VTT_HEADER.to_string();
    for c in captions {
        s.push_str(&vtt_cue(c));
    }
    s
}

/// A whole SRT file; SRT has no voices, so the name leads the text (`Name: text`).
pub fn srt(captions: &[Caption]) -> String {
    let mut s = String::new();
    for (i, c) in captions.iter().enumerate() {
        let end = c.meeting_end_ms.max(c.meeting_start_ms + 1);
        let text = c.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let line = if c.participant_name.is_empty() {
            text
        } else {
            format!("{}: {text}", c.participant_name)
        };
        s.push_str(&format!(
            "{}\n{} --> {}\n{line}\n\n",
            i + 1,
            timestamp(c.meeting_start_ms, ','),
            timestamp(end, ',')
        ));
    }
    s
}

/// Parses the cue times of a WebVTT file (`(start_ms, end_ms, text)`), for tests and for
/// checking a file before serving it. Errors say which line is wrong.
pub fn parse_vtt(text: &str) -> Result<Vec<(u64, u64, String)>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, l)) if l.starts_with("WEBVTT") => {}
        _ => return Err("line 1: no WEBVTT header".into()),
    }
    let mut cues = Vec::new();
    while let Some((n, line)) = lines.next() {
        let Some((a, b)) = line.split_once(" --> ") else {
            continue;
        };
        let (start, end) = (parse_ts(a), parse_ts(b.split(' ').next().unwrap_or("")));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(format!("line {}: bad cue timing `{line}`", n + 1));
        };
        let mut body = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.is_empty() {
                break;
            }
            body.push(l);
        }
        cues.push((start, end, body.join("\n")));
    }
    Ok(cues)
}

fn parse_ts(s: &str) -> Option<u64> {
    let (hms, ms) = s.trim().split_once(['.', ','])?;
    let parts: Vec<u64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, sec) = match parts[..] {
        [h, m, s] => (h, m, s),
        [m, s] => (0, m, s),
        _ => return None,
    };
    let ms: u64 = ms.parse().ok()?;
    (m < 60 && sec < 60 && ms < 1000).then_some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// Where live transcripts are kept: `<state_dir>/transcripts`.
pub fn live_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("transcripts")
}

/// A transcript file name is one of ours: `<stem>.vtt`, `.jsonl` or `.srt`, with a stem of
/// letters, digits, `-` and `_` (what the HTTP server agrees to serve).
pub fn is_transcript_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && stem.len() <= 128
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && matches!(ext, "vtt" | "jsonl" | "srt")
}

/// The running transcript of one live session: `<dir>/<name>.vtt` and `<name>.jsonl`, appended
/// to caption by caption.
pub struct LiveTranscript {
    vtt: std::fs::File,
    jsonl: std::fs::File,
    /// The WebVTT file.
    pub vtt_path: PathBuf,
    /// The JSON lines file.
    pub jsonl_path: PathBuf,
}

impl LiveTranscript {
    /// Creates the files of a session started at `started` (named by its UTC time, so they
    /// sort and never collide with an earlier session's).
    pub fn create(dir: &Path, started: SystemTime) -> std::io::Result<LiveTranscript> {
        std::fs::create_dir_all(dir)?;
        let secs = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut name = format!("transcript-{secs}");
        let mut n = 1;
        while dir.join(format!("{name}.vtt")).exists() {
            n += 1;
            name = format!("transcript-{secs}-{n}");
        }
        let vtt_path = dir.join(format!("{name}.vtt"));
        let jsonl_path = dir.join(format!("{name}.jsonl"));
        let mut vtt = std::fs::File::create(&vtt_path)?;
        vtt.write_all(VTT_HEADER.as_bytes())?;
        let jsonl = std::fs::File::create(&jsonl_path)?;
        Ok(LiveTranscript {
            vtt,
            jsonl,
            vtt_path,
            jsonl_path,
        })
    }

    /// Appends one caption to both files.
    pub fn append(&mut self, c: &Caption) -> std::io::Result<()> {
        self.vtt.write_all(vtt_cue(c).as_bytes())?;
        let mut line = serde_json::to_string(c).map_err(std::io::Error::other)?;
        line.push('\n');
        self.jsonl.write_all(line.as_bytes())
    }
}

/// Deletes transcripts older than `max_age` (the recordings' retention; zero keeps them all).
/// Returns how many files went.
pub fn prune(dir: &Path, max_age: Duration, now: SystemTime) -> usize {
    if max_age.is_zero() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if !is_transcript_name(&name.to_string_lossy()) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > max_age);
        if old && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(name: &str, text: &str, a: u64, b: u64) -> Caption {
        Caption {
            participant_id: "p1".into(),
            participant_name: name.into(),
            text: text.into(),
            start_ms: 1_700_000_000_000 + a,
            end_ms: 1_700_000_000_000 + b,
            meeting_start_ms: a,
            meeting_end_ms: b,
        }
    }

    #[test]
    fn webvtt_round_trips_with_voices_and_escapes() {
        let caps = [
            cap("Ada", "hello there", 1_500, 3_250),
            cap("Bob <x>", "a --> b & c\nnext", 3_723_004, 3_724_000),
        ];
        let text = vtt(&caps);
        assert!(text.starts_with("WEBVTT\n\n00:00:01.500 --> 00:00:03.250\n<v Ada>hello there\n"));
        let cues = parse_vtt(&text).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!((cues[1].0, cues[1].1), (3_723_004, 3_724_000));
        assert_eq!(cues[1].2, "<v Bob &lt;x&gt;>a --&gt; b &amp; c next");
    }

    #[test]
    fn speakers_are_merged_by_start_time_and_keep_their_names() {
        let ana = vec![
            cap("Ana", "one", 1_000, 2_000),
            cap("Ana", "three", 5_000, 6_000),
        ];
        let bob = vec![
            cap("Bob", "two", 1_500, 4_000),
            cap("Bob", "four", 5_000, 5_500),
        ];
        let merged = merge_by_time(vec![ana, bob, Vec::new()]);
        let said: Vec<(&str, &str)> = merged
            .iter()
            .map(|c| (c.participant_name.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            said,
            [
                ("Ana", "one"),
                ("Bob", "two"),
                ("Ana", "three"),
                ("Bob", "four")
            ],
            "by start; a tie keeps the speakers' order"
        );
        let text = vtt(&merged);
        assert!(text.contains("<v Bob>two\n\n00:00:05.000 --> 00:00:06.000\n<v Ana>three"));
        assert!(merge_by_time(Vec::new()).is_empty());
    }

    #[test]
    fn srt_numbers_cues_and_uses_commas() {
        let s = srt(&[cap("Ada", "hi", 0, 900), cap("", "yes", 1000, 1000)]);
        assert_eq!(
            s,
            "1\n00:00:00,000 --> 00:00:00,900\nAda: hi\n\n2\n00:00:01,000 --> 00:00:01,001\nyes\n\n"
        );
    }

    #[test]
    fn bad_vtt_is_an_error_with_its_line() {
        assert!(parse_vtt("hello").is_err());
        let e = parse_vtt("WEBVTT\n\n00:00:01.000 --> soon\nx\n").unwrap_err();
        assert!(e.starts_with("line 3"), "{e}");
    }

    #[test]
    fn only_our_own_names_are_transcripts() {
        assert!(is_transcript_name("transcript-1700000000000.vtt"));
        assert!(is_transcript_name("seg_00001.srt"));
        for bad in [
            "../x.vtt",
            "a.txt",
            ".vtt",
            "a b.vtt",
            "x/y.jsonl",
            "a.vtt/",
        ] {
            assert!(!is_transcript_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_live_transcript_appends_and_is_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut t = LiveTranscript::create(dir.path(), t0).unwrap();
        t.append(&cap("Ada", "one", 0, 500)).unwrap();
        t.append(&cap("Ada", "two", 600, 900)).unwrap();
        let cues = parse_vtt(&std::fs::read_to_string(&t.vtt_path).unwrap()).unwrap();
        assert_eq!(cues.len(), 2);
        let lines = std::fs::read_to_string(&t.jsonl_path).unwrap();
        let back: Caption = serde_json::from_str(lines.lines().nth(1).unwrap()).unwrap();
        assert_eq!(back.text, "two");
        let second = LiveTranscript::create(dir.path(), t0).unwrap();
        assert_ne!(second.vtt_path, t.vtt_path);
        assert_eq!(prune(dir.path(), Duration::ZERO, SystemTime::now()), 0);
        let later = SystemTime::now() + Duration::from_secs(7200);
        assert_eq!(prune(dir.path(), Duration::from_secs(3600), later), 4);
    }
}

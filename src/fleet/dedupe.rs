//! The command ids already answered, on disk, so a command re-delivered after the agent
//! restarted (an operator retrying `restart` or `set-config` whose reply it never saw) is
//! answered from the cache instead of acting twice.
//!
//! A journal, `commands.jsonl` in the fleet state directory: one JSON line per finished
//! command, appended before its reply is published. Appending costs one small `write` and no
//! fsync, so the command round trip stays fast; a crash or restart of the process loses nothing
//! (the line is in the page cache), and the fleet link fsyncs it once a second, on a blocking
//! thread ([`Journal::to_sync`]), so a power cut loses at most that second. The journal is
//! bounded: on open, and whenever it holds twice as many lines as there are live ids (or twice
//! what a rewrite keeps), it is rewritten from the live ids (temporary file, fsync, rename,
//! fsync of the directory), dropping expired ids, keeping at most [`MAX_KEPT`] of the
//! newest and at most [`MAX_BYTES`]. A torn last line (a crash mid-write) is skipped.

use crate::api::ReplyLine;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The journal's file name in the fleet state directory.
pub const FILE: &str = "commands.jsonl";
/// Most ids kept across a restart (the newest).
pub const MAX_KEPT: usize = 5000;
/// Most bytes the rewritten journal may hold; the oldest ids go first beyond it.
pub const MAX_BYTES: usize = 8 << 20;

/// One answered command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answered {
    /// The command id.
    pub id: String,
    /// When it finished, ms since the epoch (ids expire a dedupe window after this).
    pub at_ms: u64,
    /// The reply it got, given again to a re-delivery.
    pub reply: ReplyLine,
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    /// `commands.jsonl`.
    path: PathBuf,
    /// It, opened for appending.
    file: std::fs::File,
    /// Lines in the file now.
    lines: usize,
    /// Bytes in the file now.
    bytes: usize,
    /// Written since the last fsync.
    dirty: bool,
}

impl Journal {
    /// Opens the journal in `dir`, returns it with the ids still inside the window `window_ms`
    /// at `now_ms`, oldest first, and rewrites it to hold only those.
    pub fn open(
        dir: &Path,
        window_ms: u64,
        now_ms: u64,
    ) -> std::io::Result<(Journal, Vec<Answered>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut live = Vec::new();
        match std::fs::File::open(&path) {
            Ok(f) => {
                for line in std::io::BufReader::new(f).split(b'\n') {
                    let line = line?;
                    // Torn or foreign lines are skipped: a cache miss is the worst outcome.
                    if let Ok(a) = serde_json::from_slice::<Answered>(&line) {
                        if a.at_ms.saturating_add(window_ms) > now_ms {
                            live.push(a);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        live.sort_by_key(|a| a.at_ms);
        let (kept, bytes) = write_snapshot(&path, &live)?;
        let live = live.split_off(live.len() - kept);
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok((
            Journal {
                path,
                file,
                lines: live.len(),
                bytes,
                dirty: false,
            },
            live,
        ))
    }

    /// Appends one answered command. Not fsynced here: see [`Journal::sync`].
    pub fn append(&mut self, a: &Answered) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(a).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.lines += 1;
        self.bytes += line.len();
        self.dirty = true;
        Ok(())
    }

    /// True when the file holds more than twice `live` lines (and enough to be worth it), or
    /// twice what a rewrite keeps at most, so it stays bounded however many ids are live.
    pub fn wants_compaction(&self, live: usize) -> bool {
        (self.lines > 64 && self.lines > live.saturating_mul(2))
            || self.lines > 2 * MAX_KEPT
            || self.bytes > 2 * MAX_BYTES
    }

    /// Rewrites the journal to hold only `live` (oldest first).
    pub fn compact(&mut self, live: &[Answered]) -> std::io::Result<()> {
        let (kept, bytes) = write_snapshot(&self.path, live)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        self.lines = kept;
        self.bytes = bytes;
        self.dirty = false;
        Ok(())
    }

    /// What to fsync, when lines were appended since the last sync: a second handle on the
    /// file, for a blocking thread. An fsync on a board's SD card can take tens of
    /// milliseconds, too long to hold one of the async runtime's threads.
    pub fn to_sync(&mut self) -> std::io::Result<Option<std::fs::File>> {
        if !self.dirty {
            return Ok(None);
        }
        let f = self.file.try_clone()?;
        self.dirty = false;
        Ok(Some(f))
    }

    /// Flushes appended lines to the disk, if any were written since the last call.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Writes the newest of `live` (within [`MAX_KEPT`] and [`MAX_BYTES`]) to `path` atomically;
/// returns how many it kept and their size.
fn write_snapshot(path: &Path, live: &[Answered]) -> std::io::Result<(usize, usize)> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0usize;
    for a in live.iter().rev().take(MAX_KEPT) {
        let mut l = serde_json::to_vec(a).map_err(std::io::Error::other)?;
        l.push(b'\n');
        if bytes + l.len() > MAX_BYTES {
            break;
        }
        bytes += l.len();
        lines.push(l);
    }
    lines.reverse();
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        for l in &lines {
            f.write_all(l)?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok((lines.len(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(id: &str, at_ms: u64) -> Answered {
        Answered {
            id: id.into(),
            at_ms,
            reply: Ok(serde_json::json!({"n": id})).into(),
        }
    }

    #[test]
    fn ids_survive_a_reopen_and_expire_with_the_window() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, live) = Journal::open(d.path(), 1000, 10_000).unwrap();
        assert!(live.is_empty());
        j.append(&answered("old", 9_000)).unwrap();
        j.append(&answered("new", 10_500)).unwrap();
        drop(j);
        // A crash mid-write leaves a torn line behind.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(FILE))
            .unwrap();
        f.write_all(b"{\"id\":\"torn\",\"atMs\":1").unwrap();
        drop(f);
        let (_j, live) = Journal::open(d.path(), 1000, 10_600).unwrap();
        let ids: Vec<&str> = live.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["new"], "expired and torn lines are gone");
        let text = std::fs::read_to_string(d.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 1, "the file was rewritten: {text}");
    }

    #[test]
    fn only_what_was_appended_since_the_last_sync_is_handed_out_to_sync() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), 1000, 10_000).unwrap();
        assert!(j.to_sync().unwrap().is_none(), "nothing written yet");
        j.append(&answered("a", 10_000)).unwrap();
        let f = j.to_sync().unwrap().expect("a line to sync");
        f.sync_data().unwrap();
        assert!(j.to_sync().unwrap().is_none(), "already handed out");
        j.append(&answered("b", 10_001)).unwrap();
        assert!(j.to_sync().unwrap().is_some());
    }

    #[test]
    fn compaction_keeps_only_live_ids_and_the_newest_within_bounds() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(d.path(), u64::MAX / 2, 0).unwrap();
        for i in 0..200 {
            j.append(&answered(&format!("id{i}"), i)).unwrap();
        }
        assert!(j.wants_compaction(10));
        assert!(!j.wants_compaction(200), "every line is live");
        let live: Vec<Answered> = (190..200).map(|i| answered(&format!("id{i}"), i)).collect();
        j.compact(&live).unwrap();
        assert!(!j.wants_compaction(10));
        j.sync().unwrap();
        let (_j, back) = Journal::open(d.path(), u64::MAX / 2, 0).unwrap();
        assert_eq!(back.len(), 10);
        assert_eq!(back[0].id, "id190");

        let many: Vec<Answered> = (0..MAX_KEPT as u64 + 10)
            .map(|i| answered(&format!("m{i}"), i))
            .collect();
        assert_eq!(
            write_snapshot(&d.path().join("x"), &many).unwrap().0,
            MAX_KEPT
        );
    }
}

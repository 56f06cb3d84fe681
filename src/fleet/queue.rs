//! The outbox: replies and events produced while the broker is unreachable, kept on disk (one
//! file per message, written to a temporary name, fsynced and renamed) and delivered oldest first
//! after reconnecting. Bounded: beyond `max` messages the oldest is dropped and counted.

use super::session::Message;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest message file read back; anything larger is corrupt and discarded.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A bounded on-disk FIFO of messages.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max: usize,
    /// Sequence numbers on disk, oldest first.
    seqs: VecDeque<u64>,
    next: u64,
    /// Messages dropped (full outbox, or unreadable files) since the last [`Outbox::take_dropped`].
    dropped: u64,
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`, picking up what a previous run left.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<Outbox> {
        std::fs::create_dir_all(dir)?;
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            } else if name.ends_with(".tmp") {
                // A write interrupted before its rename: never acknowledged, safe to drop.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        seqs.sort_unstable();
        let next = seqs.last().map_or(1, |s| s + 1);
        let mut outbox = Outbox {
            dir: dir.to_path_buf(),
            max: max.max(1),
            seqs: seqs.into(),
            next,
            dropped: 0,
        };
        while outbox.seqs.len() > outbox.max {
            outbox.drop_oldest();
        }
        Ok(outbox)
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Changes the bound (a reloaded `fleet.outbox_max_messages`); beyond it the oldest go now.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        while self.seqs.len() > self.max {
            self.drop_oldest();
        }
    }

    /// Messages dropped since the last call; resets the count.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    fn drop_oldest(&mut self) {
        if let Some(seq) = self.seqs.pop_front() {
            let _ = std::fs::remove_file(self.path(seq));
            self.dropped += 1;
        }
    }

    /// Appends a message durably; drops the oldest when full.
    pub fn push(&mut self, msg: &Message) -> std::io::Result<()> {
        while self.seqs.len() >= self.max {
            self.drop_oldest();
        }
        let seq = self.next;
        self.next += 1;
        let tmp = self.dir.join(format!(".{seq:020}.tmp"));
        let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path(seq))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.seqs.push_back(seq);
        Ok(())
    }

    /// The oldest message and its sequence number, without removing it. Unreadable files are
    /// discarded (and counted as dropped).
    pub fn peek(&mut self) -> Option<(u64, Message)> {
        while let Some(&seq) = self.seqs.front() {
            let path = self.path(seq);
            let read = std::fs::metadata(&path)
                .ok()
                .filter(|m| m.len() <= MAX_FILE_BYTES)
                .and_then(|_| std::fs::read(&path).ok())
                .and_then(|b| serde_json::from_slice::<Message>(&b).ok());
            match read {
                Some(m) => return Some((seq, m)),
                None => {
                    tracing::warn!(file = %path.display(), "unreadable outbox entry discarded");
                    self.drop_oldest();
                }
            }
        }
        None
    }

    /// Removes a delivered message.
    pub fn remove(&mut self, seq: u64) {
        if self.seqs.front() == Some(&seq) {
            self.seqs.pop_front();
        } else {
            self.seqs.retain(|s| *s != seq);
        }
        let _ = std::fs::remove_file(self.path(seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> Message {
        Message {
            topic: format!("t/{n}"),
            payload: format!("{{\"n\":{n}}}"),
            retain: false,
            qos1: true,
            correlation: Some(vec![n as u8, 0xff]),
            user: vec![("id".into(), n.to_string())],
        }
    }

    #[test]
    fn survives_a_restart_and_delivers_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Outbox::open(dir.path(), 10).unwrap();
        for n in 0..3 {
            q.push(&msg(n)).unwrap();
        }
        drop(q);
        let mut q = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(q.len(), 3);
        let mut got = Vec::new();
        while let Some((seq, m)) = q.peek() {
            got.push(m);
            q.remove(seq);
        }
        assert_eq!(got, vec![msg(0), msg(1), msg(2)]);
        q.push(&msg(9)).unwrap();
        assert_eq!(q.peek().unwrap().1, msg(9));
    }

    #[test]
    fn is_bounded_and_counts_what_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Outbox::open(dir.path(), 3).unwrap();
        for n in 0..5 {
            q.push(&msg(n)).unwrap();
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_dropped(), 0);
        assert_eq!(q.peek().unwrap().1, msg(2));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        // A reload that lowers the bound drops the oldest at once.
        q.set_max(1);
        assert_eq!((q.len(), q.take_dropped()), (1, 2));
        assert_eq!(q.peek().unwrap().1, msg(4));
    }

    #[test]
    fn corrupt_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Outbox::open(dir.path(), 10).unwrap();
        q.push(&msg(1)).unwrap();
        q.push(&msg(2)).unwrap();
        std::fs::write(dir.path().join(format!("{:020}.json", 1)), b"garbage").unwrap();
        std::fs::write(dir.path().join(".00000000000000000099.tmp"), b"x").unwrap();
        let mut q = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(q.peek().unwrap().1, msg(2));
        assert_eq!(q.take_dropped(), 1);
    }
}

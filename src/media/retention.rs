//! Retention of recording segments, by age and by free space.
//!
//! [`plan`] is pure: given the segments on disk, the free space and the policy it says which files
//! to delete (oldest first, never the one being written) and whether recording must stop because
//! space is short even after deleting everything it may.

use super::recorder::SEGMENT_PREFIX;
use crate::config::RecordingConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// Last modification time.
    pub modified: SystemTime,
    /// Size in bytes.
    pub bytes: u64,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Files to delete, oldest first.
    pub delete: Vec<PathBuf>,
    /// Free space stays under the stop threshold even after the deletions.
    pub stop: bool,
}

const MIB: u64 = 1024 * 1024;

/// Decides what to delete. `free` is the free space in bytes now; `writing` is the segment being
/// written, which is never deleted.
pub fn plan(
    segments: &[Segment],
    now: SystemTime,
    free: u64,
    cfg: &RecordingConfig,
    writing: Option<&Path>,
) -> Plan {
    let mut sorted: Vec<&Segment> = segments
        .iter()
        .filter(|s| Some(s.path.as_path()) != writing)
        .collect();
    sorted.sort_by_key(|s| (s.modified, s.path.clone()));
    let mut plan = Plan::default();
    let mut free = free;
    for s in sorted {
        let too_old = !cfg.max_age.is_zero()
            && now.duration_since(s.modified).unwrap_or(Duration::ZERO) > cfg.max_age;
        let short = free < cfg.min_free_mb * MIB;
        if too_old || short {
            plan.delete.push(s.path.clone());
            free += s.bytes;
        }
    }
    plan.stop = free < cfg.stop_free_mb * MIB;
    plan
}

/// The segments in `dir` (files roombox wrote; nothing else there is touched).
pub fn scan(dir: &Path) -> Vec<Segment> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(SEGMENT_PREFIX))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| Segment {
                path: e.path(),
                modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                bytes: m.len(),
            })
        })
        .collect()
}

/// Free bytes for unprivileged writers on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Scans, plans and deletes. Returns the plan carried out.
pub fn enforce(dir: &Path, cfg: &RecordingConfig, writing: Option<&Path>) -> std::io::Result<Plan> {
    let free = free_bytes(dir)?;
    let p = plan(&scan(dir), SystemTime::now(), free, cfg, writing);
    for f in &p.delete {
        match std::fs::remove_file(f) {
            Ok(()) => tracing::info!(file = %f.display(), "retention deleted segment"),
            Err(e) => tracing::warn!(file = %f.display(), "retention could not delete: {e}"),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, age_s: u64, mib: u64, now: SystemTime) -> Segment {
        Segment {
            path: PathBuf::from(name),
            modified: now - Duration::from_secs(age_s),
            bytes: mib * MIB,
        }
    }

    fn cfg(max_age_s: u64, min_free: u64, stop_free: u64) -> RecordingConfig {
        RecordingConfig {
            max_age: Duration::from_secs(max_age_s),
            min_free_mb: min_free,
            stop_free_mb: stop_free,
            ..RecordingConfig::default()
        }
    }

    #[test]
    fn old_segments_go_and_young_ones_stay() {
        let now = SystemTime::now();
        let segs = [seg("a", 7200, 1, now), seg("b", 60, 1, now)];
        let p = plan(&segs, now, 10_000 * MIB, &cfg(3600, 100, 10), None);
        assert_eq!(p.delete, vec![PathBuf::from("a")]);
        assert!(!p.stop);
    }

    #[test]
    fn short_space_deletes_oldest_first_until_enough() {
        let now = SystemTime::now();
        let segs = [
            seg("new", 10, 50, now),
            seg("old", 30, 50, now),
            seg("mid", 20, 50, now),
        ];
        // 60 MiB free, want 100: deleting "old" (50) reaches 110.
        let p = plan(&segs, now, 60 * MIB, &cfg(0, 100, 10), None);
        assert_eq!(p.delete, vec![PathBuf::from("old")]);
        assert!(!p.stop);
    }

    #[test]
    fn the_segment_being_written_is_never_deleted() {
        let now = SystemTime::now();
        let segs = [seg("writing", 99_999, 500, now), seg("other", 5, 1, now)];
        let p = plan(&segs, now, 0, &cfg(60, 100, 10), Some(Path::new("writing")));
        assert_eq!(p.delete, vec![PathBuf::from("other")]);
        assert!(p.stop, "1 MiB freed is still under the 10 MiB stop line");
    }

    #[test]
    fn zero_max_age_keeps_everything_while_space_lasts() {
        let now = SystemTime::now();
        let segs = [seg("ancient", 10_000_000, 1, now)];
        let p = plan(&segs, now, 1000 * MIB, &cfg(0, 100, 10), None);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn scan_only_sees_roombox_segments() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("roombox-x-0001.mp4"), b"abc").unwrap();
        std::fs::write(d.path().join("notes.txt"), b"keep me").unwrap();
        let s = scan(d.path());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].bytes, 3);
        assert!(free_bytes(d.path()).unwrap() > 0);
    }
}

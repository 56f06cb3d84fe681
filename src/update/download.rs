//! Fetching an update into the state directory: resumed with an HTTP Range request from what
//! an earlier attempt left, bounded by the manifest's size and the free space, then checked
//! (size and SHA-256) before it is handed on. Nothing is installed here.
//!
//! Files live in one directory (`<state_dir>/update/`): `<sha256>.part` while it downloads,
//! `<sha256>.deb` once it verified. Other packages there are removed first, so at most one
//! download takes space.

use crate::command::UpdateManifest;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a download reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Bytes on disk of the total.
    Downloading { done: u64, total: u64 },
    /// All bytes are here; hashing.
    Verifying,
}

/// What to fetch and under which bounds.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// The checked manifest.
    pub manifest: UpdateManifest,
    /// Where the files go.
    pub dir: PathBuf,
    /// Free space to leave on that filesystem afterwards, bytes.
    pub reserve_bytes: u64,
    /// Longest wait for the next bytes.
    pub stall_timeout: Duration,
}

impl Fetch {
    /// The partial download.
    pub fn part_path(&self) -> PathBuf {
        self.dir.join(format!("{}.part", self.manifest.sha256))
    }

    /// The verified package.
    pub fn package_path(&self) -> PathBuf {
        self.dir.join(format!("{}.deb", self.manifest.sha256))
    }
}

/// Downloads (resuming) and verifies; returns the verified package's path. On a hash mismatch
/// the partial file is deleted, so the next attempt starts clean; on a cut it is kept, so the
/// next attempt resumes.
pub async fn fetch(f: &Fetch, mut report: impl FnMut(Progress)) -> Result<PathBuf, String> {
    let done = f.package_path();
    std::fs::create_dir_all(&f.dir).map_err(|e| format!("cannot make {}: {e}", f.dir.display()))?;
    if done.exists() && verify(&done, &f.manifest).await.is_ok() {
        return Ok(done);
    }
    remove_others(&f.dir, &f.manifest.sha256);
    let part = f.part_path();
    let size = f.manifest.size;
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > size {
        have = 0;
    }
    check_space(&f.dir, size - have, f.reserve_bytes)?;
    if have < size {
        // A server that refuses the range (416) gets one more try from the start.
        for attempt in 0..2 {
            match get(f, &part, have, &mut report).await {
                Err(Retry::FromStart) if attempt == 0 => have = 0,
                Err(Retry::FromStart) => return Err("the server refused every range".into()),
                Err(Retry::Fail(e)) => return Err(e),
                Ok(()) => break,
            }
        }
    }
    report(Progress::Verifying);
    if let Err(e) = verify(&part, &f.manifest).await {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, &done).map_err(|e| format!("cannot keep the package: {e}"))?;
    Ok(done)
}

enum Retry {
    FromStart,
    Fail(String),
}

/// One GET from byte `from`, appending to `part`.
async fn get(
    f: &Fetch,
    part: &Path,
    from: u64,
    report: &mut impl FnMut(Progress),
) -> Result<(), Retry> {
    let fail = |m: String| Retry::Fail(m);
    let size = f.manifest.size;
    let mut builder = reqwest::Client::builder().connect_timeout(f.stall_timeout);
    if f.manifest.url.starts_with("http://") {
        // No TLS for plain HTTP, so no system CA certificates needed: a minimal Debian without
        // ca-certificates otherwise cannot even make the client.
        builder = builder.tls_certs_only(std::iter::empty());
    }
    let client = builder.build().map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        fail(format!(
            "cannot make an HTTP client ({e}{cause}); for https:// the box needs CA certificates (the ca-certificates package)"
        ))
    })?;
    let mut req = client.get(&f.manifest.url);
    if from > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
    }
    let mut resp = tokio::time::timeout(f.stall_timeout, req.send())
        .await
        .map_err(|_| fail(format!("{} did not answer", f.manifest.url)))?
        .map_err(|e| fail(format!("cannot fetch {}: {e}", f.manifest.url)))?;
    let status = resp.status().as_u16();
    let start = match status {
        206 => {
            let range = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((_, Some(total))) if total != size => {
                    return Err(fail(format!(
                        "the server's file is {total} bytes; the manifest says {size}"
                    )))
                }
                Some((start, _)) if start == from => start,
                _ => return Err(Retry::FromStart),
            }
        }
        200 => {
            if let Some(len) = resp.content_length().filter(|l| *l != size) {
                return Err(fail(format!(
                    "the server's file is {len} bytes; the manifest says {size}"
                )));
            }
            0
        }
        416 => return Err(Retry::FromStart),
        s => return Err(fail(format!("{} answered HTTP {s}", f.manifest.url))),
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(|e| fail(format!("cannot open {}: {e}", part.display())))?;
    file.set_len(start)
        .map_err(|e| fail(format!("cannot write {}: {e}", part.display())))?;
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(start))
        .map_err(|e| fail(format!("cannot write {}: {e}", part.display())))?;
    let mut have = start;
    let mut shown = (u64::MAX, Instant::now());
    loop {
        let chunk = tokio::time::timeout(f.stall_timeout, resp.chunk())
            .await
            .map_err(|_| {
                fail(format!(
                    "the download stalled at {have} of {size} bytes for {}",
                    humantime::format_duration(f.stall_timeout)
                ))
            })?
            .map_err(|e| fail(format!("the download broke at {have} of {size} bytes: {e}")))?;
        let Some(chunk) = chunk else { break };
        have += chunk.len() as u64;
        if have > size {
            drop(file);
            let _ = std::fs::remove_file(part);
            return Err(fail(format!(
                "the server sent more than the manifest's {size} bytes"
            )));
        }
        file.write_all(&chunk)
            .map_err(|e| fail(format!("cannot write {}: {e}", part.display())))?;
        let pct = have * 100 / size;
        if pct != shown.0 && (shown.1.elapsed() >= Duration::from_millis(200) || have == size) {
            shown = (pct, Instant::now());
            report(Progress::Downloading {
                done: have,
                total: size,
            });
        }
    }
    file.sync_all()
        .map_err(|e| fail(format!("cannot write {}: {e}", part.display())))?;
    if have != size {
        return Err(fail(format!(
            "the server closed the download at {have} of {size} bytes"
        )));
    }
    Ok(())
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): the start, and the total when known.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Checks a file's size and SHA-256 against the manifest.
pub async fn verify(path: &Path, m: &UpdateManifest) -> Result<(), String> {
    let path = path.to_path_buf();
    let (size, want) = (m.size, m.sha256.clone());
    tokio::task::spawn_blocking(move || {
        let len = std::fs::metadata(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len != size {
            return Err(format!(
                "the package is {len} bytes; the manifest says {size}"
            ));
        }
        let got = sha256_file(&path)?;
        if got != want {
            return Err(format!(
                "SHA-256 mismatch: the package's is {got}; the manifest says {want}"
            ));
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("the check did not finish: {e}"))?
}

/// The SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Fails unless `need` bytes plus the reserve are free on `dir`'s filesystem.
fn check_space(dir: &Path, need: u64, reserve: u64) -> Result<(), String> {
    let Ok(s) = nix::sys::statvfs::statvfs(dir) else {
        return Ok(());
    };
    // u64 here; narrower on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let free = s.blocks_available() as u64 * s.fragment_size() as u64;
    if free < need.saturating_add(reserve) {
        return Err(format!(
            "not enough space in {}: the download needs {} MiB and update.reserve_bytes keeps {} MiB free, but {} MiB are free",
            dir.display(),
            need.div_ceil(1 << 20),
            reserve / (1 << 20),
            free / (1 << 20)
        ));
    }
    Ok(())
}

/// Removes packages and partial downloads other than `keep`'s.
fn remove_others(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let ours = name.ends_with(".part") || name.ends_with(".deb");
        if ours && !name.starts_with(keep) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn space_is_checked_against_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_space(dir.path(), 1, 0).is_ok());
        let e = check_space(dir.path(), u64::MAX / 2, 0).unwrap_err();
        assert!(e.contains("not enough space"), "{e}");
    }
}

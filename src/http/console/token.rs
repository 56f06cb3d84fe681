//! The pairing tokens: the console's (every route) and the viewers' (`/watch` and HLS only).
//!
//! Bound beyond loopback, the console token is `http.token`, else the file `http.token_file`,
//! else `<state_dir>/console-token`, which `roombox console-token` prints and rotates. The
//! viewers' token lives in `<state_dir>/viewer-token` (`roombox console-token --viewer`). Files
//! are created mode 0600 with a random token when missing, and re-read when they change, so a
//! rotation takes effect at once on a running box.

use crate::config::Config;
use crate::sync::lock;
use rand::Rng;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The state-dir file of the console's pairing token.
pub const CONSOLE_TOKEN_FILE: &str = "console-token";
/// The state-dir file of the viewers' token.
pub const VIEWER_TOKEN_FILE: &str = "viewer-token";

/// Where a token comes from.
#[derive(Debug)]
pub enum TokenSource {
    /// A literal from the configuration.
    Fixed(String),
    /// A file, re-read when its modification time changes.
    File {
        path: PathBuf,
        /// Its last read: modification time and token. A std Mutex: held for a compare, never
        /// across an await.
        cache: Mutex<Option<(SystemTime, String)>>,
    },
}

impl TokenSource {
    /// A file source.
    pub fn file(path: PathBuf) -> TokenSource {
        TokenSource::File {
            path,
            cache: Mutex::new(None),
        }
    }

    /// The token now; none when its file cannot be read (then nothing matches it).
    pub fn current(&self) -> Option<String> {
        match self {
            TokenSource::Fixed(t) => Some(t.clone()),
            TokenSource::File { path, cache } => {
                let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
                let mut c = lock(cache);
                if let Some((at, t)) = c.as_ref() {
                    if *at == mtime {
                        return Some(t.clone());
                    }
                }
                let t = std::fs::read_to_string(path).ok()?.trim().to_string();
                if t.is_empty() {
                    return None;
                }
                *c = Some((mtime, t.clone()));
                Some(t)
            }
        }
    }
}

/// The tokens a server bound beyond loopback checks.
#[derive(Debug)]
pub struct Tokens {
    /// Opens everything.
    pub console: TokenSource,
    /// Opens `/watch` and HLS only.
    pub viewer: TokenSource,
}

/// Which token a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The console's: everything.
    Console,
    /// The viewers': the viewers' page, its chat and HLS.
    Viewer,
}

/// A new random token: 32 characters of `[A-Za-z0-9]` (about 190 bits).
pub fn generate() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Writes `token` to `path`, mode 0600, replacing it atomically (a reader never sees half).
pub fn write(path: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    give_to_dirs_owner(&tmp)?;
    std::fs::rename(&tmp, path)
}

/// `roombox console-token` typed as root on a board writes into the service's state directory:
/// the file goes to that directory's owner (the `roombox` user), or the agent could not read the
/// token it is meant to accept. Anyone else writes as themselves, as before.
fn give_to_dirs_owner(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = file.parent() else {
        return Ok(());
    };
    let (writer, dir_meta) = (std::fs::metadata(file)?.uid(), std::fs::metadata(dir)?);
    if writer == 0 && dir_meta.uid() != 0 {
        std::os::unix::fs::chown(file, Some(dir_meta.uid()), Some(dir_meta.gid()))?;
    }
    Ok(())
}

/// The token in `path`, created with a random one when the file is missing or empty.
pub fn ensure(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => {
            let t = generate();
            write(path, &t)?;
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = generate();
            write(path, &t)?;
            Ok(t)
        }
        Err(e) => Err(e),
    }
}

/// Where the console's token comes from for `config`.
pub fn console_source(config: &Config) -> TokenSource {
    let http = &config.http;
    if !http.token.is_empty() {
        TokenSource::Fixed(http.token.clone())
    } else if !http.token_file.as_os_str().is_empty() {
        TokenSource::file(http.token_file.clone())
    } else {
        TokenSource::file(config.state_dir().join(CONSOLE_TOKEN_FILE))
    }
}

/// The tokens for a server bound beyond loopback; the state-dir files are created if missing.
pub fn for_config(config: &Config) -> anyhow::Result<Tokens> {
    let console = console_source(config);
    if let TokenSource::File { path, .. } = &console {
        if path.starts_with(config.state_dir()) {
            ensure(path).map_err(|e| anyhow::anyhow!("console token {}: {e}", path.display()))?;
        } else if console.current().is_none() {
            anyhow::bail!("http.token_file {}: cannot read a token", path.display());
        }
    }
    let viewer_path = config.state_dir().join(VIEWER_TOKEN_FILE);
    ensure(&viewer_path)
        .map_err(|e| anyhow::anyhow!("viewer token {}: {e}", viewer_path.display()))?;
    Ok(Tokens {
        console,
        viewer: TokenSource::file(viewer_path),
    })
}

/// `roombox console-token`: prints the console's (or with `viewer`, the viewers') token,
/// creating it if missing; with `rotate`, replaces it first. A token set in the configuration
/// (`http.token`, `http.token_file`) is not the box's to rotate: that is an error that says so.
pub fn cli(config: &Config, viewer: bool, rotate: bool) -> anyhow::Result<String> {
    let path = if viewer {
        config.state_dir().join(VIEWER_TOKEN_FILE)
    } else {
        match console_source(config) {
            TokenSource::File { path, .. } if path.starts_with(config.state_dir()) => path,
            TokenSource::Fixed(t) if !rotate => return Ok(t),
            TokenSource::File { path, .. } if !rotate => {
                return std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            _ => anyhow::bail!(
                "the console token is set in the configuration (http.token or http.token_file): \
                 change it there"
            ),
        }
    };
    if rotate {
        let t = generate();
        write(&path, &t).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(t);
    }
    ensure(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_token_file_is_private_and_a_rotation_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/console-token");
        let first = ensure(&path).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(ensure(&path).unwrap(), first, "kept, not replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let src = TokenSource::file(path.clone());
        assert_eq!(src.current().as_deref(), Some(first.as_str()));
        // A rotation a moment later; some filesystems keep mtimes coarse, so wait one tick.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(&path, "second-token-0123456789").unwrap();
        assert_eq!(src.current().as_deref(), Some("second-token-0123456789"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(src.current(), None, "a missing file matches nothing");
    }

    #[test]
    fn the_cli_rotates_only_the_boxs_own_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.device.state_dir = dir.path().to_path_buf();
        let a = cli(&c, false, false).unwrap();
        assert_eq!(cli(&c, false, false).unwrap(), a);
        let b = cli(&c, false, true).unwrap();
        assert_ne!(a, b);
        let v = cli(&c, true, false).unwrap();
        assert_ne!(v, b, "the viewers' token is another");
        c.http.token = "configured-token-0123".into();
        assert_eq!(cli(&c, false, false).unwrap(), "configured-token-0123");
        assert!(cli(&c, false, true).is_err());
    }
}

//! `set-config`: replace the fleet drop-in `config.d/90-fleet.toml` beside the main config file.
//!
//! The candidate is validated merged with the main file and the other drop-ins before anything is
//! written; it is then written atomically (temporary file, fsync, rename, fsync of the directory),
//! the agent reloads, and if the agent does not report healthy for [`SETTLE`] within the timeout
//! the previous drop-in is restored (or removed, if there was none) and reloaded again.

use crate::agent::AgentHandle;
use crate::command::{Command, CommandError, ErrorCode};
use crate::event::Event;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The drop-in the fleet owns.
pub const DROPIN: &str = "90-fleet.toml";
/// How long health must hold after a reload to count as healthy.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Where the fleet drop-in lives for a main config file.
pub fn dropin_path(main: &Path) -> PathBuf {
    main.parent()
        .unwrap_or_else(|| Path::new("."))
        .join("config.d")
        .join(DROPIN)
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn internal(message: impl Into<String>) -> CommandError {
    CommandError::new(ErrorCode::Internal, message)
}

/// Carries out one `set-config`.
pub async fn apply(
    agent: &AgentHandle,
    main: Option<&Path>,
    text: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CommandError> {
    let Some(main) = main else {
        return Err(CommandError::new(
            ErrorCode::Unavailable,
            "the agent runs on its embedded default configuration; set-config needs a config file",
        ));
    };
    let path = dropin_path(main);
    if let Err(errors) = crate::config::load_candidate(main, &path, text) {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(CommandError::new(
            ErrorCode::InvalidArgument,
            format!(
                "configuration refused, nothing changed: {}",
                list.join("; ")
            ),
        ));
    }
    let previous = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(internal(format!("cannot read {}: {e}", path.display()))),
    };
    write_atomic(&path, text)
        .map_err(|e| internal(format!("cannot write {}: {e}", path.display())))?;
    match reload_and_watch(agent, timeout).await {
        Ok(()) => Ok(serde_json::json!({
            "applied": true,
            "file": path.display().to_string(),
        })),
        Err(why) => {
            let restored = match &previous {
                Some(t) => write_atomic(&path, t),
                None => std::fs::remove_file(&path),
            };
            let _ = agent.send(Command::ReloadConfig).await;
            let tail = match restored {
                Ok(()) => "rolled back to the previous configuration".to_string(),
                Err(e) => format!("rollback failed: {e}"),
            };
            Err(internal(format!("{why}; {tail}")))
        }
    }
}

/// Reloads and waits for the outcome: the reload is accepted and health holds for [`SETTLE`]
/// within `timeout`.
async fn reload_and_watch(agent: &AgentHandle, timeout: Duration) -> Result<(), String> {
    let mut events = agent.subscribe();
    let mut state = agent.state();
    agent
        .send(Command::ReloadConfig)
        .await
        .map_err(|e| format!("reload refused: {}", e.message))?;
    let deadline = tokio::time::Instant::now() + timeout;
    // The reload outcome comes as an event.
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err("the agent did not reload within the timeout".into()),
            Ok(Ok(Event::ConfigReloaded)) => break,
            Ok(Ok(Event::Error { code, message })) if code == "config" => {
                return Err(format!("the agent refused the configuration: {message}"))
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return Err("the agent stopped".into()),
        }
    }
    let mut healthy_since: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        let ok = state.borrow_and_update().health.ok;
        healthy_since = match (ok, healthy_since) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
            (false, _) => None,
        };
        if let Some(t) = healthy_since {
            if now.duration_since(t) >= SETTLE {
                return Ok(());
            }
        }
        if now >= deadline {
            let problems = state.borrow().health.problems.join(", ");
            return Err(format!(
                "the agent was not healthy within {}: {problems}",
                humantime::format_duration(Duration::from_secs(timeout.as_secs().max(1)))
            ));
        }
        let wake = healthy_since
            .map(|t| t + SETTLE)
            .unwrap_or(deadline)
            .min(deadline);
        let _ = tokio::time::timeout_at(wake, state.changed()).await;
    }
}

//! The hand-over between the unprivileged agent and the root installer (`roombox
//! update-apply`, run by `roombox-update.service` when `roombox-update.path` sees a request).
//!
//! Files in `<state_dir>/update/` (the agent's directory):
//! - `request.json` ([`Request`]), written by the agent: install this verified package. The
//!   installer trusts nothing in it: it copies the package into its own directory and checks
//!   the manifest's signature and hash again, as root, before `dpkg` sees it.
//! - `trial.json` ([`Trial`]), written by the installer once the new package is installed: the
//!   agent that starts must prove health.
//! - `healthy` (the version), written by that agent once it has: the installer commits.
//! - `outcome.json` ([`Outcome`]), written by the installer when it committed or rolled back:
//!   the next agent reports it to the fleet and removes it.
//!
//! The installer writes into this directory only through a new temporary file and a rename, so
//! a link planted there cannot redirect its writes.

use crate::command::UpdateManifest;
use crate::event::UpdatePhase;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The agent's request to install.
pub const REQUEST: &str = "request.json";
/// The installer's note that a new version is on trial.
pub const TRIAL: &str = "trial.json";
/// The new agent's proof of health.
pub const HEALTHY: &str = "healthy";
/// The installer's outcome, until an agent reported it.
pub const OUTCOME: &str = "outcome.json";

/// Install this package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The signed manifest, checked again by the installer.
    pub manifest: UpdateManifest,
    /// The verified package in the agent's directory.
    pub package: PathBuf,
    /// The room the agent was in (a forced update), to be back in after the restart.
    #[serde(default)]
    pub room: Option<String>,
}

/// A version on trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// The version installed.
    pub version: String,
    /// The room to be back in.
    #[serde(default)]
    pub room: Option<String>,
    /// A/B updates: the slot the previous version runs from. An agent booted from it (the
    /// bootloader fell back before the installer could tell) is not the one on trial.
    #[serde(default)]
    pub old_slot: Option<String>,
}

impl Trial {
    /// Whether the agent of a boot with this kernel command line is the one on trial: not when
    /// the bootloader said (`rauc.slot=`, as RAUC's bootloader integrations pass it) that it
    /// booted the old slot.
    pub fn applies(&self, cmdline: &str) -> bool {
        let booted = cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rauc.slot="));
        match (&self.old_slot, booted) {
            (Some(old), Some(booted)) => old != booted,
            _ => true,
        }
    }
}

/// How an update ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// HEALTHY, ROLLED_BACK or FAILED.
    pub state: UpdatePhase,
    /// The version that was tried.
    pub version: String,
    /// Why, for a rollback or a failure.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Writes `bytes` to `path` through a new temporary file beside it (never following a link
/// planted at either name), fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes a value as JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    write_atomic(
        path,
        &serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?,
    )
}

/// Reads a JSON file; none when it is absent or not understood (a torn or foreign file is
/// treated as absent, never as an instruction).
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() > 256 * 1024 {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// The installer's outcome, taken: removed once read, so it is reported once.
pub fn take_outcome(dir: &Path) -> Option<Outcome> {
    let outcome = read_json::<Outcome>(&dir.join(OUTCOME));
    if outcome.is_some() {
        let _ = std::fs::remove_file(dir.join(OUTCOME));
    }
    outcome
}

/// The agent's side at start-up: a trial to prove and an outcome to report (taken: the outcome
/// file is removed once read, so it is reported once).
pub fn resume(dir: &Path) -> (Option<Trial>, Option<Outcome>) {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let trial = read_json::<Trial>(&dir.join(TRIAL)).filter(|t| t.applies(&cmdline));
    let outcome = take_outcome(dir);
    // A proof written by an earlier run of this version does not count for a new trial.
    if trial.is_some() {
        let _ = std::fs::remove_file(dir.join(HEALTHY));
    }
    (trial, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_booted_from_the_old_slot_does_not_take_the_trial() {
        let mut t = Trial {
            version: "0.2.0".into(),
            room: None,
            old_slot: Some("A".into()),
        };
        assert!(!t.applies("console=ttyS0 rauc.slot=A root=/dev/mmcblk0p2"));
        assert!(t.applies("console=ttyS0 rauc.slot=B root=/dev/mmcblk0p3"));
        assert!(t.applies("console=ttyS0"), "no word from the bootloader");
        t.old_slot = None;
        assert!(t.applies("rauc.slot=A"), "a package's trial");
    }
}

//! `roombox update-apply`: the root installer. `roombox-update.path` starts it (through
//! `roombox-update.service`) when the agent leaves a request, and the service runs it at every
//! boot too, so an install cut by a power loss goes on from its [`Marker`].
//!
//! It trusts nothing the unprivileged agent wrote: the package is copied into the installer's
//! own directory and its size, SHA-256 and manifest signature (with the fleet key of the
//! root-owned configuration) are checked there, then the [`Method`] checks what the package is
//! before installing it.
//!
//! Two methods (`update.method`): `deb` ([`super::deb::Deb`]: `dpkg -i`, the unit restarts, the
//! previous `.deb` goes back on a rollback) and `rauc` ([`super::rauc::Rauc`]: a signed bundle
//! into the other slot, a reboot, `mark-good` after the proof, or back to the old slot). The
//! machine's side ([`System`]) is a trait so the step sequence and its resumption are tested
//! without systemd; [`super::deb::Host`] is the real one.

use super::install::{self, Outcome, Request, Trial};
use super::marker::{on_slot, verdict, Marker, Phase, Seen, SlotStep, Verdict};
use crate::config::Config;
use crate::event::UpdatePhase;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The installer's own directory (root, 0700).
pub const ROOT_DIR: &str = "/var/lib/roombox-update";
/// The package name.
pub const PACKAGE: &str = "roombox";
/// The agent's unit.
pub const UNIT: &str = "roombox.service";

/// What the installer watches on the machine: the agent's unit, the boot, the clock.
pub trait System {
    /// The agent unit's restart count and whether it failed.
    fn unit(&self) -> (u32, bool);
    /// Restarts the agent's unit (after clearing a failed state).
    fn restart_unit(&self);
    /// This boot's id.
    fn boot_id(&self) -> String;
    /// The time, ms since the epoch.
    fn now_ms(&self) -> u64 {
        crate::model::now_ms()
    }
    /// Waits between looks at a trial.
    fn pause(&self) {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// When the version just installed (or put back) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Now: the package manager restarted the agent's unit.
    Now,
    /// After a reboot into the other slot.
    AfterReboot,
}

/// What staging found: the version to roll back to, and the slot it runs from (A/B updates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The running version.
    pub previous_version: String,
    /// The booted slot (its bootname), to fall back to; none for a package manager.
    pub slot: Option<String>,
}

/// How a version is installed, kept and put back: [`super::deb::Deb`] (dpkg) or
/// [`super::rauc::Rauc`] (A/B slots). The installer does the rest: the request, the checks of
/// the manifest, the marker, the trial and the outcome.
pub trait Method<S> {
    /// The checked package's file name in the installer's directory.
    fn file_name(&self) -> &'static str;
    /// Checks the package at `new` is roombox `version`, and keeps what a rollback needs in
    /// `root`.
    fn stage(&self, sys: &S, root: &Path, new: &Path, version: &str) -> Result<Staged, String>;
    /// Installs the package at `new`.
    fn install(&self, sys: &S, root: &Path, new: &Path) -> Result<Start, String>;
    /// Keeps the version that proved healthy.
    fn commit(&self, sys: &S, root: &Path, new: &Path) -> Result<(), String>;
    /// Puts the previous version back.
    fn roll_back(&self, sys: &S, root: &Path, m: &Marker) -> Result<Start, String>;
    /// The booted slot's bootname (A/B updates); none for a package manager. An error stops
    /// the run: without knowing the slot, an install could go into the wrong one.
    fn booted(&self, _sys: &S) -> Result<Option<String>, String> {
        Ok(None)
    }
    /// Reboots the machine.
    fn reboot(&self, _sys: &S) -> Result<(), String> {
        Err("this update method does not reboot".into())
    }
    /// Called when there is nothing to do: confirms the running version (an A/B bootloader's
    /// boot counter).
    fn settle(&self, _sys: &S) {}
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// No request and no install in progress.
    Nothing,
    /// The new version proved healthy and is kept.
    Committed(String),
    /// The previous version is back, for this reason.
    RolledBack(String),
    /// The request was refused before anything was installed.
    Refused(String),
    /// The machine reboots into the other slot; the run at the next boot goes on.
    Rebooting(String),
}

/// The installer: its directory, the agent's, and the configuration (fleet key, bounds,
/// deadline).
pub struct Installer<S: System, M: Method<S>> {
    pub sys: S,
    pub method: M,
    pub root: PathBuf,
    pub agent: PathBuf,
    pub config: Config,
}

impl<S: System, M: Method<S>> Installer<S, M> {
    fn marker_path(&self) -> PathBuf {
        self.root.join("marker.json")
    }
    fn new_package(&self) -> PathBuf {
        self.root.join(self.method.file_name())
    }

    fn save(&self, m: &Marker) -> Result<(), String> {
        install::write_json(&self.marker_path(), m)
            .map_err(|e| format!("cannot write {}: {e}", self.marker_path().display()))
    }

    /// Takes the request or goes on with the install in progress, to its end.
    pub fn run(&self) -> Result<Ran, String> {
        std::fs::create_dir_all(&self.root)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| format!("cannot make {}: {e}", self.root.display()))?;
        let mut m = match install::read_json::<Marker>(&self.marker_path()) {
            Some(m) => m,
            None => match self.stage() {
                Ok(Some(m)) => m,
                Ok(None) => {
                    self.method.settle(&self.sys);
                    return Ok(Ran::Nothing);
                }
                Err(why) => {
                    self.tell(UpdatePhase::Failed, &self.requested_version(), Some(&why));
                    let _ = std::fs::remove_file(self.agent.join(install::REQUEST));
                    let _ = std::fs::remove_file(self.taken_request());
                    let _ = std::fs::remove_file(self.new_package());
                    return Ok(Ran::Refused(why));
                }
            },
        };
        let (restarts, _) = self.sys.unit();
        m.on_start(&self.sys.boot_id(), self.sys.now_ms(), restarts);
        if let Some(booted) = self.method.booted(&self.sys)? {
            if on_slot(&mut m, &booted, self.sys.now_ms(), restarts) == SlotStep::Reboot {
                return self.reboot(&m);
            }
        }
        self.save(&m)?;
        loop {
            match m.phase {
                Phase::Staged => {
                    tracing::info!(version = %m.version, "update: installing");
                    // The note is there before the new version's agent starts.
                    let trial = Trial {
                        version: m.version.clone(),
                        room: m.room.clone(),
                        old_slot: m.slot.clone(),
                    };
                    let _ = std::fs::remove_file(self.agent.join(install::HEALTHY));
                    self.write_for_agent(install::TRIAL, &trial)
                        .map_err(|e| format!("cannot write the trial note: {e}"))?;
                    match self
                        .method
                        .install(&self.sys, &self.root, &self.new_package())
                    {
                        Ok(Start::Now) => {
                            m.phase = Phase::Trial;
                            m.trial_started_ms = self.sys.now_ms();
                            m.restarts_base = self.sys.unit().0;
                        }
                        Ok(Start::AfterReboot) => {
                            m.phase = Phase::Trial;
                            return self.reboot(&m);
                        }
                        Err(e) => m.roll_back(format!("could not install {}: {e}", m.version)),
                    }
                }
                Phase::Trial => {
                    let deadline = self.config.update.health_deadline.as_millis() as u64;
                    loop {
                        let (restarts, failed) = self.sys.unit();
                        let seen = Seen {
                            healthy: std::fs::read_to_string(self.agent.join(install::HEALTHY))
                                .ok()
                                .map(|s| s.trim().to_string()),
                            restarts,
                            failed,
                        };
                        match verdict(&m, &seen, self.sys.now_ms(), deadline) {
                            Verdict::Wait => self.sys.pause(),
                            Verdict::Commit => {
                                m.phase = Phase::Committing;
                                break;
                            }
                            Verdict::RollBack(why) => {
                                m.roll_back(why);
                                break;
                            }
                        }
                    }
                }
                Phase::RollingBack => {
                    let why = m.reason.clone().unwrap_or_default();
                    tracing::warn!(version = %m.version, "update: rolling back: {why}");
                    // No trial note for the previous agent: it must not prove the version it
                    // replaces.
                    let _ = std::fs::remove_file(self.agent.join(install::TRIAL));
                    let _ = std::fs::remove_file(self.agent.join(install::HEALTHY));
                    let start = self
                        .method
                        .roll_back(&self.sys, &self.root, &m)
                        .map_err(|e| format!("cannot put {} back: {e}", m.previous_version))?;
                    if start == Start::AfterReboot {
                        return self.reboot(&m);
                    }
                    self.tell(UpdatePhase::RolledBack, &m.version, Some(&why));
                    let _ = std::fs::remove_file(self.new_package());
                    let _ = std::fs::remove_file(self.marker_path());
                    self.sys.restart_unit();
                    return Ok(Ran::RolledBack(why));
                }
                Phase::Committing => {
                    self.method
                        .commit(&self.sys, &self.root, &self.new_package())?;
                    let _ = std::fs::remove_file(self.new_package());
                    let _ = std::fs::remove_file(self.agent.join(install::TRIAL));
                    let _ = std::fs::remove_file(self.agent.join(install::HEALTHY));
                    let _ = std::fs::remove_file(self.marker_path());
                    tracing::info!(version = %m.version, "update: committed");
                    return Ok(Ran::Committed(m.version));
                }
            }
            self.save(&m)?;
        }
    }

    /// Saves the marker and reboots into the slot the bootloader picks; the run at the next
    /// boot goes on from the marker.
    fn reboot(&self, m: &Marker) -> Result<Ran, String> {
        self.save(m)?;
        tracing::info!(version = %m.version, phase = ?m.phase, "update: rebooting");
        self.method.reboot(&self.sys)?;
        Ok(Ran::Rebooting(m.version.clone()))
    }

    fn requested_version(&self) -> String {
        install::read_json::<Request>(&self.taken_request())
            .or_else(|| install::read_json::<Request>(&self.agent.join(install::REQUEST)))
            .map(|r| r.manifest.version)
            .unwrap_or_default()
    }

    /// The request once taken from the agent's directory, until it is staged.
    fn taken_request(&self) -> PathBuf {
        self.root.join(install::REQUEST)
    }

    /// Leaves an outcome for the agent (it reports it and removes it).
    fn tell(&self, state: UpdatePhase, version: &str, reason: Option<&str>) {
        let o = Outcome {
            state,
            version: version.to_string(),
            reason: reason.map(str::to_string),
        };
        if let Err(e) = self.write_for_agent(install::OUTCOME, &o) {
            tracing::error!("update: cannot leave the outcome for the agent: {e}");
        }
    }

    /// Writes a file into the agent's directory that the agent (another user) reads and
    /// removes: owned by the directory's owner.
    fn write_for_agent<T: serde::Serialize>(&self, name: &str, v: &T) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let path = self.agent.join(name);
        install::write_json(&path, v)?;
        let dir = std::fs::metadata(&self.agent)?;
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(dir.uid()), Some(dir.gid()))?;
        }
        Ok(())
    }

    /// Takes the agent's request: copies and checks the package, keeps the previous one, and
    /// writes the marker. None when there is no request.
    ///
    /// The request leaves the agent's directory first, into the installer's own (the agent
    /// calls an update failed when no installer took it within two minutes, and the checks and
    /// keeping the previous package can take longer on a slow board: 143 s in the emulated box
    /// under load). A power cut before the marker is written stages the taken copy again.
    fn stage(&self) -> Result<Option<Marker>, String> {
        let path = self.agent.join(install::REQUEST);
        let taken = self.taken_request();
        if path.exists() {
            let req: Request =
                install::read_json(&path).ok_or("the install request is not readable")?;
            install::write_json(&taken, &req)
                .map_err(|e| format!("cannot take the install request: {e}"))?;
            let _ = std::fs::remove_file(&path);
        }
        let Some(req) = install::read_json::<Request>(&taken) else {
            return Ok(None);
        };
        let m = &req.manifest;
        let u = &self.config.update;
        let key = crate::config::parse_public_key(&self.config.fleet.signing.public_key).ok();
        super::manifest::check(m, key.as_ref(), u.allow_unsigned, u.max_bytes)
            .map_err(|e| e.message)?;
        let new = self.new_package();
        copy_bounded(&req.package, &new, m.size)?;
        let got = super::download::sha256_file(&new)?;
        if got != m.sha256 {
            return Err(format!(
                "the package's SHA-256 is {got}; the manifest says {}",
                m.sha256
            ));
        }
        let staged = self.method.stage(&self.sys, &self.root, &new, &m.version)?;
        let marker = Marker {
            phase: Phase::Staged,
            version: m.version.clone(),
            previous_version: staged.previous_version,
            slot: staged.slot,
            room: req.room.clone(),
            trial_started_ms: 0,
            restarts_base: 0,
            boot_id: self.sys.boot_id(),
            trial_boots: 0,
            reason: None,
        };
        self.save(&marker)?;
        let _ = std::fs::remove_file(&taken);
        Ok(Some(marker))
    }
}

/// Copies at most `size` bytes (one more means the file is not the package) into a new file.
fn copy_bounded(from: &Path, to: &Path, size: u64) -> Result<(), String> {
    let f =
        std::fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut bytes = Vec::new();
    f.take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if bytes.len() as u64 != size {
        return Err(format!(
            "the package is not {size} bytes as the manifest says"
        ));
    }
    install::write_atomic(to, &bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

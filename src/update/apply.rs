//! `roombox update-apply`: the root installer. `roombox-update.path` starts it (through
//! `roombox-update.service`) when the agent leaves a request, and the service runs it at every
//! boot too, so an install cut by a power loss goes on from its [`Marker`].
//!
//! It trusts nothing the unprivileged agent wrote: the package is copied into the installer's
//! own directory and its size, SHA-256, manifest signature (with the fleet key of the root-owned
//! configuration), package name and version are checked there before `dpkg` sees it.
//!
//! The package to roll back to: the `.deb` of the last committed update, kept as
//! `current.deb`; before the first update, the installed package from apt's cache, else rebuilt
//! from dpkg's database ([`super::repack`]). The machine's side ([`System`]) is a trait so the
//! step sequence and its resumption are tested without dpkg; [`Dpkg`] is the real one.

use super::install::{self, Outcome, Request, Trial};
use super::marker::{verdict, Marker, Phase, Seen, Verdict};
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

/// What the installer needs of the machine.
pub trait System {
    /// The installed version of the package, if installed.
    fn installed_version(&self) -> Option<String>;
    /// A control field of a `.deb`.
    fn deb_field(&self, deb: &Path, field: &str) -> Result<String, String>;
    /// Installs a `.deb` (which restarts the agent's unit).
    fn install(&self, deb: &Path) -> Result<(), String>;
    /// Writes the installed package as a `.deb` to `out`.
    fn keep_installed(&self, out: &Path) -> Result<(), String>;
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
}

/// The installer: its directory, the agent's, and the configuration (fleet key, bounds,
/// deadline).
pub struct Installer<S: System> {
    pub sys: S,
    pub root: PathBuf,
    pub agent: PathBuf,
    pub config: Config,
}

impl<S: System> Installer<S> {
    fn marker_path(&self) -> PathBuf {
        self.root.join("marker.json")
    }
    fn new_deb(&self) -> PathBuf {
        self.root.join("new.deb")
    }
    fn previous_deb(&self) -> PathBuf {
        self.root.join("previous.deb")
    }
    fn current_deb(&self) -> PathBuf {
        self.root.join("current.deb")
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
                Ok(None) => return Ok(Ran::Nothing),
                Err(why) => {
                    self.tell(UpdatePhase::Failed, &self.requested_version(), Some(&why));
                    let _ = std::fs::remove_file(self.agent.join(install::REQUEST));
                    let _ = std::fs::remove_file(self.taken_request());
                    return Ok(Ran::Refused(why));
                }
            },
        };
        let (restarts, _) = self.sys.unit();
        m.on_start(&self.sys.boot_id(), self.sys.now_ms(), restarts);
        self.save(&m)?;
        loop {
            match m.phase {
                Phase::Staged => {
                    tracing::info!(version = %m.version, "update: installing");
                    // The note is there before dpkg restarts the unit into the new version.
                    let trial = Trial {
                        version: m.version.clone(),
                        room: m.room.clone(),
                    };
                    let _ = std::fs::remove_file(self.agent.join(install::HEALTHY));
                    self.write_for_agent(install::TRIAL, &trial)
                        .map_err(|e| format!("cannot write the trial note: {e}"))?;
                    match self.sys.install(&self.new_deb()) {
                        Ok(()) => {
                            m.phase = Phase::Trial;
                            m.trial_started_ms = self.sys.now_ms();
                            m.restarts_base = self.sys.unit().0;
                        }
                        Err(e) => m.roll_back(format!("dpkg could not install {}: {e}", m.version)),
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
                    // No trial note for the previous agent that dpkg starts: it must not prove
                    // the version it replaces.
                    let _ = std::fs::remove_file(self.agent.join(install::TRIAL));
                    let _ = std::fs::remove_file(self.agent.join(install::HEALTHY));
                    self.sys
                        .install(&self.previous_deb())
                        .map_err(|e| format!("cannot put {} back: {e}", m.previous_version))?;
                    self.tell(UpdatePhase::RolledBack, &m.version, Some(&why));
                    let _ = std::fs::rename(self.previous_deb(), self.current_deb());
                    let _ = std::fs::remove_file(self.new_deb());
                    let _ = std::fs::remove_file(self.marker_path());
                    self.sys.restart_unit();
                    return Ok(Ran::RolledBack(why));
                }
                Phase::Committing => {
                    if self.new_deb().exists() {
                        std::fs::rename(self.new_deb(), self.current_deb())
                            .map_err(|e| format!("cannot keep the package: {e}"))?;
                    }
                    let _ = std::fs::remove_file(self.previous_deb());
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
        copy_bounded(&req.package, &self.new_deb(), m.size)?;
        let got = super::download::sha256_file(&self.new_deb())?;
        if got != m.sha256 {
            return Err(format!(
                "the package's SHA-256 is {got}; the manifest says {}",
                m.sha256
            ));
        }
        let name = self.sys.deb_field(&self.new_deb(), "Package")?;
        let version = self.sys.deb_field(&self.new_deb(), "Version")?;
        if name != PACKAGE || version != m.version {
            return Err(format!(
                "the package is {name} {version}; the manifest says {PACKAGE} {}",
                m.version
            ));
        }
        let previous = self
            .sys
            .installed_version()
            .ok_or("roombox is not installed by dpkg; nothing to roll back to")?;
        let kept = self.current_deb();
        let kept_fits = kept.exists()
            && self.sys.deb_field(&kept, "Version").ok().as_deref() == Some(previous.as_str());
        if kept_fits {
            std::fs::copy(&kept, self.previous_deb())
                .map_err(|e| format!("cannot keep the previous package: {e}"))?;
        } else {
            self.sys.keep_installed(&self.previous_deb())?;
        }
        let marker = Marker {
            phase: Phase::Staged,
            version: m.version.clone(),
            previous_version: previous,
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

/// The real machine: dpkg and systemd.
pub struct Dpkg;

fn run_tool(cmd: &mut std::process::Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(3).collect();
    Err(format!(
        "{:?} exited with {}: {}",
        cmd.get_program(),
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    ))
}

impl System for Dpkg {
    fn installed_version(&self) -> Option<String> {
        let s = run_tool(std::process::Command::new("dpkg-query").args([
            "-W",
            "-f=${db:Status-Abbrev} ${Version}",
            PACKAGE,
        ]))
        .ok()?;
        let (status, version) = s.split_once(' ')?;
        (status.trim() == "ii").then(|| version.trim().to_string())
    }

    fn deb_field(&self, deb: &Path, field: &str) -> Result<String, String> {
        run_tool(
            std::process::Command::new("dpkg-deb")
                .arg("-f")
                .arg(deb)
                .arg(field),
        )
    }

    fn install(&self, deb: &Path) -> Result<(), String> {
        let _ = run_tool(std::process::Command::new("dpkg").args(["--configure", "-a"]));
        run_tool(
            std::process::Command::new("dpkg")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["--force-confold", "--force-confdef", "-i"])
                .arg(deb),
        )
        .map(|_| ())
    }

    fn keep_installed(&self, out: &Path) -> Result<(), String> {
        super::repack::installed_deb(PACKAGE, out)
    }

    fn unit(&self) -> (u32, bool) {
        let restarts = run_tool(std::process::Command::new("systemctl").args([
            "show",
            "-p",
            "NRestarts",
            "--value",
            UNIT,
        ]))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
        let failed = std::process::Command::new("systemctl")
            .args(["is-failed", "--quiet", UNIT])
            .status()
            .is_ok_and(|s| s.success());
        (restarts, failed)
    }

    fn restart_unit(&self) {
        let _ = run_tool(std::process::Command::new("systemctl").args(["reset-failed", UNIT]));
        if let Err(e) = run_tool(std::process::Command::new("systemctl").args(["restart", UNIT])) {
            tracing::warn!("update: cannot restart {UNIT}: {e}");
        }
    }

    fn boot_id(&self) -> String {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

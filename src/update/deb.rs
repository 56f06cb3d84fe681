//! The `deb` update method: `dpkg -i` the new package (its maintainer scripts restart the
//! agent's unit), and `dpkg -i` the previous one to roll back.
//!
//! The package to roll back to: the `.deb` of the last committed update, kept as
//! `current.deb` in the installer's directory; before the first update, the installed package
//! from apt's cache, else rebuilt from dpkg's database ([`super::repack`]). What it needs of
//! dpkg ([`Packages`]) is a trait so the steps are tested without it; [`Host`] is the real
//! machine (dpkg and systemd).

use super::apply::{Method, Staged, Start, System, PACKAGE, UNIT};
use super::marker::Marker;
use std::path::Path;

/// What the `deb` method needs of the package manager.
pub trait Packages {
    /// The installed version of the package, if installed.
    fn installed_version(&self) -> Option<String>;
    /// A control field of a `.deb`.
    fn deb_field(&self, deb: &Path, field: &str) -> Result<String, String>;
    /// Installs a `.deb` (which restarts the agent's unit).
    fn install(&self, deb: &Path) -> Result<(), String>;
    /// Writes the installed package as a `.deb` to `out`.
    fn keep_installed(&self, out: &Path) -> Result<(), String>;
}

/// The `deb` method.
pub struct Deb;

fn previous(root: &Path) -> std::path::PathBuf {
    root.join("previous.deb")
}
fn current(root: &Path) -> std::path::PathBuf {
    root.join("current.deb")
}

impl<S: System + Packages> Method<S> for Deb {
    fn file_name(&self) -> &'static str {
        "new.deb"
    }

    fn stage(&self, sys: &S, root: &Path, new: &Path, version: &str) -> Result<Staged, String> {
        let name = sys.deb_field(new, "Package")?;
        let got = sys.deb_field(new, "Version")?;
        if name != PACKAGE || got != version {
            return Err(format!(
                "the package is {name} {got}; the manifest says {PACKAGE} {version}"
            ));
        }
        let installed = sys
            .installed_version()
            .ok_or("roombox is not installed by dpkg; nothing to roll back to")?;
        let kept = current(root);
        let kept_fits = kept.exists()
            && sys.deb_field(&kept, "Version").ok().as_deref() == Some(installed.as_str());
        if kept_fits {
            std::fs::copy(&kept, previous(root))
                .map_err(|e| format!("cannot keep the previous package: {e}"))?;
        } else {
            sys.keep_installed(&previous(root))?;
        }
        Ok(Staged {
            previous_version: installed,
            slot: None,
        })
    }

    fn install(&self, sys: &S, _root: &Path, new: &Path) -> Result<Start, String> {
        Packages::install(sys, new)
            .map(|()| Start::Now)
            .map_err(|e| format!("dpkg: {e}"))
    }

    fn commit(&self, _sys: &S, root: &Path, new: &Path) -> Result<(), String> {
        if new.exists() {
            std::fs::rename(new, current(root))
                .map_err(|e| format!("cannot keep the package: {e}"))?;
        }
        let _ = std::fs::remove_file(previous(root));
        Ok(())
    }

    fn roll_back(&self, sys: &S, root: &Path, _m: &Marker) -> Result<Start, String> {
        Packages::install(sys, &previous(root))?;
        let _ = std::fs::rename(previous(root), current(root));
        Ok(Start::Now)
    }
}

/// The real machine: dpkg and systemd.
pub struct Host;

pub(super) fn run_tool(cmd: &mut std::process::Command) -> Result<String, String> {
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

impl Packages for Host {
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
}

impl System for Host {
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

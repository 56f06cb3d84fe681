//! The `rauc` update method, for A/B images (Yocto): the signed bundle goes into the other slot
//! with `rauc install` (which makes it the bootloader's primary), the box reboots into it, and
//! the installer run at that boot watches the new agent's proof of health as for a package,
//! then `rauc status mark-good`. Without the proof, it marks the new slot bad, makes the old one
//! primary and reboots into it; if the new slot does not even get that far, the bootloader's
//! boot counter falls back by itself, and the run in the old slot tells the fleet
//! ([`super::marker::on_slot`]).
//!
//! The bundle is checked before anything is written to a slot: the manifest's hash and
//! signature (the installer), then `rauc info`: its CMS signature by the keyring of RAUC's
//! `system.conf`, its version against the manifest's, its `compatible` against the system's.
//!
//! The installer's directory and the agent's state directory must be on storage both slots
//! share (a data partition), so the run in the other slot finds the marker and the proof.

use super::apply::{Method, Staged, Start, System};
use super::deb::run_tool;
use super::marker::Marker;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `rauc` method: the `rauc` command line (which asks `rauc service` over D-Bus).
#[derive(Debug, Clone)]
pub struct Rauc {
    /// The `rauc` program.
    pub rauc: PathBuf,
    /// RAUC's `system.conf` for `rauc info`; rauc's own default when none.
    pub conf: Option<PathBuf>,
    /// The D-Bus system bus address `rauc service` is on (`DBUS_SYSTEM_BUS_ADDRESS`); the
    /// machine's when none.
    pub bus: Option<String>,
    /// The reboot command, program and arguments.
    pub reboot: Vec<String>,
}

/// The facts `rauc status --output-format=json` gives that the installer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The system's compatible string.
    pub compatible: String,
    /// The booted slot's bootname.
    pub booted: String,
}

/// Reads `rauc status --output-format=json`.
pub fn parse_status(json: &str) -> Result<Status, String> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("rauc status is not the JSON expected: {e}"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("rauc status has no {k}"))
    };
    Ok(Status {
        compatible: field("compatible")?,
        booted: field("booted")?,
    })
}

/// Reads `rauc info --output-format=json`: the bundle's compatible and version.
pub fn parse_info(json: &str) -> Result<(String, String), String> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("rauc info is not the JSON expected: {e}"))?;
    let field = |k: &str| v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_string();
    Ok((field("compatible"), field("version")))
}

/// Checks a bundle's compatible and version against the system's and the manifest's.
pub fn check_bundle(
    bundle: (&str, &str),
    system_compatible: &str,
    version: &str,
) -> Result<(), String> {
    let (compatible, got) = bundle;
    if compatible != system_compatible {
        return Err(format!(
            "the bundle is for `{compatible}`; this system is `{system_compatible}`"
        ));
    }
    if got != version {
        return Err(format!(
            "the bundle's version is {got}; the manifest says {version}"
        ));
    }
    Ok(())
}

impl Rauc {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.rauc);
        if let Some(bus) = &self.bus {
            c.env("DBUS_SYSTEM_BUS_ADDRESS", bus);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        run_tool(self.command().args(args)).map_err(|e| format!("rauc {}: {e}", args.join(" ")))
    }

    /// The system's compatible and the booted slot.
    pub fn status(&self) -> Result<Status, String> {
        parse_status(&self.run(&["status", "--output-format=json"])?)
    }
}

impl<S: System> Method<S> for Rauc {
    fn file_name(&self) -> &'static str {
        "new.raucb"
    }

    fn stage(&self, _sys: &S, _root: &Path, new: &Path, version: &str) -> Result<Staged, String> {
        let mut info = self.command();
        info.arg("info").arg("--output-format=json");
        if let Some(conf) = &self.conf {
            info.arg(format!("--conf={}", conf.display()));
        }
        let json = run_tool(info.arg(new))
            .map_err(|e| format!("the bundle is refused by rauc info: {e}"))?;
        let status = self.status()?;
        let (compatible, got) = parse_info(&json)?;
        check_bundle((&compatible, &got), &status.compatible, version)?;
        Ok(Staged {
            // The installer is the booted image's own roombox.
            previous_version: env!("CARGO_PKG_VERSION").to_string(),
            slot: Some(status.booted),
        })
    }

    fn install(&self, _sys: &S, _root: &Path, new: &Path) -> Result<Start, String> {
        let path = new.to_str().ok_or("the bundle's path is not UTF-8")?;
        self.run(&["install", path])?;
        Ok(Start::AfterReboot)
    }

    fn commit(&self, _sys: &S, _root: &Path, _new: &Path) -> Result<(), String> {
        self.run(&["status", "mark-good", "booted"]).map(|_| ())
    }

    fn roll_back(&self, _sys: &S, _root: &Path, m: &Marker) -> Result<Start, String> {
        let booted = self.status()?.booted;
        if m.slot.as_deref() == Some(booted.as_str()) {
            // The old version runs: keep the bootloader off the new slot.
            for args in [
                ["status", "mark-bad", "other"],
                ["status", "mark-active", "booted"],
            ] {
                if let Err(e) = self.run(&args) {
                    tracing::warn!("update: {e}");
                }
            }
            return Ok(Start::Now);
        }
        self.run(&["status", "mark-bad", "booted"])?;
        self.run(&["status", "mark-active", "other"])?;
        Ok(Start::AfterReboot)
    }

    fn booted(&self, _sys: &S) -> Result<Option<String>, String> {
        self.status().map(|s| Some(s.booted))
    }

    fn reboot(&self, _sys: &S) -> Result<(), String> {
        let (program, args) = self
            .reboot
            .split_first()
            .ok_or("update.reboot_command is empty")?;
        run_tool(Command::new(program).args(args))
            .map(|_| ())
            .map_err(|e| format!("cannot reboot: {e}"))
    }

    fn settle(&self, _sys: &S) {
        // The version running with no update in progress is the committed one: a bootloader
        // that counts boots (U-Boot, barebox) must not fall back from it.
        if let Err(e) = self.run(&["status", "mark-good", "booted"]) {
            tracing::warn!("update: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_info_are_read_and_a_foreign_bundle_refused() {
        let s = parse_status(
            r#"{"compatible":"roombox-rpi4","variant":"","booted":"A","boot_primary":"rootfs.1","slots":[]}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            Status {
                compatible: "roombox-rpi4".into(),
                booted: "A".into()
            }
        );
        assert!(parse_status(r#"{"compatible":"x"}"#)
            .unwrap_err()
            .contains("no booted"));
        assert!(parse_status("rauc: not running").is_err());
        let info =
            parse_info(r#"{"compatible":"roombox-rpi4","version":"0.2.0","images":[]}"#).unwrap();
        assert_eq!(info, ("roombox-rpi4".into(), "0.2.0".into()));
        assert_eq!(
            check_bundle(("roombox-rpi4", "0.2.0"), "roombox-rpi4", "0.2.0"),
            Ok(())
        );
        let e = check_bundle(("roombox-jetson", "0.2.0"), "roombox-rpi4", "0.2.0").unwrap_err();
        assert!(e.contains("`roombox-jetson`"), "{e}");
        let e = check_bundle(("roombox-rpi4", "0.3.0"), "roombox-rpi4", "0.2.0").unwrap_err();
        assert!(e.contains("0.3.0"), "{e}");
    }
}

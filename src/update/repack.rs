//! The installed package as a `.deb`, to roll back to before the box has kept one of its own
//! (the first update after an install by hand): apt's cached copy when it has one, else the
//! package rebuilt from dpkg's database, as `dpkg-repack` does (not in Debian's minimal
//! installs): the files `dpkg -L` lists, the control fields `dpkg-query -s` shows, and the
//! maintainer scripts and conffiles `dpkg-query` shows (`--control-path`). A conffile goes in as it is
//! on disk now, so the local edits survive the rollback.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Writes the installed `package` as a `.deb` to `out`.
pub fn installed_deb(package: &str, out: &Path) -> Result<(), String> {
    let status = tool(Command::new("dpkg-query").args(["-s", package]))?;
    let version = field(&status, "Version").ok_or("dpkg-query shows no Version")?;
    let arch = field(&status, "Architecture").unwrap_or_default();
    let cached = PathBuf::from("/var/cache/apt/archives").join(format!(
        "{package}_{}_{arch}.deb",
        version.replace(':', "%3a")
    ));
    if cached.exists() {
        std::fs::copy(&cached, out)
            .map_err(|e| format!("cannot copy {}: {e}", cached.display()))?;
        return Ok(());
    }
    rebuild(package, out)
}

/// Rebuilds the installed `package` from dpkg's database as a `.deb` at `out`.
pub fn rebuild(package: &str, out: &Path) -> Result<(), String> {
    let status = tool(Command::new("dpkg-query").args(["-s", package]))?;
    let tmp = out.with_extension("build");
    let _ = std::fs::remove_dir_all(&tmp);
    let r = build(package, &status, &tmp, out);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

/// The value of a one-line field of a control paragraph.
fn field(paragraph: &str, name: &str) -> Option<String> {
    paragraph.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

/// The control paragraph without dpkg's own fields (and their continuation lines).
pub fn control(status: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in status.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if !skip {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let key = line.split(':').next().unwrap_or("");
        skip = matches!(key, "Status" | "Conffiles" | "Config-Version") || line.trim().is_empty();
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn build(package: &str, status: &str, root: &Path, out: &Path) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot rebuild the installed package: {e}");
    let debian = root.join("DEBIAN");
    std::fs::create_dir_all(&debian).map_err(io)?;
    // Modes set outright: the installer runs with umask 0077, and dpkg-deb wants a control
    // directory of 0755 to 0775.
    for dir in [root, &debian] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    std::fs::write(debian.join("control"), control(status)).map_err(io)?;
    std::fs::set_permissions(
        debian.join("control"),
        std::fs::Permissions::from_mode(0o644),
    )
    .map_err(io)?;
    // The maintainer scripts and md5sums where dpkg-query says they are.
    let controls = tool(Command::new("dpkg-query").args(["--control-list", package]))?;
    for name in controls.lines().map(str::trim) {
        if ![
            "preinst", "postinst", "prerm", "postrm", "md5sums", "triggers",
        ]
        .contains(&name)
        {
            continue;
        }
        let from = tool(Command::new("dpkg-query").args(["--control-path", package, name]))?;
        let to = debian.join(name);
        std::fs::copy(from.trim(), &to).map_err(io)?;
        let mode = if name.ends_with("inst") || name.ends_with("rm") {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    // The conffiles, from the status (" /etc/x <md5>", "obsolete" ones left out).
    let conffiles: String =
        tool(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", package]))?
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains(" obsolete"))
            .filter_map(|l| l.split_whitespace().next())
            .map(|p| format!("{p}\n"))
            .collect();
    if !conffiles.is_empty() {
        let to = debian.join("conffiles");
        std::fs::write(&to, conffiles).map_err(io)?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    }
    let list = tool(Command::new("dpkg-query").args(["-L", package]))?;
    for path in list.lines().map(str::trim).filter(|p| p.starts_with('/')) {
        let src = Path::new(path);
        let dst = root.join(path.trim_start_matches('/'));
        let Ok(meta) = std::fs::symlink_metadata(src) else {
            continue;
        };
        if meta.is_dir() {
            std::fs::create_dir_all(&dst).map_err(io)?;
            std::fs::set_permissions(&dst, meta.permissions()).map_err(io)?;
        } else if meta.file_type().is_symlink() {
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io)?;
            }
            let target = std::fs::read_link(src).map_err(io)?;
            std::os::unix::fs::symlink(target, &dst).map_err(io)?;
        } else if meta.is_file() {
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io)?;
            }
            std::fs::copy(src, &dst).map_err(io)?;
            std::fs::set_permissions(&dst, meta.permissions()).map_err(io)?;
        }
    }
    tool(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(root)
            .arg(out),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkgs_own_fields_are_left_out_of_the_control_file() {
        let status = "Package: roombox\nStatus: install ok installed\nVersion: 0.1.0-1\nConffiles:\n /etc/roombox/roombox.toml abc\nDescription: box\n more text\n";
        assert_eq!(
            control(status),
            "Package: roombox\nVersion: 0.1.0-1\nDescription: box\n more text\n"
        );
        assert_eq!(field(status, "Version").as_deref(), Some("0.1.0-1"));
    }
}

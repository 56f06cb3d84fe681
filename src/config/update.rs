//! The `[update]` section: signed software updates (the fleet's or the control socket's `update`
//! command), and the maintenance windows an update may be installed in while the room is busy.
//!
//! The window parser lives here so a bad window is refused when the file loads; the agent's
//! pure update rules use [`MaintenanceWindow::contains`].

use super::{check_duration, fail, FieldError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the root installer puts a version on the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMethod {
    /// A Debian package, with `dpkg -i` (the `.deb` the package build makes).
    #[default]
    Deb,
    /// A signed RAUC bundle into the other A/B slot, then a reboot (Yocto images).
    Rauc,
}

/// Software updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// Accept a manifest without a valid signature by the fleet key (`[fleet.signing]
    /// public_key`). Off: an unsigned or badly signed update is refused.
    pub allow_unsigned: bool,
    /// Largest package accepted, bytes.
    pub max_bytes: u64,
    /// Free space to leave on the state directory's filesystem after the download, bytes.
    pub reserve_bytes: u64,
    /// Times of day (`HH:MM-HH:MM`, the room's local time; may cross midnight) when an update
    /// may be installed even though the room is busy. Outside them it waits for the room to be
    /// idle: no call, no recording, no live output.
    pub maintenance_windows: Vec<String>,
    /// The zone of the windows (IANA, `Europe/Berlin`); the calendar's zone when empty, else
    /// the system's.
    pub timezone: String,
    /// How long the new agent has to prove healthy (READY, media PLAYING, fleet CONNECTED, back
    /// in its room) before the previous package is put back.
    #[serde(with = "humantime_serde")]
    pub health_deadline: Duration,
    /// How long a download may stall (no byte received) before it fails; a new `update` resumes
    /// it.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// `deb` (dpkg) or `rauc` (A/B slots).
    pub method: UpdateMethod,
    /// `rauc`: the command that reboots the box into the other slot.
    pub reboot_command: Vec<String>,
    /// `rauc`: RAUC's system configuration, whose keyring checks a bundle's signature; empty
    /// for rauc's own default (`/etc/rauc/system.conf`).
    pub rauc_conf: String,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            allow_unsigned: false,
            max_bytes: 512 * 1024 * 1024,
            reserve_bytes: 64 * 1024 * 1024,
            maintenance_windows: Vec::new(),
            timezone: String::new(),
            health_deadline: Duration::from_secs(180),
            stall_timeout: Duration::from_secs(60),
            method: UpdateMethod::Deb,
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            rauc_conf: String::new(),
        }
    }
}

/// One daily window, minutes after local midnight; `end` before `start` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// First minute of the window.
    pub start: u32,
    /// First minute after it.
    pub end: u32,
}

impl MaintenanceWindow {
    /// Parses `HH:MM-HH:MM` (24-hour clock).
    pub fn parse(s: &str) -> Result<MaintenanceWindow, String> {
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let bad = || format!("`{s}` is not a window; expected HH:MM-HH:MM, like 02:00-05:00");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!("`{s}` is empty: its start and end are the same"));
        }
        Ok(MaintenanceWindow { start, end })
    }

    /// True when `minute` (after local midnight) is inside the window.
    pub fn contains(&self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl UpdateConfig {
    /// The windows, parsed (the bad ones were refused on load).
    pub fn windows(&self) -> Vec<MaintenanceWindow> {
        self.maintenance_windows
            .iter()
            .filter_map(|w| MaintenanceWindow::parse(w).ok())
            .collect()
    }

    /// Range checks of the `[update]` section.
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        if !(1024..=16 * 1024 * 1024 * 1024).contains(&self.max_bytes) {
            fail(e, "update.max_bytes", "expected 1 KiB to 16 GiB");
        }
        if self.reserve_bytes > 64 * 1024 * 1024 * 1024 {
            fail(e, "update.reserve_bytes", "expected at most 64 GiB");
        }
        if self.maintenance_windows.len() > 16 {
            fail(e, "update.maintenance_windows", "at most 16 windows");
        }
        for w in &self.maintenance_windows {
            if let Err(m) = MaintenanceWindow::parse(w) {
                fail(e, "update.maintenance_windows", m);
            }
        }
        if !self.timezone.is_empty() && self.timezone.parse::<chrono_tz::Tz>().is_err() {
            fail(
                e,
                "update.timezone",
                format!(
                    "`{}` is not an IANA time zone (like Europe/Berlin)",
                    self.timezone
                ),
            );
        }
        check_duration(
            e,
            "update.health_deadline",
            self.health_deadline,
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
        if self.method == UpdateMethod::Rauc
            && self
                .reboot_command
                .first()
                .is_none_or(|p| p.trim().is_empty())
        {
            fail(
                e,
                "update.reboot_command",
                "the rauc method needs a command that reboots, like [\"systemctl\", \"reboot\"]",
            );
        }
        if !self.rauc_conf.is_empty() && !self.rauc_conf.starts_with('/') {
            fail(e, "update.rauc_conf", "expected an absolute path");
        }
        check_duration(
            e,
            "update.stall_timeout",
            self.stall_timeout,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    #[test]
    fn windows_parse_and_may_cross_midnight() {
        let w = MaintenanceWindow::parse("02:00-05:30").unwrap();
        assert!(!w.contains(119) && w.contains(120) && w.contains(329) && !w.contains(330));
        let night = MaintenanceWindow::parse("23:00-01:00").unwrap();
        assert!(night.contains(23 * 60) && night.contains(30) && !night.contains(60));
        assert!(!night.contains(12 * 60));
        for bad in [
            "2:00-05:00",
            "02:00",
            "24:00-01:00",
            "02:60-03:00",
            "03:00-03:00",
        ] {
            assert!(MaintenanceWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_update_values_are_each_reported() {
        let errors = load_str(
            "t.toml",
            "[update]\nmax_bytes = 1\nmaintenance_windows = [\"nope\"]\ntimezone = \"Mars/Base\"\nhealth_deadline = \"1s\"\n",
        )
        .unwrap_err();
        let fields: Vec<String> = errors.into_iter().filter_map(|e| e.field).collect();
        for want in [
            "update.max_bytes",
            "update.maintenance_windows",
            "update.timezone",
            "update.health_deadline",
        ] {
            assert!(fields.contains(&want.to_string()), "{want} in {fields:?}");
        }
        let ok = load_str(
            "t.toml",
            "[update]\nmaintenance_windows = [\"22:00-02:00\"]\n",
        )
        .unwrap()
        .config;
        assert_eq!(ok.update.windows().len(), 1);
        assert_eq!(ok.update.method, UpdateMethod::Deb);
    }

    #[test]
    fn the_method_is_deb_or_rauc_and_rauc_needs_a_reboot() {
        let rauc = load_str("t.toml", "[update]\nmethod = \"rauc\"\n")
            .unwrap()
            .config;
        assert_eq!(rauc.update.method, UpdateMethod::Rauc);
        assert_eq!(rauc.update.reboot_command, ["systemctl", "reboot"]);
        let errors = load_str(
            "t.toml",
            "[update]\nmethod = \"rauc\"\nreboot_command = []\nrauc_conf = \"system.conf\"\n",
        )
        .unwrap_err();
        let fields: Vec<String> = errors.into_iter().filter_map(|e| e.field).collect();
        assert!(
            fields.contains(&"update.reboot_command".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"update.rauc_conf".to_string()),
            "{fields:?}"
        );
        let errors = load_str("t.toml", "[update]\nmethod = \"swupdate\"\n").unwrap_err();
        let text = format!("{errors:?}");
        assert!(text.contains("swupdate") && text.contains("rauc"), "{text}");
    }
}

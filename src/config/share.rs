//! The `[media.share]` section: content share from the box (a laptop on an HDMI-to-USB grabber,
//! or a synthetic pattern), encoded for content: full resolution, a low frame rate, a bitrate of
//! its own.

use super::{check, check_duration, fail, FieldError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where the share comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShareSource {
    /// No share (the default).
    None,
    /// A V4L2 device (an HDMI-to-USB grabber), named by a stable link.
    V4l2,
    /// A synthetic pattern: the demo and the tests.
    Test,
}

/// What the local outputs (recording, RTMP, HLS) show: their "program".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProgramMode {
    /// The share's own encode while there is a share, else the camera (no third encode).
    Share,
    /// Always the camera; the share goes to rooms only.
    Camera,
    /// While there is a share: the share with the camera in a corner, composed and encoded
    /// once for every output that takes the program.
    Pip,
}

/// Who presents when two shares meet (one presenter at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PresenterRule {
    /// The newest share wins: a remote participant's share stops the box's, and the box's
    /// share may start while a remote presents (it takes over).
    LastWins,
    /// The share already presenting stays: the box's start is refused while a remote presents,
    /// and a remote share that starts while the box presents does not take over.
    FirstWins,
}

/// `[media.share]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShareConfig {
    /// `none`, `v4l2` or `test`.
    pub source: ShareSource,
    /// For `v4l2`: a stable link, `/dev/v4l/by-id/...` or `/dev/v4l/by-path/...`.
    pub device: String,
    /// Encode width, 320..=1920, even.
    pub width: u32,
    /// Encode height, 240..=1080, even.
    pub height: u32,
    /// Frames per second, 5..=15.
    pub fps: u32,
    /// Target bitrate, kbit/s, 100..=20000.
    pub bitrate_kbps: u32,
    /// Time between keyframes, 1s..=60s: slides change rarely, and a room's new subscriber
    /// asks for a keyframe of its own.
    #[serde(with = "humantime_serde")]
    pub keyframe_interval: Duration,
    /// Start when the grabber has a signal, stop when it loses it.
    pub auto: bool,
    /// What the local outputs follow: `share`, `camera` or `pip`.
    pub program: ProgramMode,
    /// `last-wins` or `first-wins`.
    pub presenter: PresenterRule,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            source: ShareSource::None,
            device: String::new(),
            width: 1920,
            height: 1080,
            fps: 5,
            bitrate_kbps: 1500,
            keyframe_interval: Duration::from_secs(2),
            auto: false,
            program: ProgramMode::Share,
            presenter: PresenterRule::LastWins,
        }
    }
}

/// Where stable V4L2 links live: udev names them by the device's identity or its port, so a
/// grabber keeps its name across reboots and replugs (unlike `/dev/videoN`).
const STABLE_LINKS: [&str; 2] = ["/dev/v4l/by-id/", "/dev/v4l/by-path/"];

impl ShareConfig {
    /// Whether a share source is configured.
    pub fn configured(&self) -> bool {
        self.source != ShareSource::None
    }

    /// The keyframe interval in frames (at the full frame rate).
    pub fn gop_frames(&self) -> u32 {
        ((self.keyframe_interval.as_millis() as u64 * u64::from(self.fps)) / 1000).max(1) as u32
    }

    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        if self.device.chars().any(|c| c.is_control()) {
            fail(e, "media.share.device", "contains control characters");
        }
        if self.source == ShareSource::V4l2 {
            if self.device.is_empty() {
                fail(
                    e,
                    "media.share.device",
                    "empty; source = \"v4l2\" needs the grabber's stable link \
                     (/dev/v4l/by-id/... or /dev/v4l/by-path/...)",
                );
            } else if !STABLE_LINKS.iter().any(|p| self.device.starts_with(p)) {
                fail(
                    e,
                    "media.share.device",
                    format!(
                        "`{}` is not a stable link; expected /dev/v4l/by-id/... or \
                         /dev/v4l/by-path/... (a /dev/videoN number can change at a replug)",
                        self.device
                    ),
                );
            }
        }
        check(e, "media.share.width", self.width, 320, 1920);
        check(e, "media.share.height", self.height, 240, 1080);
        for (field, v) in [
            ("media.share.width", self.width),
            ("media.share.height", self.height),
        ] {
            if v % 2 == 1 {
                fail(e, field, format!("{v} is odd; expected an even number"));
            }
        }
        check(e, "media.share.fps", self.fps, 5, 15);
        check(
            e,
            "media.share.bitrate_kbps",
            self.bitrate_kbps,
            100,
            20_000,
        );
        check_duration(
            e,
            "media.share.keyframe_interval",
            self.keyframe_interval,
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        if self.auto && self.source == ShareSource::None {
            fail(
                e,
                "media.share.auto",
                "true needs a source (`v4l2` or `test`) to watch for a signal",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, ShareSource};

    fn errors(toml: &str) -> String {
        match load_str("share.toml", toml) {
            Ok(_) => String::new(),
            Err(e) => e.iter().map(|e| format!("{e}\n")).collect(),
        }
    }

    #[test]
    fn the_default_has_no_share_and_a_test_share_loads() {
        let c = load_str("a.toml", "").unwrap().config;
        assert_eq!(c.media.share.source, ShareSource::None);
        let c = load_str(
            "b.toml",
            "[media.share]\nsource = \"test\"\nfps = 10\nauto = true\n",
        )
        .unwrap()
        .config;
        assert_eq!(c.media.share.source, ShareSource::Test);
        assert_eq!(c.media.share.gop_frames(), 20);
    }

    #[test]
    fn a_grabber_must_be_named_by_a_stable_link() {
        let e = errors("[media.share]\nsource = \"v4l2\"\ndevice = \"/dev/video2\"\n");
        assert!(
            e.contains("media.share.device") && e.contains("stable link"),
            "{e}"
        );
        let e = errors("[media.share]\nsource = \"v4l2\"\n");
        assert!(
            e.contains("media.share.device") && e.contains("empty"),
            "{e}"
        );
        let ok = "[media.share]\nsource = \"v4l2\"\ndevice = \"/dev/v4l/by-id/usb-MACROSILICON_USB_Video-video-index0\"\n";
        assert_eq!(errors(ok), "");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let e = errors("[media.share]\nsource = \"test\"\nwidth = 3840\nheight = 1081\nfps = 30\nbitrate_kbps = 50\n");
        for f in [
            "media.share.width",
            "media.share.height",
            "media.share.fps",
            "media.share.bitrate_kbps",
        ] {
            assert!(e.contains(f), "{f} missing from {e}");
        }
        assert!(e.contains("odd"), "{e}");
        let e = errors("[media.share]\nauto = true\n");
        assert!(e.contains("media.share.auto"), "{e}");
        let e = errors("[media.share]\nsource = \"hdmi\"\n");
        assert!(e.contains("source"), "{e}");
        let e = errors("[media.share]\nprogram = \"mosaic\"\n");
        assert!(e.contains("program"), "{e}");
    }
}

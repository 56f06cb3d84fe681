//! Configuration: TOML files, every field documented in `config/roombox.toml`.
//!
//! The main file is merged with the drop-ins of its `config.d/` directory in name order, later
//! files winning key by key. Unknown keys are errors. Every error names the file, the line and the
//! field, and what was expected ([`ConfigError`]).
//!
//! Layer 2 of docs/architecture.md, a leaf: it imports only `model` and `command` (a button's
//! action is a command), and every layer above may import it. The checks it needs live here.

mod calendar;
pub mod controls;
mod fleet;
mod http;
mod livestream;
mod load;
mod media;
mod meeting;
mod room;
mod share;
mod transcription;
mod update;

pub use crate::model::{check_output_name, check_url, StreamKey};
pub use calendar::{CalendarConfig, CalendarSource};
pub use fleet::{
    is_topic_level, parse_public_key, parse_signing_key, BrokerUrl, FleetAuthConfig, FleetConfig,
    FleetSigningConfig, FleetTlsConfig,
};
pub use http::{HlsConfig, HttpConfig};
pub use livestream::{FallbackConfig, FallbackReturn, LivestreamConfig, OutputConfig};
pub use load::{load, load_candidate, load_str, load_trusted, ConfigError, Loaded, DEFAULT_PATH};
pub use media::{
    AudioConfig, AudioProcessing, AudioSource, MediaConfig, ProcessingConfig, VideoConfig,
    VideoSource,
};
pub use meeting::MeetingConfig;
pub use room::{PlaybackConfig, RoomBackendKind, RoomConfig, WhepSource};
pub use share::{PresenterRule, ProgramMode, ShareConfig, ShareSource};
pub use transcription::{language_code, TranscriptionConfig, DEFAULT_MODEL_FILE, SILERO_FILE};
pub use update::{MaintenanceWindow, UpdateConfig, UpdateMethod};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Who this box is and where it keeps its files.
    pub device: DeviceConfig,
    /// The local control socket (`roombox status`, `roombox cmd`).
    pub control: ControlConfig,
    /// Capture and encode.
    pub media: MediaConfig,
    /// Local recording.
    pub recording: RecordingConfig,
    /// Buttons and LEDs on GPIO.
    pub controls: controls::ControlsConfig,
    /// Joining rooms as the local participant.
    pub room: RoomConfig,
    /// Remote control and reporting over MQTT (off unless a broker is set).
    pub fleet: FleetConfig,
    /// RTMP simulcast outputs and the fallback.
    pub livestream: LivestreamConfig,
    /// The box's HTTP server (HLS).
    pub http: HttpConfig,
    /// HLS served by the box.
    pub hls: HlsConfig,
    /// On-device speech to text.
    pub transcription: TranscriptionConfig,
    /// Where the unset directories default to: set by [`load`] from which file was read, never
    /// from the file's text.
    #[serde(skip)]
    pub layout: Layout,
    /// The room's calendar (off unless a source is set).
    pub calendar: CalendarConfig,
    /// Signed software updates.
    pub update: UpdateConfig,
}

/// Which default directories a config resolves to when it names none and systemd's
/// `$STATE_DIRECTORY`/`$RUNTIME_DIRECTORY` are not set (the CLI on a board, `roombox check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// A clone or a config of one's own: `./roombox-data`, the socket under it.
    #[default]
    Development,
    /// The package's config ([`DEFAULT_PATH`]): the unit's directories, so `roombox status`
    /// typed on a board reaches the agent its unit runs.
    Installed,
}

/// The unit's `StateDirectory=roombox`.
pub const INSTALLED_STATE_DIR: &str = "/var/lib/roombox";
/// The unit's `RuntimeDirectory=roombox`.
pub const INSTALLED_RUNTIME_DIR: &str = "/run/roombox";

/// Who this box is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Device id used in fleet topics; the machine id when empty.
    pub id: String,
    /// A name for people (`Room 4.12`).
    pub name: String,
    /// Where the agent keeps its state; when empty, systemd's `$STATE_DIRECTORY`, else
    /// `/var/lib/roombox` for the installed config (`/etc/roombox/roombox.toml`), else
    /// `./roombox-data`.
    pub state_dir: PathBuf,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            id: String::new(),
            name: "roombox".into(),
            state_dir: PathBuf::new(),
        }
    }
}

/// The local control socket.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix socket path; when empty, `$RUNTIME_DIRECTORY/control.sock` under systemd, else
    /// `/run/roombox/control.sock` for the installed config, else `<state_dir>/control.sock`.
    pub socket: PathBuf,
}

/// Jittered exponential backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// First delay.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Longest delay.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl BackoffConfig {
    /// Checks the bounds every backoff shares: a first delay of 10 ms to 1 min, and a longest
    /// delay from the first to an hour. `section` names it in errors (`room.reconnect`).
    pub fn check(&self, e: &mut Vec<FieldError>, section: &str) {
        check_duration(
            e,
            &format!("{section}.initial"),
            self.initial,
            Duration::from_millis(10),
            Duration::from_secs(60),
        );
        check_duration(
            e,
            &format!("{section}.max"),
            self.max,
            self.initial,
            Duration::from_secs(3600),
        );
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Container of local recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingFormat {
    /// MP4 (H.264 + AAC) whose header is rewritten every `fragment`, so a killed file plays.
    Mp4,
    /// Matroska (H.264 + Opus).
    Mkv,
}

impl RecordingFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            RecordingFormat::Mp4 => "mp4",
            RecordingFormat::Mkv => "mkv",
        }
    }
}

/// Local recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Start recording when the agent starts.
    pub autostart: bool,
    /// Directory for segments; `<state_dir>/recordings` when empty.
    pub dir: PathBuf,
    /// `mp4` (robust: header rewritten every fragment) or `mkv`.
    pub format: RecordingFormat,
    /// Length of one segment file, 2s..=1h.
    #[serde(with = "humantime_serde")]
    pub segment: Duration,
    /// How often data is made durable inside a segment (the most a crash loses), 200ms..=5s.
    #[serde(with = "humantime_serde")]
    pub fragment: Duration,
    /// Delete segments older than this; 0 keeps them until space runs short.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Keep at least this much free space (MiB) by deleting the oldest segments.
    pub min_free_mb: u64,
    /// Stop recording (FAILED) when free space falls below this (MiB) and nothing is left to
    /// delete.
    pub stop_free_mb: u64,
    /// `room` (the box's own camera and mic) or `meeting` (every participant in a layout, every
    /// voice mixed; `[media.meeting]`).
    pub source: crate::model::OutputSource,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            autostart: false,
            dir: PathBuf::new(),
            format: RecordingFormat::Mp4,
            segment: Duration::from_secs(10),
            fragment: Duration::from_secs(1),
            max_age: Duration::from_secs(7 * 24 * 3600),
            min_free_mb: 512,
            stop_free_mb: 64,
            source: crate::model::OutputSource::Room,
        }
    }
}

/// One problem with one field: the field's dotted path and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`media.video.fps`).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn check<T: PartialOrd + std::fmt::Display>(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: T,
    lo: T,
    hi: T,
) {
    if value < lo || value > hi {
        errors.push(FieldError {
            field: field.into(),
            message: format!("{value} is out of range; expected {lo} to {hi}"),
        });
    }
}

fn fail(errors: &mut Vec<FieldError>, field: &str, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

impl Config {
    /// Checks every value's range and the relations between values. Returns every problem.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        let v = &self.media.video;
        if !v.device.is_empty() && v.device.chars().any(|c| c.is_control()) {
            fail(&mut e, "media.video.device", "contains control characters");
        }
        if v.source == VideoSource::V4l2 && !v.device.starts_with("/dev/") {
            fail(
                &mut e,
                "media.video.device",
                format!("`{}` is not a device path; expected /dev/videoN", v.device),
            );
        }
        check(&mut e, "media.video.width", v.width, 160, 3840);
        check(&mut e, "media.video.height", v.height, 120, 2160);
        if v.width % 2 == 1 {
            fail(
                &mut e,
                "media.video.width",
                format!("{} is odd; expected an even number", v.width),
            );
        }
        if v.height % 2 == 1 {
            fail(
                &mut e,
                "media.video.height",
                format!("{} is odd; expected an even number", v.height),
            );
        }
        check(&mut e, "media.video.fps", v.fps, 1, 60);
        check(&mut e, "media.video.test_scroll", v.test_scroll, 0, 64);
        check(&mut e, "media.video.min_fps", v.min_fps, 1, 60);
        check(
            &mut e,
            "media.video.bitrate_kbps",
            v.bitrate_kbps,
            100,
            50_000,
        );
        check(
            &mut e,
            "media.video.min_bitrate_kbps",
            v.min_bitrate_kbps,
            50,
            50_000,
        );
        check(
            &mut e,
            "media.video.max_bitrate_kbps",
            v.max_bitrate_kbps,
            100,
            50_000,
        );
        if v.min_bitrate_kbps > v.bitrate_kbps || v.bitrate_kbps > v.max_bitrate_kbps {
            fail(
                &mut e,
                "media.video.bitrate_kbps",
                format!(
                    "{} is outside min_bitrate_kbps..=max_bitrate_kbps ({}..={})",
                    v.bitrate_kbps, v.min_bitrate_kbps, v.max_bitrate_kbps
                ),
            );
        }
        check_duration(
            &mut e,
            "media.video.keyframe_interval",
            v.keyframe_interval,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        if v.encoder.is_empty()
            || !v
                .encoder
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            fail(
                &mut e,
                "media.video.encoder",
                format!("`{}` is not `auto` or a GStreamer element name", v.encoder),
            );
        }

        let a = &self.media.audio;
        if ![16000, 32000, 48000].contains(&a.rate) {
            fail(
                &mut e,
                "media.audio.rate",
                format!(
                    "{} is not supported; expected 16000, 32000 or 48000",
                    a.rate
                ),
            );
        }
        check(&mut e, "media.audio.channels", a.channels, 1, 2);
        check(
            &mut e,
            "media.audio.opus_bitrate_kbps",
            a.opus_bitrate_kbps,
            6,
            510,
        );
        check(
            &mut e,
            "media.audio.aac_bitrate_kbps",
            a.aac_bitrate_kbps,
            32,
            320,
        );
        if a.device.is_empty() && a.source == AudioSource::Alsa {
            fail(
                &mut e,
                "media.audio.device",
                "empty; expected an ALSA device name",
            );
        }

        if a.source == AudioSource::Pipe && a.file.as_os_str().is_empty() {
            fail(
                &mut e,
                "media.audio.file",
                "empty; source = \"pipe\" needs the path of a pipe (or file) of raw S16LE samples",
            );
        }
        if a.source == AudioSource::File {
            if a.file.as_os_str().is_empty() {
                fail(
                    &mut e,
                    "media.audio.file",
                    "empty; source = \"file\" needs a WAV, Opus or Ogg file",
                );
            } else if !a.file.is_file() {
                fail(
                    &mut e,
                    "media.audio.file",
                    format!("{} is not a readable file", a.file.display()),
                );
            }
        }

        self.media.restart.check(&mut e, "media.restart");

        let rec = &self.recording;
        check_duration(
            &mut e,
            "recording.segment",
            rec.segment,
            Duration::from_secs(2),
            Duration::from_secs(3600),
        );
        check_duration(
            &mut e,
            "recording.fragment",
            rec.fragment,
            Duration::from_millis(200),
            Duration::from_secs(5),
        );
        if rec.fragment > rec.segment {
            fail(
                &mut e,
                "recording.fragment",
                "is longer than recording.segment",
            );
        }
        if !rec.max_age.is_zero() && rec.max_age < Duration::from_secs(60) {
            fail(
                &mut e,
                "recording.max_age",
                "is under a minute; expected 0 (no limit) or at least 1m",
            );
        }
        check(&mut e, "recording.min_free_mb", rec.min_free_mb, 0, 1 << 30);
        if rec.stop_free_mb > rec.min_free_mb {
            fail(
                &mut e,
                "recording.stop_free_mb",
                format!(
                    "{} is above recording.min_free_mb ({}); expected at most that",
                    rec.stop_free_mb, rec.min_free_mb
                ),
            );
        }
        self.media.share.validate(&mut e);
        self.media.meeting.validate(&mut e);
        self.room.validate(&mut e);
        self.livestream.validate(&mut e);
        self.http.validate(&mut e);
        self.hls.validate(&mut e);
        self.transcription.validate(&mut e);
        self.calendar.validate(&mut e);
        for (field, p) in [
            ("device.state_dir", &self.device.state_dir),
            ("recording.dir", &rec.dir),
            ("control.socket", &self.control.socket),
        ] {
            if p.as_os_str().len() > 4096 {
                fail(&mut e, field, "path is longer than 4096 bytes");
            }
        }
        if self.control.socket.as_os_str().len() > 100 {
            fail(
                &mut e,
                "control.socket",
                "a Unix socket path must be under 108 bytes",
            );
        }
        if self.device.id.len() > 64
            || !self
                .device
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            fail(
                &mut e,
                "device.id",
                "expected at most 64 letters, digits, `-` or `_` (it is an MQTT topic level)",
            );
        }
        e.extend(self.controls.validate());
        self.fleet.validate(&mut e);
        self.update.validate(&mut e);
        e
    }

    /// The state directory this config resolves to.
    pub fn state_dir(&self) -> PathBuf {
        if !self.device.state_dir.as_os_str().is_empty() {
            return self.device.state_dir.clone();
        }
        systemd_dir("STATE_DIRECTORY").unwrap_or_else(|| match self.layout {
            Layout::Installed => PathBuf::from(INSTALLED_STATE_DIR),
            Layout::Development => PathBuf::from("roombox-data"),
        })
    }

    /// The runtime directory (tmpfs under systemd): `$RUNTIME_DIRECTORY`, the unit's for the
    /// installed config, else the state directory.
    fn runtime_dir(&self) -> PathBuf {
        systemd_dir("RUNTIME_DIRECTORY").unwrap_or_else(|| match self.layout {
            Layout::Installed => PathBuf::from(INSTALLED_RUNTIME_DIR),
            Layout::Development => self.state_dir(),
        })
    }

    /// The recordings directory this config resolves to.
    pub fn recording_dir(&self) -> PathBuf {
        if self.recording.dir.as_os_str().is_empty() {
            self.state_dir().join("recordings")
        } else {
            self.recording.dir.clone()
        }
    }

    /// Where HLS segments are written: the runtime directory (tmpfs under systemd), else
    /// `<state_dir>/hls`. They are served from there and never outlive the stream for long.
    pub fn hls_dir(&self) -> PathBuf {
        self.runtime_dir().join("hls")
    }

    /// The control socket path this config resolves to.
    pub fn control_socket(&self) -> PathBuf {
        if !self.control.socket.as_os_str().is_empty() {
            return self.control.socket.clone();
        }
        self.runtime_dir().join("control.sock")
    }

    /// The device id: configured, else `/etc/machine-id`, else the hostname.
    pub fn device_id(&self) -> String {
        if !self.device.id.is_empty() {
            return self.device.id.clone();
        }
        if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
            let id = id.trim();
            if !id.is_empty() {
                return id.to_string();
            }
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "roombox".into())
    }
}

/// The first directory systemd passes in `var` (`StateDirectory=` and friends; several are
/// colon-separated), if any.
fn systemd_dir(var: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var)?;
    let first = v.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

fn check_duration(e: &mut Vec<FieldError>, field: &str, d: Duration, lo: Duration, hi: Duration) {
    if d < lo || d > hi {
        fail(
            e,
            field,
            format!(
                "{} is out of range; expected {} to {}",
                humantime::format_duration(d),
                humantime::format_duration(lo),
                humantime::format_duration(hi)
            ),
        );
    }
}

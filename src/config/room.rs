//! The `[room]` section: which room server the box joins, as whom, and how remote media is
//! played.

use super::{check, check_duration, fail, BackoffConfig, FieldError};
use crate::model::Mode;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Which room server protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomBackendKind {
    /// No room server: room commands answer `unavailable`.
    #[default]
    None,
    /// A Janus VideoRoom over Janus's WebSocket API.
    Janus,
    /// WHIP (RFC 9725) to publish to `url`, WHEP to watch the `[[room.whep]]` sources.
    Whip,
}

/// A stream the box watches over WHEP and shows as a remote participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhepSource {
    /// The participant's name on the screen; its participant id is `whep-` and this name.
    pub name: String,
    /// The WHEP endpoint (`http://` or `https://`).
    pub url: String,
    /// A file holding the endpoint's bearer token; `room.token_file` when empty.
    #[serde(default)]
    pub token_file: PathBuf,
}

/// Joining rooms as the local participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomConfig {
    /// The room server protocol.
    pub backend: RoomBackendKind,
    /// The server's signalling URL: `ws://host:8188` for Janus, the WHIP endpoint for WHIP
    /// (empty to only watch WHEP sources).
    pub url: String,
    /// A file holding the WHIP endpoint's bearer token (its first line); none when empty.
    pub token_file: PathBuf,
    /// WHEP sources to watch (backend `whip`), at most 8.
    pub whep: Vec<WhepSource>,
    /// The room joined when a join command names none.
    pub room_id: String,
    /// Other rooms the web console offers to join, beside `room_id` (at most 32).
    pub rooms: Vec<String>,
    /// The name shown to others; the device name when empty.
    pub display_name: String,
    /// The room's secret (needed to create it with one, end it for everyone, or record it).
    pub secret: String,
    /// The room's PIN (needed to join).
    pub pin: String,
    /// Create the room when it does not exist.
    pub create_room: bool,
    /// Most publishers in a room the box creates.
    pub max_publishers: u32,
    /// Where the server writes cloud recordings of a room the box creates (a path on the
    /// server); the server's default when empty.
    pub record_dir: PathBuf,
    /// Join the configured room when the agent starts.
    pub auto_join: bool,
    /// Microphone on at join.
    pub mic: bool,
    /// Camera on at join.
    pub webcam: bool,
    /// `send-and-receive`, `receive-only` or `signalling-only`.
    pub mode: Mode,
    /// Send and receive chat on the room's data channels.
    pub chat: bool,
    /// How long ICE and DTLS may take before a join counts as failed.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How rejoining after a dropped connection backs off.
    pub reconnect: BackoffConfig,
    /// Remote media playback.
    pub playback: PlaybackConfig,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            backend: RoomBackendKind::None,
            url: "ws://127.0.0.1:8188".into(),
            token_file: PathBuf::new(),
            whep: Vec::new(),
            room_id: "1234".into(),
            rooms: Vec::new(),
            display_name: String::new(),
            secret: String::new(),
            pin: String::new(),
            create_room: true,
            max_publishers: 6,
            record_dir: PathBuf::new(),
            auto_join: false,
            mic: true,
            webcam: true,
            mode: Mode::SendAndReceive,
            chat: true,
            connect_timeout: Duration::from_secs(15),
            reconnect: BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            playback: PlaybackConfig::default(),
        }
    }
}

/// Where remote audio and video go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// `auto`, `alsa`, `none`, or a GStreamer sink description.
    pub audio_sink: String,
    /// ALSA playback device for `audio_sink = "alsa"`.
    pub audio_device: String,
    /// `auto`, `kms`, `window`, `none`, or a GStreamer sink description.
    pub video_sink: String,
    /// Size of the composed grid.
    pub width: u32,
    /// Height of the composed grid.
    pub height: u32,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        PlaybackConfig {
            audio_sink: "auto".into(),
            audio_device: "default".into(),
            video_sink: "auto".into(),
            width: 1280,
            height: 720,
        }
    }
}

/// An `http://` or `https://` URL with a host.
fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

impl RoomConfig {
    /// Checks ranges and relations; pushes every problem.
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        if self.backend == RoomBackendKind::Janus {
            let ok_scheme = self.url.starts_with("ws://") || self.url.starts_with("wss://");
            if !ok_scheme || self.url.len() < 8 {
                fail(
                    e,
                    "room.url",
                    format!("`{}` is not a ws:// or wss:// URL", self.url),
                );
            }
        }
        if self.backend == RoomBackendKind::Whip {
            if self.url.is_empty() && self.whep.is_empty() {
                fail(
                    e,
                    "room.url",
                    "empty, and no [[room.whep]] source: the WHIP backend has nothing to do",
                );
            } else if !self.url.is_empty() && !is_http_url(&self.url) {
                fail(
                    e,
                    "room.url",
                    format!("`{}` is not an http:// or https:// WHIP endpoint", self.url),
                );
            }
        } else if !self.whep.is_empty() {
            fail(e, "room.whep", "WHEP sources need room.backend = \"whip\"");
        }
        self.validate_whep(e);
        if self.backend != RoomBackendKind::None && self.room_id.is_empty() {
            fail(e, "room.room_id", "empty; expected the room to join");
        }
        if self.room_id.len() > 128 || self.room_id.chars().any(|c| c.is_control()) {
            fail(
                e,
                "room.room_id",
                "expected at most 128 printable characters",
            );
        }
        if self.rooms.len() > 32 {
            fail(e, "room.rooms", "at most 32 rooms");
        }
        if self
            .rooms
            .iter()
            .any(|r| r.is_empty() || r.len() > 128 || r.chars().any(|c| c.is_control()))
        {
            fail(e, "room.rooms", "each room: 1 to 128 printable characters");
        }
        if self.display_name.len() > 128 || self.display_name.chars().any(|c| c.is_control()) {
            fail(
                e,
                "room.display_name",
                "expected at most 128 printable characters",
            );
        }
        for (f, v) in [("room.secret", &self.secret), ("room.pin", &self.pin)] {
            if v.len() > 256 || v.chars().any(|c| c.is_control() || c == '"') {
                fail(
                    e,
                    f,
                    "expected at most 256 printable characters without quotes",
                );
            }
        }
        check(e, "room.max_publishers", self.max_publishers, 1, 100);
        check_duration(
            e,
            "room.connect_timeout",
            self.connect_timeout,
            Duration::from_secs(1),
            Duration::from_secs(120),
        );
        self.reconnect.check(e, "room.reconnect");
        let p = &self.playback;
        check(e, "room.playback.width", p.width, 160, 3840);
        check(e, "room.playback.height", p.height, 120, 2160);
        for (f, v) in [
            ("room.playback.audio_sink", &p.audio_sink),
            ("room.playback.video_sink", &p.video_sink),
        ] {
            if v.is_empty() || v.contains('!') {
                fail(
                    e,
                    f,
                    format!("`{v}` is not `auto`, a keyword or one sink element"),
                );
            }
        }
    }

    fn validate_whep(&self, e: &mut Vec<FieldError>) {
        if self.whep.len() > 8 {
            fail(e, "room.whep", "at most 8 WHEP sources");
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in self.whep.iter().enumerate() {
            let name_ok = !w.name.is_empty()
                && w.name.len() <= 64
                && w.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok {
                fail(
                    e,
                    &format!("room.whep[{i}].name"),
                    format!("`{}`: expected 1 to 64 letters, digits, `-` or `_`", w.name),
                );
            } else if !seen.insert(w.name.as_str()) {
                fail(
                    e,
                    &format!("room.whep[{i}].name"),
                    format!("`{}` names two sources", w.name),
                );
            }
            if !is_http_url(&w.url) {
                fail(
                    e,
                    &format!("room.whep[{i}].url"),
                    format!("`{}` is not an http:// or https:// WHEP endpoint", w.url),
                );
            }
        }
    }

    /// The display name to join with: configured, else the device's name.
    pub fn display_name_or<'a>(&'a self, device_name: &'a str) -> &'a str {
        if self.display_name.is_empty() {
            device_name
        } else {
            &self.display_name
        }
    }
}

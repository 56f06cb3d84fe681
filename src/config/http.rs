//! `[http]`: the box's one HTTP front door (HLS today; transcripts and the console build on it),
//! and `[hls]`.

use super::{check, check_duration, fail, FieldError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve at all.
    pub enabled: bool,
    /// Address to listen on. Loopback by default: anything wider needs `token`.
    pub bind: IpAddr,
    /// TCP port; 0 picks a free one (tests).
    pub port: u16,
    /// The access token every request must carry (`Authorization: Bearer …` or `?token=…`)
    /// when `bind` is not loopback. Prefer `token_file`; with neither, the box makes its own in
    /// `<state_dir>/console-token`, which `roombox console-token` prints and rotates.
    pub token: String,
    /// A file holding the token.
    pub token_file: PathBuf,
    /// The host name players are given in playback URLs; the machine's host name when empty
    /// and `bind` is unspecified, else `bind`.
    pub public_host: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8480,
            token: String::new(),
            token_file: PathBuf::new(),
            public_host: String::new(),
        }
    }
}

/// HLS served by the box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Segment length. Keyframes are asked of the shared encoder at each boundary while HLS
    /// runs, so segments are this long whatever `media.video.keyframe_interval` is.
    #[serde(with = "humantime_serde")]
    pub segment: Duration,
    /// Part length for low-latency HLS: players that know LL-HLS (hls.js, Safari) load parts
    /// as they are made and play about three parts behind the live edge.
    #[serde(with = "humantime_serde")]
    pub part: Duration,
    /// Segments listed in the playlist.
    pub playlist_length: u32,
    /// Start HLS with the agent.
    pub autostart: bool,
    /// `room` (the box's own camera and mic) or `meeting` (every participant; `[media.meeting]`).
    pub source: crate::model::OutputSource,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment: Duration::from_secs(1),
            part: Duration::from_millis(200),
            playlist_length: 4,
            autostart: false,
            source: crate::model::OutputSource::Room,
        }
    }
}

impl HttpConfig {
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        // Beyond loopback with neither token nor token_file, the box makes its own pairing
        // token in the state directory (`roombox console-token` prints it).
        if !self.token.is_empty() && self.token.len() < 16 {
            fail(e, "http.token", "is shorter than 16 characters");
        }
        if self
            .public_host
            .chars()
            .any(|c| c.is_whitespace() || c == '/')
        {
            fail(e, "http.public_host", "expected a host name");
        }
    }
}

impl HlsConfig {
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        check_duration(
            e,
            "hls.segment",
            self.segment,
            Duration::from_secs(1),
            Duration::from_secs(10),
        );
        if self.segment.subsec_nanos() != 0 {
            fail(
                e,
                "hls.segment",
                "must be whole seconds (HLS target durations are)",
            );
        }
        check_duration(
            e,
            "hls.part",
            self.part,
            Duration::from_millis(100),
            Duration::from_secs(1),
        );
        if self.part > self.segment / 2 {
            fail(e, "hls.part", "must be at most half of hls.segment");
        }
        check(e, "hls.playlist_length", self.playlist_length, 3, 20);
    }
}

//! `[livestream]`: RTMP outputs the box can simulcast to, and the fallback that streams on its own
//! when the room is unreachable.

use super::{check_duration, fail, BackoffConfig, FieldError};
use crate::model::{check_output_name, check_url, StreamKey};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// RTMP simulcast and fallback.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivestreamConfig {
    /// Outputs `start-livestream` uses when it names none, and the fallback's output.
    pub outputs: Vec<OutputConfig>,
    /// How soon an output that lost its ingest tries again.
    pub reconnect: BackoffConfig,
    /// Stream on its own when the room is unreachable.
    pub fallback: FallbackConfig,
}

/// One configured RTMP output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Unique name (`youtube`); it names the output in events and status.
    pub name: String,
    /// `rtmp://host[:port]/app` or `rtmps://…`, without the key.
    pub url: String,
    /// The stream key. Prefer `stream_key_file`, so the key stays out of the config.
    pub stream_key: StreamKey,
    /// A file holding the stream key (read at each start; trailing whitespace ignored).
    pub stream_key_file: PathBuf,
    /// `room` (the box's own camera and mic) or `meeting` (every participant; `[media.meeting]`).
    pub source: crate::model::OutputSource,
}

/// What the fallback does once the room is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackReturn {
    /// Stop the fallback stream once the box has rejoined.
    #[default]
    Stop,
    /// Keep streaming until `stop-livestream`.
    Stay,
}

/// `[livestream.fallback]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// The name of the output in `[[livestream.outputs]]` to stream to; off when empty.
    pub output: String,
    /// How long the room must be unreachable (while the box is meant to be in it) first.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// What happens once the room is back.
    pub on_return: FallbackReturn,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            output: String::new(),
            after: Duration::from_secs(10),
            on_return: FallbackReturn::Stop,
        }
    }
}

impl LivestreamConfig {
    /// The configured output of that name.
    pub fn output(&self, name: &str) -> Option<&OutputConfig> {
        self.outputs.iter().find(|o| o.name == name)
    }

    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        if self.outputs.len() > 8 {
            fail(e, "livestream.outputs", "at most 8 outputs");
        }
        for (i, o) in self.outputs.iter().enumerate() {
            let field = |f: &str| format!("livestream.outputs[{i}].{f}");
            if let Err(m) = check_output_name(&o.name) {
                fail(e, &field("name"), m);
            }
            if self.outputs[..i].iter().any(|p| p.name == o.name) {
                fail(e, &field("name"), format!("`{}` is used twice", o.name));
            }
            if let Err(m) = check_url(&o.url) {
                fail(e, &field("url"), m);
            }
            if !o.stream_key.is_empty() && !o.stream_key_file.as_os_str().is_empty() {
                fail(
                    e,
                    &field("stream_key_file"),
                    "set either stream_key or stream_key_file, not both",
                );
            }
        }
        self.reconnect.check(e, "livestream.reconnect");
        let f = &self.fallback;
        if !f.output.is_empty() && self.output(&f.output).is_none() {
            fail(
                e,
                "livestream.fallback.output",
                format!(
                    "`{}` is not the name of an output in [[livestream.outputs]]",
                    f.output
                ),
            );
        }
        check_duration(
            e,
            "livestream.fallback.after",
            f.after,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
    }
}

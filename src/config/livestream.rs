//! `[livestream]`: RTMP outputs the box can simulcast to, and the fallback that streams on its own
//! when the room is unreachable.

use super::{check_duration, fail, BackoffConfig, FieldError};
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

/// Output names are event fields and consumer ids: short, printable, no spaces.
pub fn check_output_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "`{name}` is not a valid output name; expected 1 to 32 letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

/// A stream key. Its `Debug` and `Display` print `****`, so it cannot leak through a log line
/// by accident; the state and events never hold one (they show redacted URLs). It serializes as
/// itself, since commands that carry it travel as JSON.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct StreamKey(String);

impl StreamKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> StreamKey {
        StreamKey(key.into().trim().to_string())
    }

    /// The key itself, for the one place that needs it: the sink's location.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the key replaced by `****`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "****")
        }
    }
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

/// Checks an RTMP URL: `rtmp://` or `rtmps://`, a host, and an application path.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    let rest = url
        .strip_prefix("rtmp://")
        .or_else(|| url.strip_prefix("rtmps://"))
        .ok_or_else(|| format!("`{}` is not an rtmp:// or rtmps:// URL", redact_tail(url)))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{}` has no host", redact_tail(url)));
    }
    if path.trim_matches('/').is_empty() {
        return Err(format!(
            "`{}` has no application path (rtmp://host/app)",
            redact_tail(url)
        ));
    }
    Ok(())
}

/// A URL for an error message: everything after the application path hidden, since people
/// paste URLs with the key inside.
fn redact_tail(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let mut parts = rest.splitn(3, '/');
    let host = parts.next().unwrap_or("");
    let app = parts.next();
    let more = parts.next().is_some();
    let mut out = if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    };
    if let Some(app) = app {
        out.push('/');
        out.push_str(app);
    }
    if more {
        out.push_str("/****");
    }
    out
}

//! Where the calendar comes from, behind one small trait: CalDAV (`caldav.rs`), an iCalendar
//! subscription URL (`ics_url.rs`) and a local file (`file.rs`); and the edits a booking and a
//! release make to an event's text (`edit.rs`).
//!
//! A source reads the events of a window and says when nothing changed (cheaply: a CalDAV
//! collection's ctag, an ETag, a file's size and time), so a poll that finds nothing new costs
//! one small request. Only CalDAV can be written to: book-now and no-show release.

mod caldav;
pub mod edit;
mod file;
mod ics_url;

pub use caldav::CalDav;
pub use file::IcsFile;
pub use ics_url::IcsUrl;

use super::expand::Meeting;
use super::ics::{ParseError, Parsed};
use crate::config::{CalendarConfig, CalendarSource};
use chrono::{DateTime, Utc};
use std::fmt;
use std::time::Duration;

/// A password read from `calendar.password_file`. Its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// HTTP basic auth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// Why a read or a write failed. None of them carries the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} refused the credentials (HTTP {status}); check calendar.username and calendar.password_file")]
    Unauthorized { url: String, status: u16 },
    #[error("{url} answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{url}: {source}")]
    Parse { url: String, source: ParseError },
    #[error("{url}: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    /// Someone else wrote first (If-None-Match or If-Match failed).
    #[error("someone else changed the calendar first; nothing was written")]
    Conflict,
    #[error("{0}")]
    Unsupported(&'static str),
}

/// What a read found.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub parsed: Parsed,
    /// CalDAV: where each UID lives and its ETag, for a release to rewrite it.
    pub resources: Vec<Resource>,
}

/// One calendar object resource on a CalDAV server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub uid: String,
    pub href: String,
    pub etag: Option<String>,
}

/// A new booking, for book-now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Both the UID and the resource's name: two boxes booking the same free time pick the
    /// same one, so `If-None-Match: *` lets only the first write.
    pub uid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub title: String,
    pub device_id: String,
    pub room_address: Option<String>,
}

/// A calendar the box reads (and, for CalDAV, writes).
#[async_trait::async_trait]
pub trait Source: Send {
    /// The events of `[from, to)`; `None` when nothing changed since the last read of the same
    /// window.
    async fn fetch(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<Fetched>, SourceError>;

    /// Writes a new booking; [`SourceError::Conflict`] when one of the same name exists.
    async fn book(&mut self, _booking: &Booking) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(
            "book-now needs a CalDAV calendar (calendar.source = \"caldav\")",
        ))
    }

    /// Gives a meeting back: deletes a booking this box made, else declines for the room.
    async fn release(
        &mut self,
        _meeting: &Meeting,
        _room_address: Option<&str>,
    ) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(
            "releasing a booking needs a CalDAV calendar (calendar.source = \"caldav\")",
        ))
    }
}

/// The password file's first line; the file's name (never its content) in the error.
pub fn read_password(c: &CalendarConfig) -> Result<Option<Secret>, String> {
    let path = &c.password_file;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    std::fs::read_to_string(path)
        .map(|s| Some(Secret::new(s.lines().next().unwrap_or("").to_string())))
        .map_err(|e| format!("cannot read calendar.password_file {}: {e}", path.display()))
}

/// The source `[calendar]` names, with its password already read; none when it is off.
pub fn from_config(
    c: &CalendarConfig,
    password: Option<Secret>,
) -> Result<Option<Box<dyn Source>>, SourceError> {
    let creds = (!c.username.is_empty()).then(|| Credentials {
        username: c.username.clone(),
        password: password.unwrap_or_default(),
    });
    Ok(match c.source {
        CalendarSource::None => None,
        CalendarSource::Caldav => Some(Box::new(CalDav::new(&c.url, creds, c.timeout)?)),
        CalendarSource::IcsUrl => Some(Box::new(IcsUrl::new(&c.url, creds, c.timeout)?)),
        CalendarSource::File => Some(Box::new(IcsFile::new(c.file.clone()))),
    })
}

/// The HTTP client every source uses: a timeout, no redirects to other hosts' credentials.
/// Without the system's CA certificates (a minimal Debian without ca-certificates) no
/// TLS-capable client can be made: the box then reads plain http:// calendars, and an https://
/// one fails with the certificate error.
fn client(timeout: Duration, url: &str) -> Result<reqwest::Client, SourceError> {
    let builder = || {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("roombox/", env!("CARGO_PKG_VERSION")))
    };
    builder()
        .build()
        .or_else(|e| {
            tracing::warn!(error = %e, "calendar: no CA certificates (install ca-certificates for https://); plain http:// only");
            builder().tls_certs_only(std::iter::empty()).build()
        })
        .map_err(|e| SourceError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// A transport error in words, without the URL's query (a subscription link's secret).
fn unreachable(url: &str, e: &reqwest::Error) -> SourceError {
    let reason = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection refused or no route".to_string()
    } else {
        // reqwest's words name the URL with its query; the cause alone is enough.
        std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "request failed".to_string())
    };
    SourceError::Unreachable {
        url: redact(url),
        reason,
    }
}

/// A URL fit for a log: its query (where subscription links keep their secret) cut.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// A status that is not success, as an error.
fn status_error(url: &str, status: reqwest::StatusCode) -> SourceError {
    match status.as_u16() {
        401 | 403 => SourceError::Unauthorized {
            url: redact(url),
            status: status.as_u16(),
        },
        412 => SourceError::Conflict,
        s => SourceError::Http {
            url: redact(url),
            status: s,
        },
    }
}

/// Reads a body up to [`super::ics::MAX_ICS_BYTES`], as text.
async fn body(url: &str, mut resp: reqwest::Response) -> Result<String, SourceError> {
    let max = super::ics::MAX_ICS_BYTES;
    if resp.content_length().is_some_and(|l| l as usize > max) {
        return Err(SourceError::Parse {
            url: redact(url),
            source: ParseError::TooLarge(resp.content_length().unwrap_or(0) as usize),
        });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(url, &e))? {
        buf.extend_from_slice(&chunk);
        if buf.len() > max {
            return Err(SourceError::Parse {
                url: redact(url),
                source: ParseError::TooLarge(buf.len()),
            });
        }
    }
    String::from_utf8(buf).map_err(|_| SourceError::Parse {
        url: redact(url),
        source: ParseError::NotICalendar("the answer is not UTF-8 text".into()),
    })
}

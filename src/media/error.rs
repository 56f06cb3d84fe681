//! The media engine's one error type: what went wrong, typed, so callers can tell a missing
//! plugin from a full disk or a refused ingest without matching on text.

/// A media failure. Its `Display` is the sentence a person reads in an event or `roombox status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// A GStreamer element is not installed (a plugin package is missing).
    #[error("GStreamer element `{0}` is not available")]
    MissingElement(String),
    /// An element refused a property or its value.
    #[error("{element}: {message}")]
    Property {
        /// The element's type.
        element: String,
        /// What was refused.
        message: String,
    },
    /// Two elements would not link (caps or pads disagree).
    #[error("cannot link {what}: {detail}")]
    Link {
        /// Which part of a pipeline.
        what: String,
        /// GStreamer's reason.
        detail: String,
    },
    /// A pipeline or element would not change state.
    #[error("{0} did not start")]
    Start(String),
    /// The configuration has no source for what a consumer asked.
    #[error("there is no {0} source")]
    NoSource(&'static str),
    /// No H.264 encoder works on this machine.
    #[error("no H.264 encoder works on this machine")]
    NoEncoder,
    /// The disk is (nearly) full.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// A file or directory could not be used.
    #[error("{path}: {message}")]
    Io {
        path: String,
        /// The OS's reason.
        message: String,
    },
    /// An element reported an error while running (its bus message, with the element's name).
    #[error("{0}")]
    Runtime(String),
    /// A camera or microphone stopped delivering.
    #[error("{0}")]
    Stalled(String),
}

impl MediaError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> MediaError {
        MediaError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// A link failure in `what`.
    pub fn link(what: impl Into<String>, e: impl std::fmt::Debug) -> MediaError {
        MediaError::Link {
            what: what.into(),
            detail: format!("{e:?}"),
        }
    }

    /// A stable code for events and telemetry (`Event::Error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::MissingElement(_) => "missing-element",
            MediaError::Property { .. } | MediaError::Link { .. } => "pipeline",
            MediaError::Start(_) => "start",
            MediaError::NoSource(_) => "no-source",
            MediaError::NoEncoder => "no-encoder",
            MediaError::DiskFull(_) => "disk-full",
            MediaError::Io { .. } => "io",
            MediaError::Runtime(_) => "runtime",
            MediaError::Stalled(_) => "stalled",
        }
    }

    /// The error of a bus message, naming the element that posted it. A full disk is recognised
    /// from the OS's words, which GStreamer passes along in the message or its debug text.
    pub fn from_bus(msg: &gstreamer::Message, err: &gstreamer::message::Error) -> MediaError {
        use gstreamer::prelude::*;
        let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
        let text = err.error().to_string();
        let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
        if text.contains("No space left") || debug.contains("No space left") {
            return MediaError::DiskFull(text);
        }
        if src.is_empty() {
            MediaError::Runtime(text)
        } else {
            MediaError::Runtime(format!("{src}: {text}"))
        }
    }
}

/// Media results.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences_and_carry_stable_codes() {
        let e = MediaError::MissingElement("rtmp2sink".into());
        assert_eq!(
            e.to_string(),
            "GStreamer element `rtmp2sink` is not available"
        );
        assert_eq!(e.code(), "missing-element");
        assert_eq!(
            MediaError::DiskFull("write failed".into()).to_string(),
            "disk full: write failed"
        );
        assert_eq!(
            MediaError::NoSource("video").to_string(),
            "there is no video source"
        );
    }
}

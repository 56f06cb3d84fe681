//! `[media.meeting]`: how the meeting feed lays out the participants for the outputs whose
//! `source = "meeting"` (the recording, an RTMP output, HLS).

use super::{fail, FieldError};
use crate::model::LayoutKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[media.meeting]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeetingConfig {
    /// `grid`, `spotlight` or `sidebar`.
    pub layout: LayoutKind,
    /// How long someone new must speak before they take the focus (spotlight, sidebar, and the
    /// last place of a full grid), 0s..=10s: a cough does not move the tiles.
    #[serde(with = "humantime_serde")]
    pub speaker_hold: Duration,
}

impl Default for MeetingConfig {
    fn default() -> Self {
        MeetingConfig {
            layout: LayoutKind::Grid,
            speaker_hold: Duration::from_millis(1500),
        }
    }
}

impl MeetingConfig {
    pub(super) fn validate(&self, e: &mut Vec<FieldError>) {
        if self.speaker_hold > Duration::from_secs(10) {
            fail(
                e,
                "media.meeting.speaker_hold",
                format!(
                    "{} is above 10s; expected 0s..=10s",
                    humantime::format_duration(self.speaker_hold)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::model::{LayoutKind, OutputSource};
    use std::time::Duration;

    fn errors(toml: &str) -> String {
        match load_str("meeting.toml", toml) {
            Ok(_) => String::new(),
            Err(e) => e.iter().map(|e| format!("{e}\n")).collect(),
        }
    }

    #[test]
    fn every_output_is_the_room_unless_it_says_meeting() {
        let c = load_str("a.toml", "").unwrap().config;
        assert_eq!(c.recording.source, OutputSource::Room);
        assert_eq!(c.hls.source, OutputSource::Room);
        assert_eq!(c.media.meeting.layout, LayoutKind::Grid);
        let c = load_str(
            "b.toml",
            "[media.meeting]\nlayout = \"spotlight\"\nspeaker_hold = \"2s\"\n\
             [recording]\nsource = \"meeting\"\n[hls]\nsource = \"room\"\n\
             [[livestream.outputs]]\nname = \"yt\"\nurl = \"rtmp://127.0.0.1/live\"\nsource = \"meeting\"\n",
        )
        .unwrap()
        .config;
        assert_eq!(c.recording.source, OutputSource::Meeting);
        assert_eq!(c.hls.source, OutputSource::Room);
        assert_eq!(c.livestream.outputs[0].source, OutputSource::Meeting);
        assert_eq!(c.media.meeting.layout, LayoutKind::Spotlight);
        assert_eq!(c.media.meeting.speaker_hold, Duration::from_secs(2));
    }

    #[test]
    fn a_bad_source_layout_or_hold_is_an_error_with_its_line() {
        let e = errors("[recording]\nsource = \"everyone\"\n");
        assert!(e.contains("meeting.toml:2") && e.contains("source"), "{e}");
        let e = errors("[media.meeting]\nlayout = \"mosaic\"\n");
        assert!(e.contains("layout"), "{e}");
        let e = errors("[media.meeting]\nspeaker_hold = \"30s\"\n");
        assert!(
            e.contains("media.meeting.speaker_hold") && e.contains("10s"),
            "{e}"
        );
    }
}

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

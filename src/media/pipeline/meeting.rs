//! The capture's part of the meeting feed: its composition, built when a consumer first takes a
//! meeting feed and taken out when none does (`media::meeting`).

use super::{Capture, KeyframeRequester};
use crate::config::Config;
use crate::media::error::Result;
use crate::media::meeting::{compose::Compose, MeetingHub};
use gstreamer::prelude::*;

impl Capture {
    /// The meeting's composition, built on first demand.
    pub(super) fn meeting(&mut self) -> Result<&mut Compose> {
        if self.meeting.is_none() {
            let name = self
                .encoder
                .as_ref()
                .and_then(|e| e.factory())
                .map(|f| f.name().to_string());
            let encoder = name.as_deref().zip(self.spec);
            let compose = Compose::build(
                &self.pipeline,
                self.meeting_settings.clone(),
                self.rawvtee.as_ref(),
                self.rawtee.as_ref(),
                encoder,
                MeetingHub::shared(),
            )?;
            tracing::info!("meeting feed: composing");
            self.meeting = Some(compose);
        }
        Ok(self.meeting.as_mut().expect("just built"))
    }

    /// Takes the meeting's composition out (no consumer takes it any more).
    pub fn drop_meeting(&mut self) {
        if let Some(m) = self.meeting.take() {
            m.release(&self.pipeline);
            tracing::info!("meeting feed: stopped");
        }
    }

    /// The handle meeting consumers use to ask the meeting's encoder for keyframes.
    pub fn meeting_keyframes(&self) -> KeyframeRequester {
        self.meeting
            .as_ref()
            .map(|m| m.keyframes())
            .unwrap_or_default()
    }
}

/// The box's label in the meeting's picture: its name in the room, else its device name.
pub(super) fn local_name(config: &Config) -> String {
    [&config.room.display_name, &config.device.name]
        .into_iter()
        .find(|n| !n.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "roombox".into())
}

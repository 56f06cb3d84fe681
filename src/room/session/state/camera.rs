//! The camera: what leaves the box while it goes off and on, and when the publication is
//! renegotiated so the others see it off rather than a frozen picture.

use super::{notice, Action, SessionState};
use crate::room::RoomNotice;

/// How a renegotiation of the publisher's video went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renegotiation {
    /// The server answered and the answer applied: the video is negotiated as asked.
    Done,
    /// Nothing to renegotiate (no video track), or the backend cannot: the video stays as it
    /// was negotiated, and the camera gate alone decides what leaves.
    Skipped,
    /// No offer could be made; the reason.
    NoOffer(String),
    /// The server refused or its answer did not apply; the reason.
    Failed(String),
}

/// The camera as the publisher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Camera {
    /// No video is sent.
    Off,
    /// Just turned on: video resumes at the next keyframe (asked for), since a receiver cannot
    /// decode from a delta frame.
    Resuming,
    /// Every video sample is sent.
    On,
}

impl SessionState {
    /// Camera off stops the video at once (the gate in [`SessionState::admit_video`]), then
    /// renegotiates the publisher with the video inactive, so the server tells the others the
    /// stream is off. Camera on renegotiates it back to sending and resumes at a keyframe,
    /// asked for once the room expects video again.
    pub fn set_camera(&mut self, on: bool) -> Vec<Action> {
        match (on, self.camera) {
            (false, Camera::Off) | (true, Camera::On | Camera::Resuming) => return Vec::new(),
            (false, _) => self.camera = Camera::Off,
            (true, Camera::Off) => self.camera = Camera::Resuming,
        }
        let mut out = self.sync_video();
        let publishing_video = self
            .link
            .as_ref()
            .and_then(|l| l.publisher)
            .is_some_and(|p| p.video);
        if on && publishing_video {
            out.push(notice(RoomNotice::KeyframeRequested));
        }
        out
    }

    /// Whether a video sample may leave: none with the camera off, and after it comes back on,
    /// none before a keyframe.
    pub fn admit_video(&mut self, keyframe: bool) -> bool {
        match self.camera {
            Camera::Off => false,
            Camera::Resuming if !keyframe => false,
            Camera::Resuming => {
                self.camera = Camera::On;
                true
            }
            Camera::On => true,
        }
    }

    /// Renegotiates the publisher's video when what the room was told differs from the camera
    /// (after a camera change, or once a publisher that joined with the camera off connects).
    pub(super) fn sync_video(&self) -> Vec<Action> {
        let on = self.camera != Camera::Off;
        let differs = self.link.as_ref().is_some_and(|l| {
            l.connected && l.publisher.is_some_and(|p| p.video && p.video_on != on)
        });
        if differs {
            vec![Action::Renegotiate(on)]
        } else {
            Vec::new()
        }
    }

    /// The outcome of [`Action::Renegotiate`]. A failure leaves the video as last negotiated
    /// (with the camera off, nothing is written to it either way) and tells the agent what the
    /// others see; the meeting goes on.
    pub fn renegotiated(&mut self, on: bool, outcome: Renegotiation) -> Vec<Action> {
        let what = if on { "camera on" } else { "camera off" };
        match outcome {
            Renegotiation::Done => {
                if let Some(p) = self.link.as_mut().and_then(|l| l.publisher.as_mut()) {
                    p.video_on = on;
                }
                Vec::new()
            }
            Renegotiation::Skipped => Vec::new(),
            Renegotiation::NoOffer(e) => vec![notice(RoomNotice::Error(format!(
                "{what}: the others are not told (no offer: {e})"
            )))],
            Renegotiation::Failed(failure) => {
                let consequence = if on {
                    "the others still see the camera off"
                } else {
                    "no video is sent, but the others are not told the camera is off"
                };
                vec![notice(RoomNotice::Error(format!(
                    "{what}: renegotiation with the {} room failed ({failure}); {consequence}",
                    self.backend
                )))]
            }
        }
    }
}

//! The camera and the content share: what leaves the box while they go off and on, and when
//! the publication is renegotiated so the others see them off rather than a frozen picture
//! (and see the share arrive, as a second video described as a share).

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

/// The content share as the publisher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// No share is sent.
    Off,
    /// Asked for: its samples leave once the room has taken the renegotiation, from a
    /// keyframe.
    Resuming,
    /// Every share sample is sent.
    On,
}

impl SessionState {
    /// The share started (true) or stopped: its samples stop at once when it stops, and the
    /// publication is renegotiated (a second video described as a share, or that video
    /// inactive) once connected.
    pub fn set_share(&mut self, on: bool) -> Vec<Action> {
        match (on, self.share) {
            (false, Share::Off) | (true, Share::On | Share::Resuming) => return Vec::new(),
            (false, _) => self.share = Share::Off,
            (true, Share::Off) => self.share = Share::Resuming,
        }
        self.sync_share()
    }

    /// Whether a share sample may leave: only once the room takes the share, from a keyframe.
    pub fn admit_share(&mut self, keyframe: bool) -> bool {
        let negotiated = self
            .link
            .as_ref()
            .and_then(|l| l.publisher)
            .is_some_and(|p| p.share_on);
        match self.share {
            _ if !negotiated => false,
            Share::Off => false,
            Share::Resuming if !keyframe => false,
            Share::Resuming => {
                self.share = Share::On;
                true
            }
            Share::On => true,
        }
    }

    /// Renegotiates the share when what the room was told differs from what is asked.
    pub(super) fn sync_share(&self) -> Vec<Action> {
        let on = self.share != Share::Off;
        let differs = self
            .link
            .as_ref()
            .is_some_and(|l| l.connected && l.publisher.is_some_and(|p| p.share_on != on));
        if differs {
            vec![Action::RenegotiateShare(on)]
        } else {
            Vec::new()
        }
    }

    /// The outcome of [`Action::RenegotiateShare`]. A failure leaves the share as last
    /// negotiated and tells the agent; the meeting goes on.
    pub fn share_renegotiated(&mut self, on: bool, outcome: Renegotiation) -> Vec<Action> {
        match outcome {
            Renegotiation::Done => {
                if let Some(p) = self.link.as_mut().and_then(|l| l.publisher.as_mut()) {
                    p.share_on = on;
                }
                // Asked again meanwhile (a quick stop and start): catch up.
                self.sync_share()
            }
            Renegotiation::Skipped => Vec::new(),
            Renegotiation::NoOffer(e) | Renegotiation::Failed(e) => {
                vec![notice(RoomNotice::Error(format!(
                    "share {}: the room was not told ({e})",
                    if on { "on" } else { "off" }
                )))]
            }
        }
    }
}

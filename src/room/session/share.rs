//! The content share on the publisher: renegotiating it in (a second video m-line, described
//! as a share to the room) and out, and sending its samples once the room has taken it.

use super::state::Renegotiation;
use super::Session;
use crate::media::EncodedSample;
use crate::room::signaller::{PublishKinds, RoomError};
use std::time::{Duration, Instant};

/// The share's frame time when two samples do not say (its lowest configurable rate).
const SHARE_FRAME: Duration = Duration::from_millis(200);

impl Session {
    /// Offers the share sending (`on`) or inactive and applies the room's answer, or rolls the
    /// offer back. Microphone samples keep flowing meanwhile; video and share samples wait.
    pub(super) async fn renegotiate_share(&mut self, on: bool) -> Renegotiation {
        let what = if on { "share on" } else { "share off" };
        let Some(publisher) = self.conns.publisher.as_mut() else {
            return Renegotiation::Skipped;
        };
        let (offer, mid) = match publisher.share_offer(on).await {
            Ok(Some(o)) => o,
            Ok(None) => return Renegotiation::Skipped,
            Err(e) => {
                tracing::warn!(error = %e, "room: {what}: no renegotiation offer");
                let _ = publisher.share_rollback(!on).await;
                return Renegotiation::NoOffer(e.to_string());
            }
        };
        let kinds = PublishKinds {
            audio: publisher.audio.is_some(),
            video: publisher.video.is_some(),
            data: publisher.chat.is_some(),
            share: mid,
        };
        let started = Instant::now();
        let result = self.offer_keeping_audio(&offer, kinds).await;
        let Some(publisher) = self.conns.publisher.as_mut() else {
            return Renegotiation::Skipped;
        };
        let failure = match result {
            Ok(answer) => match publisher.answer(answer).await {
                Ok(()) => {
                    tracing::info!(elapsed = ?started.elapsed(), "room: {what}: renegotiated");
                    if on && self.conns.share_task.is_none() {
                        // A subscriber that joins asks for a keyframe (Janus sends a PLI):
                        // it gets one of the share's at once, not at its next interval.
                        let tx = self.inner_tx.clone();
                        let (start, max) = self.video_kbps;
                        self.conns.share_task = publisher.share.clone().map(|t| {
                            tokio::spawn(super::tasks::feedback_loop(
                                t,
                                tx,
                                super::super::rtcp::Feedback::new(start, max),
                                true,
                            ))
                        });
                    }
                    return Renegotiation::Done;
                }
                Err(e) => format!("the answer was not usable: {e}"),
            },
            Err(RoomError::Unsupported(e)) => {
                tracing::debug!(backend = self.signaller.name(), "room: {what}: {e}");
                let _ = publisher.share_rollback(!on).await;
                return Renegotiation::Skipped;
            }
            Err(e) => e.to_string(),
        };
        if let Err(e) = publisher.share_rollback(!on).await {
            tracing::warn!(error = %e, "room: {what}: rollback failed");
        }
        tracing::warn!(error = %failure, "room: {what}: renegotiation failed");
        Renegotiation::Failed(failure)
    }

    /// Sends one share sample, once the room has taken the share and from a keyframe.
    pub(super) async fn send_share(&mut self, s: EncodedSample) {
        if !self.state.admit_share(s.keyframe) {
            return;
        }
        let Some(track) = self.conns.publisher.as_ref().and_then(|p| p.share.clone()) else {
            return;
        };
        let duration = match (s.pts, self.last_share) {
            (Some(p), Some(l)) if p > l && p - l < Duration::from_secs(1) => p - l,
            _ => s.duration.unwrap_or(SHARE_FRAME),
        };
        self.last_share = s.pts;
        if let Err(e) = track.write(&s, duration).await {
            tracing::trace!(error = %e, "room: share sample not sent");
        }
    }
}

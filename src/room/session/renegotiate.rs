//! Offers made again on running connections: a subscription the server offers anew, and the
//! publisher renegotiated for the camera going off or on.

use super::state::{Action, Renegotiation};
use super::{send_audio, Session};
use crate::model::StreamKind;
use crate::room::peer;
use crate::room::signaller::{PublishKinds, RoomError};
use std::time::Instant;

impl Session {
    /// Answers the server's new offer for a subscription; if that fails, the state subscribes
    /// afresh.
    pub(super) async fn reanswer(
        &mut self,
        who: &str,
        subscription_id: &str,
        offer: String,
    ) -> Vec<Action> {
        let Some(pc) = self.conns.subs.get(subscription_id).map(|s| s.pc.clone()) else {
            return Vec::new();
        };
        let result = match peer::reanswer(&pc, offer).await {
            Ok(answer) => self.signaller.accept(subscription_id, &answer).await,
            Err(e) => Err(RoomError::Protocol(format!("webrtc answer: {e}"))),
        };
        match result {
            Ok(()) => {
                tracing::info!(participant = %who, "room: subscription renegotiated");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(participant = %who, error = %e, "room: renegotiating a subscription failed; resubscribing");
                self.state.reanswer_failed(who)
            }
        }
    }

    /// Offers the publisher's video `on` or off to the room server and applies its answer, or
    /// rolls the offer back.
    pub(super) async fn renegotiate(&mut self, on: bool) -> Renegotiation {
        let what = if on { "camera on" } else { "camera off" };
        let Some(publisher) = self.conns.publisher.as_mut() else {
            return Renegotiation::Skipped;
        };
        let offer = match publisher.video_offer(on).await {
            Ok(Some(offer)) => offer,
            Ok(None) => return Renegotiation::Skipped,
            Err(e) => {
                tracing::warn!(error = %e, "room: {what}: no renegotiation offer");
                let _ = publisher.rollback(!on).await;
                return Renegotiation::NoOffer(e.to_string());
            }
        };
        let kinds = PublishKinds {
            audio: publisher.audio.is_some(),
            video: on,
            data: publisher.chat.is_some(),
            share: publisher.share_mid(),
        };
        let started = Instant::now();
        // Video samples are dropped meanwhile: with the camera going off none may leave, and
        // coming on it resumes at the keyframe asked for once the room expects video.
        let result = self.offer_keeping_audio(&offer, kinds).await;
        let Some(publisher) = self.conns.publisher.as_mut() else {
            return Renegotiation::Skipped;
        };
        let failure = match result {
            Ok(answer) => match publisher.answer(answer).await {
                Ok(()) => {
                    tracing::info!(elapsed = ?started.elapsed(), "room: {what}: renegotiated");
                    return Renegotiation::Done;
                }
                Err(e) => format!("the answer was not usable: {e}"),
            },
            Err(RoomError::Unsupported(e)) => {
                tracing::debug!(backend = self.signaller.name(), "room: {what}: {e}");
                let _ = publisher.rollback(!on).await;
                return Renegotiation::Skipped;
            }
            Err(e) => e.to_string(),
        };
        if let Err(e) = publisher.rollback(!on).await {
            tracing::warn!(error = %e, "room: {what}: rollback failed");
        }
        tracing::warn!(
            backend = self.signaller.name(),
            error = %failure,
            "room: {what}: renegotiation failed; the video stays as it was negotiated"
        );
        Renegotiation::Failed(failure)
    }

    /// Sends a renegotiation `offer` and waits for the answer, which may take up to the
    /// signalling timeout: the microphone keeps sending meanwhile, other samples are dropped.
    /// A backend that cannot renegotiate (WHIP) answers `Unsupported` at once.
    pub(super) async fn offer_keeping_audio(
        &mut self,
        offer: &str,
        kinds: PublishKinds,
    ) -> Result<String, RoomError> {
        let audio = self.conns.publisher.as_ref().and_then(|p| p.audio.clone());
        let stats = self.stats.clone();
        let answer = self.signaller.renegotiate(offer, kinds);
        tokio::pin!(answer);
        loop {
            tokio::select! {
                r = &mut answer => return r,
                Some(s) = self.tap_rx.recv() => {
                    if let (StreamKind::Audio, Some(track)) = (s.kind, audio.as_ref()) {
                        send_audio(track, &s, &stats).await;
                    }
                }
            }
        }
    }
}

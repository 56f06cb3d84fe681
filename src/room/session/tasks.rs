//! The session's helper tasks: each reads one stream (RTCP, a data channel, a remote track) and
//! hands what it finds to the session task as an [`Inner`] message, so the session alone owns
//! its state.

use super::super::peer::LocalTrack;
use super::super::rtcp::{EncoderRequest, Feedback};
use crate::model::StreamKind;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Work finished by helper tasks.
pub(super) enum Inner {
    /// RTCP for the publisher's video track.
    Feedback(Vec<EncoderRequest>),
    /// A keyframe request (PLI/FIR) for the share's track.
    ShareKeyframe,
    /// A chat message arrived on a subscription's data channel.
    Chat { from: String, text: String },
    /// An RTP packet of a remote track.
    Rtp {
        participant: String,
        kind: StreamKind,
        pt: u8,
        bytes: bytes::Bytes,
    },
}

/// Turns the RTCP for the publisher's video into encoder requests for the session.
pub(super) async fn feedback_loop(
    track: LocalTrack,
    tx: mpsc::UnboundedSender<Inner>,
    mut fb: Feedback,
    share: bool,
) {
    loop {
        let due = fb.keyframe_due();
        let reqs = tokio::select! {
            // Cancel-safe: the track's feedback is an mpsc receiver.
            packets = track.feedback() => match packets {
                Some(p) => fb.on_rtcp(&p, Instant::now()),
                None => break,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                fb.on_timer(Instant::now())
            }
        };
        let sent = if share {
            // The share keeps its own bitrate: only its keyframe requests go on.
            match reqs.iter().any(|r| matches!(r, EncoderRequest::Keyframe)) {
                true => tx.send(Inner::ShareKeyframe).is_ok(),
                false => true,
            }
        } else {
            reqs.is_empty() || tx.send(Inner::Feedback(reqs)).is_ok()
        };
        if !sent {
            break;
        }
    }
}

/// Forwards a participant's chat messages (at most 4096 characters each) to the session.
pub(super) async fn chat_loop(
    dc: Arc<dyn DataChannel>,
    from: String,
    tx: mpsc::UnboundedSender<Inner>,
) {
    while let Some(ev) = dc.poll().await {
        match ev {
            DataChannelEvent::OnMessage(m) => {
                let text = String::from_utf8_lossy(&m.data)
                    .chars()
                    .take(4096)
                    .collect();
                if tx
                    .send(Inner::Chat {
                        from: from.clone(),
                        text,
                    })
                    .is_err()
                {
                    break;
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

/// Forwards a remote track's RTP packets to the session, for the counters and the playback.
pub(super) async fn rtp_loop(
    track: Arc<dyn TrackRemote>,
    who: String,
    kind: StreamKind,
    tx: mpsc::UnboundedSender<Inner>,
) {
    // The meeting feed's taps start decoding a participant's video at a keyframe: when one
    // waits for it, the sender is asked (PLI) rather than waited on for a whole GOP.
    let hub = crate::media::meeting::MeetingHub::shared();
    let mut asked = hub.keyframes_wanted();
    while let Some(ev) = track.poll().await {
        match ev {
            TrackRemoteEvent::OnRtpPacket(pkt) => {
                if kind != StreamKind::Audio && hub.keyframes_wanted() != asked {
                    asked = hub.keyframes_wanted();
                    let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: pkt.header.ssrc,
                    };
                    if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                        tracing::debug!(participant = %who, error = %e, "room: no PLI sent");
                    }
                }
                let pt = pkt.header.payload_type;
                match rtc::shared::marshal::Marshal::marshal(&pkt) {
                    Ok(bytes) => {
                        let _ = tx.send(Inner::Rtp {
                            participant: who.clone(),
                            kind,
                            pt,
                            bytes: bytes.freeze(),
                        });
                    }
                    Err(e) => tracing::debug!(error = %e, "rtp re-marshal failed"),
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

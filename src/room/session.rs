//! The room session task: one backend, the WebRTC connections, playback, and the samples the box
//! publishes. The rules that keep the box in its room (rejoin with jittered backoff after any
//! fault, capture untouched), the camera's, whom to subscribe to, and the notices the agent hears
//! live in `state`, without I/O; this task feeds it what happens (actions from the agent,
//! signalling events, connection states, the clock) and carries out the actions it returns.
//! Beside it, `conns` holds the connections of one stay and `tasks` the readers that feed
//! the task. Only `room::spawn` starts it; nothing outside `room` imports this folder.

mod conns;
mod renegotiate;
mod share;
mod state;
mod tasks;

use super::peer::{self, LocalTrack, PcEvent, Publisher};
use super::playback::Playback;
use super::rtcp::{EncoderRequest, Feedback};
use super::signaller::{Joined, Offerer, PublishKinds, RoomError, SignalEvent, Signaller};
use super::{JoinRequest, RoomAction, RoomLink, RoomNotice, RoomStats};
use crate::config::{Config, RoomConfig};
use crate::media::{EncodedSample, TapSender};
use crate::model::{Mode, StreamKind};
use crate::sync::{lock, sleep_until};
use conns::{Conns, SubConn};
use rand::Rng;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use state::{Action, SessionState};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasks::{chat_loop, feedback_loop, rtp_loop, Inner};
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::RTCPeerConnectionState;

/// Samples the tap may queue before the engine drops (and then restarts at a keyframe).
const TAP_QUEUE: usize = 256;

/// Starts a session around `backend`; see [`super::spawn`].
pub fn spawn(config: &Config, backend: Box<dyn Signaller>) -> RoomLink {
    let (actions_tx, actions) = mpsc::unbounded_channel();
    let (notices, notices_rx) = mpsc::unbounded_channel();
    let (stats_tx, stats) = watch::channel(RoomStats::default());
    let name = backend.name();
    let (tap_tx, tap_rx) = mpsc::channel(TAP_QUEUE);
    let (pc_tx, pc_rx) = mpsc::unbounded_channel();
    let (inner_tx, inner_rx) = mpsc::unbounded_channel();
    let speech = crate::media::pcm::PcmHub::default();
    let s = Session {
        state: SessionState::new(
            name,
            config.room.connect_timeout,
            crate::backoff::Backoff::from_config(&config.room.reconnect),
            jitter,
        ),
        speech: speech.clone(),
        room: config.room.clone(),
        video_kbps: (
            config.media.video.bitrate_kbps,
            config.media.video.max_bitrate_kbps,
        ),
        video_frame: Duration::from_secs_f64(1.0 / f64::from(config.media.video.fps.max(1))),
        signaller: backend,
        notices,
        stats_tx,
        stats: Arc::default(),
        tap: TapSender(tap_tx),
        tap_rx,
        last_video: None,
        last_share: None,
        conns: Conns::default(),
        pc_tx,
        inner_tx,
        next_sub: 0,
    };
    tokio::spawn(s.run(actions, pc_rx, inner_rx));
    RoomLink {
        actions: actions_tx,
        notices: notices_rx,
        stats,
        backend: name,
        speech,
    }
}

/// The backoff's jitter, drawn here so the state stays free of randomness.
fn jitter() -> f64 {
    rand::rng().random_range(0.0..=1.0)
}

/// The time the state is given: Tokio's clock, so a test that pauses it pauses the session too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct Session {
    state: SessionState,
    room: RoomConfig,
    /// The encoder's start and maximum bitrates, kbit/s, which bound congestion control.
    video_kbps: (u32, u32),
    /// A video sample's duration when its timestamps do not give one.
    video_frame: Duration,
    signaller: Box<dyn Signaller>,
    notices: mpsc::UnboundedSender<RoomNotice>,
    stats_tx: watch::Sender<RoomStats>,
    /// Counted by the playback's threads and the helper tasks; published on each tick.
    stats: Arc<Mutex<RoomStats>>,
    tap: TapSender,
    /// The encoded samples the tap delivers.
    tap_rx: mpsc::Receiver<EncodedSample>,
    /// Capture time of the last video sample sent.
    last_video: Option<Duration>,
    /// Capture time of the last share sample sent.
    last_share: Option<Duration>,
    conns: Conns,
    pc_tx: mpsc::UnboundedSender<PcEvent>,
    inner_tx: mpsc::UnboundedSender<Inner>,
    /// Remote speech for the transcriber; playback taps each participant's audio into it.
    speech: crate::media::pcm::PcmHub,
    /// Numbers the subscriptions the box offers.
    next_sub: u64,
}

async fn next_signal(s: &mut dyn Signaller, live: bool) -> Option<SignalEvent> {
    if live {
        s.next_event().await
    } else {
        std::future::pending().await
    }
}

impl Session {
    fn notify(&self, n: RoomNotice) {
        meeting_follows(&n);
        let _ = self.notices.send(n);
    }

    async fn run(
        mut self,
        mut actions: mpsc::UnboundedReceiver<RoomAction>,
        mut pc_rx: mpsc::UnboundedReceiver<PcEvent>,
        mut inner: mpsc::UnboundedReceiver<Inner>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let live = self.state.in_room();
            let retry_at = self.state.retry_at().map(tokio::time::Instant::from_std);
            tokio::select! {
                a = actions.recv() => match a {
                    None | Some(RoomAction::Shutdown) => {
                        let out = self.state.leave("shutdown");
                        self.apply(out).await;
                        break;
                    }
                    Some(a) => {
                        let out = self.action(a);
                        self.apply(out).await;
                    }
                },
                ev = next_signal(self.signaller.as_mut(), live) => {
                    if let Some(ev) = ev {
                        let out = self.state.signal(ev, now());
                        self.apply(out).await;
                    }
                }
                Some(ev) = pc_rx.recv() => self.pc_event(ev).await,
                Some(i) = inner.recv() => self.inner(i),
                Some(s) = self.tap_rx.recv() => self.send_sample(s).await,
                _ = sleep_until(retry_at) => {
                    let out = self.state.retry();
                    self.apply(out).await;
                }
                _ = tick.tick() => {
                    self.publish_stats();
                    if let Some(p) = self.conns.playback.as_mut() {
                        p.sync_meeting();
                    }
                    let out = self.state.tick(now());
                    self.apply(out).await;
                }
            }
        }
    }

    fn action(&mut self, a: RoomAction) -> Vec<Action> {
        match a {
            RoomAction::Join(req) => self.state.join(req),
            RoomAction::Leave => self.state.leave("left"),
            RoomAction::End => self.state.end(),
            RoomAction::SendChat { text, to } => self.state.send_chat(text, to),
            RoomAction::SetCamera(on) => self.state.set_camera(on),
            RoomAction::SetShare(on) => self.state.set_share(on),
            RoomAction::SetCloudRecording(on) => self.state.set_cloud_recording(on),
            RoomAction::Shutdown => Vec::new(),
        }
    }

    /// Carries out `actions` in order. What an outcome makes the state ask for runs before the
    /// rest, as if the state had called it.
    async fn apply(&mut self, actions: Vec<Action>) {
        let mut todo = VecDeque::from(actions);
        while let Some(a) = todo.pop_front() {
            let next = self.carry_out(a).await;
            for a in next.into_iter().rev() {
                todo.push_front(a);
            }
        }
    }

    async fn carry_out(&mut self, a: Action) -> Vec<Action> {
        match a {
            Action::Notify(n) => self.notify(n),
            Action::AttachTap => self.notify(RoomNotice::AttachTap(self.tap.clone())),
            Action::Join(req) => {
                return match self.join(&req).await {
                    Ok(joined) => self.state.joined(joined, now()),
                    Err(e) => self.state.join_failed(&e, now()),
                }
            }
            Action::Publish => {
                return match self.publish().await {
                    Ok((video, chat)) => self.state.published(video, chat),
                    Err(e) => self.state.join_failed(&e, now()),
                }
            }
            Action::Subscribe { participant, again } => {
                return match self.subscribe(&participant).await {
                    Ok(id) => self.state.subscribed(&participant, id),
                    Err(e) => {
                        tracing::warn!(%participant, error = %e, "room: subscription failed");
                        self.state.subscribe_failed(&participant, again, &e, now())
                    }
                }
            }
            Action::Unsubscribe(id) => {
                if let Some(sub) = self.conns.subs.remove(&id) {
                    sub.close().await;
                }
                let _ = self.signaller.unsubscribe(&id).await;
            }
            Action::StopPlayback(participant) => {
                if let Some(p) = self.conns.playback.as_mut() {
                    p.remove(&participant);
                }
            }
            Action::Reanswer {
                participant,
                subscription_id,
                offer,
            } => return self.reanswer(&participant, &subscription_id, offer).await,
            Action::Renegotiate(on) => {
                let outcome = self.renegotiate(on).await;
                return self.state.renegotiated(on, outcome);
            }
            Action::RenegotiateShare(on) => {
                let outcome = self.renegotiate_share(on).await;
                return self.state.share_renegotiated(on, outcome);
            }
            Action::Close => {
                std::mem::take(&mut self.conns).close().await;
                crate::media::meeting::MeetingHub::shared().clear();
                lock(&self.stats).participants.clear();
            }
            Action::SignalLeave => {
                if let Err(e) = self.signaller.leave().await {
                    tracing::debug!(error = %e, "room: leave");
                }
            }
            Action::EndForAll => {
                let result = self.signaller.end_for_all().await;
                return self.state.ended(result);
            }
            Action::SetRecording(on) => {
                let result = self.signaller.set_recording(on).await;
                return self.state.recording_set(on, result);
            }
            Action::SendChat(text) => self.send_chat(&text).await,
        }
        Vec::new()
    }

    /// Joins at the signaller and starts playing the room (unless only signalling).
    async fn join(&mut self, req: &JoinRequest) -> Result<Joined, RoomError> {
        let joined = self.signaller.join(req).await?;
        if req.mode != Mode::SignallingOnly {
            match Playback::new(&self.room.playback, self.stats.clone(), self.speech.clone()) {
                Ok(p) => self.conns.playback = Some(p),
                Err(e) => self.notify(RoomNotice::Error(format!("playback: {e}"))),
            }
        }
        Ok(joined)
    }

    /// Offers the microphone, the camera and (when configured) chat, and applies the answer.
    /// Returns whether a camera track and a chat channel exist.
    async fn publish(&mut self) -> Result<(bool, bool), RoomError> {
        let kinds = PublishKinds {
            audio: true,
            video: true,
            data: self.room.chat,
            share: None,
        };
        let (mut publisher, offer) = Publisher::offer(
            self.pc_tx.clone(),
            kinds.audio,
            kinds.video,
            kinds.data,
            &self.signaller.ice_servers(),
        )
        .await
        .map_err(|e| RoomError::Protocol(format!("webrtc offer: {e}")))?;
        let answer = match self.signaller.publish(&offer, kinds).await {
            Ok(a) => a,
            Err(e) => {
                let _ = publisher.pc.close().await;
                return Err(e);
            }
        };
        if let Err(e) = publisher.answer(answer).await {
            let _ = publisher.pc.close().await;
            return Err(RoomError::Protocol(format!("webrtc answer: {e}")));
        }
        self.conns.feedback_task = publisher.video.clone().map(|t| {
            let tx = self.inner_tx.clone();
            let (start, max) = self.video_kbps;
            tokio::spawn(feedback_loop(t, tx, Feedback::new(start, max), false))
        });
        let has = (publisher.video.is_some(), publisher.chat.is_some());
        self.conns.publisher = Some(publisher);
        Ok(has)
    }

    /// Subscribes to a participant; returns the subscription's id.
    async fn subscribe(&mut self, participant_id: &str) -> Result<String, RoomError> {
        if self.signaller.subscription_offerer() == Offerer::Local {
            return self.subscribe_offering(participant_id).await;
        }
        let sub = self.signaller.subscribe(participant_id).await?;
        let peer::Subscribed { pc, answer, chat } = peer::subscribe(
            &sub.id,
            sub.offer,
            self.pc_tx.clone(),
            &self.signaller.ice_servers(),
        )
        .await
        .map_err(|e| RoomError::Protocol(format!("webrtc answer: {e}")))?;
        if let Err(e) = self.signaller.accept(&sub.id, &answer).await {
            let _ = pc.close().await;
            let _ = self.signaller.unsubscribe(&sub.id).await;
            return Err(e);
        }
        // The participant's chat arrives on the channel the box opened.
        let tasks = chat
            .map(|dc| {
                tokio::spawn(chat_loop(
                    dc,
                    participant_id.to_string(),
                    self.inner_tx.clone(),
                ))
            })
            .into_iter()
            .collect();
        self.conns.subs.insert(
            sub.id.clone(),
            SubConn {
                pc,
                tasks,
                share_tracks: sub.share_tracks,
            },
        );
        Ok(sub.id)
    }

    /// Subscribes where the box writes the offer (WHEP): a receive-only offer for audio and
    /// video, named by the session, answered by the server.
    async fn subscribe_offering(&mut self, participant_id: &str) -> Result<String, RoomError> {
        self.next_sub += 1;
        let id = format!("{participant_id}#{}", self.next_sub);
        let (pc, offer) =
            peer::receive_offer(&id, self.pc_tx.clone(), &self.signaller.ice_servers())
                .await
                .map_err(|e| RoomError::Protocol(format!("webrtc offer: {e}")))?;
        let answer = match self
            .signaller
            .subscribe_with_offer(&id, participant_id, &offer)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        if let Err(e) = peer::apply_answer(&pc, answer).await {
            let _ = pc.close().await;
            let _ = self.signaller.unsubscribe(&id).await;
            return Err(RoomError::Protocol(format!("webrtc answer: {e}")));
        }
        self.conns.subs.insert(
            id.clone(),
            SubConn {
                pc,
                tasks: Vec::new(),
                share_tracks: Vec::new(),
            },
        );
        Ok(id)
    }

    async fn pc_event(&mut self, ev: PcEvent) {
        match ev {
            PcEvent::State(key, state) => {
                tracing::debug!(%key, %state, "room: connection state");
                let out = match (key.as_str(), state) {
                    ("publisher", RTCPeerConnectionState::Connected) => {
                        self.state.publisher_connected()
                    }
                    ("publisher", RTCPeerConnectionState::Failed) => {
                        self.state.publisher_failed(now())
                    }
                    ("publisher", _) => Vec::new(),
                    (_, RTCPeerConnectionState::Failed) => {
                        self.state.subscription_failed(&key, now())
                    }
                    _ => Vec::new(),
                };
                self.apply(out).await;
            }
            PcEvent::Track(key, track) => {
                let tx = self.inner_tx.clone();
                let Some((who, sub)) = self.subscription(&key) else {
                    return;
                };
                let id = track.track_id().await;
                let kind = match track.kind().await {
                    RtpCodecKind::Audio => StreamKind::Audio,
                    _ if sub.share_tracks.contains(&id) => StreamKind::Share,
                    _ => StreamKind::Video,
                };
                tracing::debug!(participant = %who, track = %id, ?kind, "room: remote track");
                sub.tasks.push(tokio::spawn(rtp_loop(track, who, kind, tx)));
            }
            PcEvent::DataChannel(key, dc) => {
                let tx = self.inner_tx.clone();
                if let Some((who, sub)) = self.subscription(&key) {
                    sub.tasks.push(tokio::spawn(chat_loop(dc, who, tx)));
                }
            }
        }
    }

    /// A subscription's connection with its participant, for the tasks that read it.
    fn subscription(&mut self, id: &str) -> Option<(String, &mut SubConn)> {
        let who = self.state.subscriber_of(id)?.to_string();
        Some((who, self.conns.subs.get_mut(id)?))
    }

    fn inner(&mut self, i: Inner) {
        match i {
            Inner::Feedback(reqs) => {
                for r in reqs {
                    tracing::debug!(request = ?r, "room: encoder feedback");
                    self.notify(match r {
                        EncoderRequest::Keyframe => RoomNotice::KeyframeRequested,
                        EncoderRequest::Bitrate(k) => RoomNotice::BitrateWanted(k),
                    });
                }
            }
            Inner::ShareKeyframe => self.notify(RoomNotice::ShareKeyframeRequested),
            Inner::Chat { from, text } => {
                let n = self.state.chat_received(from, text, crate::model::now_ms());
                self.notify(n);
            }
            Inner::Rtp {
                participant,
                kind,
                pt,
                bytes,
            } => {
                lock(&self.stats)
                    .participants
                    .entry(participant.clone())
                    .or_default()
                    .packets += 1;
                if let Some(p) = self.conns.playback.as_mut() {
                    p.push(&participant, kind, pt, &bytes);
                }
            }
        }
    }

    async fn send_sample(&mut self, s: EncodedSample) {
        let Some(publisher) = self.conns.publisher.as_ref() else {
            return;
        };
        if s.kind == StreamKind::Audio {
            if let Some(track) = publisher.audio.as_ref() {
                send_audio(track, &s, &self.stats).await;
            }
            return;
        }
        if s.kind == StreamKind::Share {
            return self.send_share(s).await;
        }
        if !self.state.admit_video(s.keyframe) {
            return;
        }
        let Some(track) = publisher.video.as_ref() else {
            return;
        };
        // RTP time follows the capture clock: the gap since the previous frame.
        let duration = match (s.pts, self.last_video) {
            (Some(p), Some(l)) if p > l && p - l < Duration::from_secs(1) => p - l,
            _ => s.duration.unwrap_or(self.video_frame),
        };
        self.last_video = s.pts;
        if let Err(e) = track.write(&s, duration).await {
            tracing::trace!(error = %e, "room: sample not sent");
            return;
        }
        lock(&self.stats).video_samples_sent += 1;
    }

    /// Sends one chat message as a plain UTF-8 text message on the publisher's data channel
    /// (what Janus's own clients send and show).
    async fn send_chat(&mut self, text: &str) {
        let Some(dc) = self.conns.publisher.as_ref().and_then(|p| p.chat.clone()) else {
            return;
        };
        let state = dc.ready_state().await;
        tracing::debug!(?state, "room: sending chat");
        if let Err(e) = dc.send_text(text).await {
            self.notify(RoomNotice::Error(format!("chat not sent: {e}")));
        }
    }

    /// Hands the counters to `status` and the tests, when they changed.
    fn publish_stats(&self) {
        let s = lock(&self.stats);
        self.stats_tx.send_if_modified(|cur| {
            if *cur != *s {
                *cur = s.clone();
                true
            } else {
                false
            }
        });
    }
}

/// Sends one microphone sample on `track` and counts it.
async fn send_audio(track: &LocalTrack, s: &EncodedSample, stats: &Mutex<RoomStats>) {
    let duration = s.duration.unwrap_or(Duration::from_millis(20));
    if let Err(e) = track.write(s, duration).await {
        tracing::trace!(error = %e, "room: sample not sent");
        return;
    }
    lock(stats).audio_samples_sent += 1;
}

/// The meeting feed's hub hears who is in the room, by name, who talks and who presents.
fn meeting_follows(n: &RoomNotice) {
    let hub = crate::media::meeting::MeetingHub::shared();
    match n {
        RoomNotice::ParticipantJoined(p) => hub.joined(&p.participant_id, &p.display_name),
        RoomNotice::ParticipantLeft(id) => hub.left(id),
        RoomNotice::Talking {
            participant_id,
            talking,
        } => hub.talking(participant_id, *talking),
        RoomNotice::Stream {
            participant_id,
            kind: StreamKind::Share,
            enabled,
        } => {
            hub.presenter(enabled.then_some(participant_id.as_str()));
            if !enabled {
                hub.left(&crate::media::meeting::share_id(participant_id));
            }
        }
        _ => {}
    }
}

//! The room session task: one backend, the WebRTC connections, playback, and the policy that
//! keeps the box in its room (rejoin with jittered backoff after any fault, capture untouched).

use super::peer::{self, LocalTrack, PcEvent, Publisher};
use super::playback::Playback;
use super::rtcp::{EncoderRequest, Feedback};
use super::signaller::{Joined, PublishKinds, RemotePublisher, RoomError, SignalEvent, Signaller};
use super::{JoinRequest, RoomAction, RoomLink, RoomNotice, RoomStats};
use crate::config::{Config, RoomConfig};
use crate::media::{EncodedSample, TapSender};
use crate::model::{ChatMessage, MeetingState, Mode, Participant, ServiceState, StreamKind};
use crate::sync::sleep_until;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::TrackRemoteEvent;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

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
        want: None,
        live: None,
        attempt: 0,
        backoff: crate::backoff::Backoff::from_config(&config.room.reconnect),
        retry_at: None,
        pc_tx,
        inner_tx,
        recording: false,
        camera: Camera::On,
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

/// Work finished by helper tasks.
enum Inner {
    /// RTCP for the publisher's video track.
    Feedback(Vec<EncoderRequest>),
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

struct Sub {
    id: String,
    pc: Arc<dyn PeerConnection>,
    tasks: Vec<JoinHandle<()>>,
    /// The participant's video was enabled when this subscription was made (if not, the server
    /// offered it inactive, and the subscription is made again when it comes on).
    video: bool,
}

struct Live {
    joined: Joined,
    publisher: Option<Publisher>,
    feedback_task: Option<JoinHandle<()>>,
    /// Participant id → subscription.
    subs: HashMap<String, Sub>,
    /// Everyone else in the room.
    remotes: BTreeMap<String, RemotePublisher>,
    connected: bool,
    deadline: Instant,
    playback: Option<Playback>,
}

struct Session {
    room: RoomConfig,
    video_kbps: (u32, u32),
    video_frame: Duration,
    signaller: Box<dyn Signaller>,
    notices: mpsc::UnboundedSender<RoomNotice>,
    stats_tx: watch::Sender<RoomStats>,
    stats: Arc<Mutex<RoomStats>>,
    tap: TapSender,
    /// The encoded samples the tap delivers.
    tap_rx: mpsc::Receiver<EncodedSample>,
    /// Capture time of the last video sample sent.
    last_video: Option<Duration>,
    /// The room the box should be in.
    want: Option<JoinRequest>,
    live: Option<Live>,
    /// Rejoin attempts since the last success (for the log).
    attempt: u32,
    /// Delays between rejoin attempts.
    backoff: crate::backoff::Backoff,
    retry_at: Option<tokio::time::Instant>,
    pc_tx: mpsc::UnboundedSender<PcEvent>,
    inner_tx: mpsc::UnboundedSender<Inner>,
    recording: bool,
    /// Whether the camera's video leaves the box.
    camera: Camera,
    /// Remote speech for the transcriber; playback taps each participant's audio into it.
    speech: crate::media::pcm::PcmHub,
}

/// The camera as the publisher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Camera {
    /// Off: no video is sent.
    Off,
    /// Just turned on: video resumes at the next keyframe (asked for).
    Resuming,
    /// On: every video sample is sent.
    On,
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
            let live = self.live.is_some();
            tokio::select! {
                a = actions.recv() => match a {
                    None | Some(RoomAction::Shutdown) => {
                        self.leave("shutdown").await;
                        break;
                    }
                    Some(a) => self.action(a).await,
                },
                ev = next_signal(self.signaller.as_mut(), live) => {
                    if let Some(ev) = ev {
                        self.signal(ev).await;
                    }
                }
                Some(ev) = pc_rx.recv() => self.pc_event(ev).await,
                Some(i) = inner.recv() => self.inner(i),
                Some(s) = self.tap_rx.recv() => self.send_sample(s).await,
                _ = sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    self.connect().await;
                }
                _ = tick.tick() => self.housekeeping().await,
            }
        }
    }

    async fn action(&mut self, a: RoomAction) {
        match a {
            RoomAction::Join(req) => {
                if self.live.is_some() {
                    self.leave("left").await;
                }
                self.camera = if req.webcam { Camera::On } else { Camera::Off };
                self.want = Some(req);
                self.attempt = 0;
                self.backoff.reset();
                self.connect().await;
            }
            RoomAction::Leave => {
                self.leave("left").await;
            }
            RoomAction::End => {
                if self.live.is_none() {
                    self.notify(RoomNotice::Error("not in a room".into()));
                    return;
                }
                match self.signaller.end_for_all().await {
                    Ok(()) => self.leave("ended").await,
                    Err(e) => self.notify(RoomNotice::Error(format!("end for everyone: {e}"))),
                }
            }
            RoomAction::SendChat { text, to } => self.send_chat(text, to).await,
            RoomAction::SetCamera(on) => self.set_camera(on).await,
            RoomAction::SetCloudRecording(on) => {
                if self.live.is_none() {
                    self.notify(RoomNotice::CloudRecording {
                        state: ServiceState::Failed,
                        reason: Some("not in a room".into()),
                    });
                    return;
                }
                match self.signaller.set_recording(on).await {
                    Ok(()) => {
                        self.recording = on;
                        self.notify(RoomNotice::CloudRecording {
                            state: if on {
                                ServiceState::Started
                            } else {
                                ServiceState::Stopped
                            },
                            reason: None,
                        });
                    }
                    Err(e) => self.notify(RoomNotice::CloudRecording {
                        state: if on {
                            ServiceState::Failed
                        } else {
                            ServiceState::Started
                        },
                        reason: Some(e.to_string()),
                    }),
                }
            }
            RoomAction::Shutdown => {}
        }
    }

    /// Joins `want`: signalling, publisher, subscriptions. On failure schedules a retry.
    async fn connect(&mut self) {
        let Some(req) = self.want.clone() else { return };
        self.notify(RoomNotice::State(MeetingState::Connecting));
        match self.try_connect(&req).await {
            Ok(()) => {}
            Err(e) => {
                let fatal = matches!(e, RoomError::Refused(_));
                tracing::warn!(error = %e, room = %req.room_id, "room: join failed");
                self.teardown().await;
                self.notify(RoomNotice::Error(format!("join {}: {e}", req.room_id)));
                if fatal {
                    self.want = None;
                    self.notify(RoomNotice::State(MeetingState::Failed));
                    self.notify(RoomNotice::Left {
                        room_id: req.room_id.clone(),
                        reason: "refused".into(),
                    });
                } else {
                    self.notify(RoomNotice::State(MeetingState::Disconnected));
                    self.schedule_retry();
                }
            }
        }
    }

    fn schedule_retry(&mut self) {
        // Jittered: spreads a fleet's rejoins after a server restart.
        let delay = self.backoff.next_delay();
        self.attempt = self.attempt.saturating_add(1);
        tracing::info!(?delay, attempt = self.attempt, "room: rejoining later");
        self.retry_at = Some(tokio::time::Instant::now() + delay);
    }

    async fn try_connect(&mut self, req: &JoinRequest) -> Result<(), RoomError> {
        let joined = self.signaller.join(req).await?;
        let playback = if req.mode == Mode::SignallingOnly {
            None
        } else {
            match Playback::new(&self.room.playback, self.stats.clone(), self.speech.clone()) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.notify(RoomNotice::Error(format!("playback: {e}")));
                    None
                }
            }
        };
        let publishers = joined.publishers.clone();
        self.live = Some(Live {
            joined,
            publisher: None,
            feedback_task: None,
            subs: HashMap::new(),
            remotes: BTreeMap::new(),
            connected: false,
            deadline: Instant::now() + self.room.connect_timeout,
            playback,
        });
        if req.mode == Mode::SendAndReceive && (req.mic || req.webcam) {
            self.publish(req).await?;
        }
        for p in publishers {
            self.remote_published(p).await;
        }
        if req.mode != Mode::SendAndReceive || !(req.mic || req.webcam) {
            self.mark_connected();
        }
        Ok(())
    }

    async fn publish(&mut self, req: &JoinRequest) -> Result<(), RoomError> {
        let kinds = PublishKinds {
            audio: true,
            video: true,
            data: self.room.chat,
        };
        let _ = req;
        let (mut publisher, offer) =
            Publisher::offer(self.pc_tx.clone(), kinds.audio, kinds.video, kinds.data)
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
        let feedback_task = publisher.video.clone().map(|t| {
            let tx = self.inner_tx.clone();
            let (start, max) = self.video_kbps;
            tokio::spawn(feedback_loop(t, tx, Feedback::new(start, max)))
        });
        if let Some(live) = self.live.as_mut() {
            live.publisher = Some(publisher);
            live.feedback_task = feedback_task;
        }
        Ok(())
    }

    fn mark_connected(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.connected {
            return;
        }
        live.connected = true;
        self.attempt = 0;
        self.backoff.reset();
        let j = live.joined.clone();
        let publishing = live.publisher.is_some();
        self.notify(RoomNotice::State(MeetingState::Connected));
        self.notify(RoomNotice::Joined {
            room_id: j.room_id,
            session_id: j.session_id,
            participant_id: j.participant_id,
        });
        if publishing {
            self.notify(RoomNotice::AttachTap(self.tap.clone()));
        }
    }

    async fn remote_published(&mut self, p: RemotePublisher) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let id = p.participant_id.clone();
        let known = live.remotes.insert(id.clone(), p.clone());
        let already = live.subs.contains_key(&id);
        match known {
            None => self.notify(RoomNotice::ParticipantJoined(participant(&p))),
            Some(old) => {
                for (kind, was, is) in [
                    (StreamKind::Audio, old.audio, p.audio),
                    (StreamKind::Video, old.video, p.video),
                ] {
                    if was != is {
                        self.notify(RoomNotice::Stream {
                            participant_id: id.clone(),
                            kind,
                            enabled: is,
                        });
                    }
                }
            }
        }
        let mode = self.want.as_ref().map(|w| w.mode).unwrap_or_default();
        let stale = self
            .live
            .as_ref()
            .and_then(|l| l.subs.get(&id))
            .is_some_and(|sub| p.video && !sub.video);
        if stale && mode != Mode::SignallingOnly {
            // Subscribed while this camera was off: Janus offered the video inactive and
            // does not offer it again when it comes on, so pictures came back only by luck.
            tracing::debug!(participant = %id, "room: camera on; subscribing again for its video");
            self.resubscribe(&id).await;
            return;
        }
        if already || mode == Mode::SignallingOnly || !(p.audio || p.video || p.data) {
            return;
        }
        if let Err(e) = self.subscribe(&id).await {
            tracing::warn!(participant = %id, error = %e, "room: subscription failed");
            self.notify(RoomNotice::Error(format!("subscribe to {id}: {e}")));
        }
    }

    async fn subscribe(&mut self, participant_id: &str) -> Result<(), RoomError> {
        let sub = self.signaller.subscribe(participant_id).await?;
        let peer::Subscribed { pc, answer, chat } =
            peer::subscribe(&sub.id, sub.offer, self.pc_tx.clone())
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
        if let Some(live) = self.live.as_mut() {
            let video = live.remotes.get(participant_id).is_some_and(|p| p.video);
            live.subs.insert(
                participant_id.to_string(),
                Sub {
                    id: sub.id,
                    pc,
                    tasks,
                    video,
                },
            );
        }
        Ok(())
    }

    /// Replaces a participant's subscription with a fresh one (the participant stays listed).
    async fn resubscribe(&mut self, id: &str) {
        let Some(sub) = self.live.as_mut().and_then(|l| l.subs.remove(id)) else {
            return;
        };
        close_sub(&sub).await;
        let _ = self.signaller.unsubscribe(&sub.id).await;
        if let Some(p) = self.live.as_mut().and_then(|l| l.playback.as_mut()) {
            p.remove(id);
        }
        if let Err(e) = self.subscribe(id).await {
            tracing::warn!(participant = %id, error = %e, "room: subscription failed");
            self.notify(RoomNotice::Error(format!("subscribe to {id}: {e}")));
        }
    }

    async fn drop_remote(&mut self, id: &str, left: bool) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if let Some(sub) = live.subs.remove(id) {
            close_sub(&sub).await;
            let _ = self.signaller.unsubscribe(&sub.id).await;
        }
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if let Some(p) = live.playback.as_mut() {
            p.remove(id);
        }
        if left {
            if live.remotes.remove(id).is_some() {
                self.notify(RoomNotice::ParticipantLeft(id.to_string()));
            }
        } else if let Some(p) = live.remotes.get_mut(id) {
            let (a, v) = (p.audio, p.video);
            p.audio = false;
            p.video = false;
            for (kind, was) in [(StreamKind::Audio, a), (StreamKind::Video, v)] {
                if was {
                    self.notify(RoomNotice::Stream {
                        participant_id: id.to_string(),
                        kind,
                        enabled: false,
                    });
                }
            }
        }
    }

    async fn signal(&mut self, ev: SignalEvent) {
        match ev {
            SignalEvent::ParticipantJoined {
                participant_id,
                display_name,
            } => {
                let Some(live) = self.live.as_mut() else {
                    return;
                };
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    live.remotes.entry(participant_id.clone())
                {
                    let p = RemotePublisher {
                        participant_id,
                        display_name,
                        audio: false,
                        video: false,
                        data: false,
                    };
                    slot.insert(p.clone());
                    self.notify(RoomNotice::ParticipantJoined(participant(&p)));
                }
            }
            SignalEvent::Published(p) => self.remote_published(p).await,
            SignalEvent::SubscriptionOffer {
                subscription_id,
                offer,
            } => self.reoffered(subscription_id, offer).await,
            SignalEvent::Unpublished { participant_id } => {
                self.drop_remote(&participant_id, false).await
            }
            SignalEvent::ParticipantLeft { participant_id } => {
                self.drop_remote(&participant_id, true).await
            }
            SignalEvent::Talking {
                participant_id,
                talking,
            } => self.notify(RoomNotice::Talking {
                participant_id,
                talking,
            }),
            SignalEvent::MediaDown { what, reason } => {
                if what == "publisher" {
                    self.fault(&format!("publisher media down: {reason}")).await;
                } else {
                    tracing::info!(subscription = %what, %reason, "room: subscription hung up");
                }
            }
            SignalEvent::RoomClosed { reason } => {
                self.leave(&reason).await;
            }
            SignalEvent::Disconnected { reason } => {
                self.fault(&reason).await;
            }
        }
    }

    async fn pc_event(&mut self, ev: PcEvent) {
        match ev {
            PcEvent::State(key, state) => {
                tracing::debug!(%key, %state, "room: connection state");
                if key == "publisher" {
                    match state {
                        RTCPeerConnectionState::Connected => {
                            self.mark_connected();
                            // Joined with the camera off: now tell the room.
                            self.sync_video().await;
                        }
                        RTCPeerConnectionState::Failed => {
                            self.fault("ICE/DTLS failed on the publisher").await
                        }
                        _ => {}
                    }
                } else if state == RTCPeerConnectionState::Failed {
                    let who = self.live.as_ref().and_then(|l| {
                        l.subs
                            .iter()
                            .find(|(_, s)| s.id == key)
                            .map(|(p, _)| p.clone())
                    });
                    if let Some(who) = who {
                        tracing::warn!(participant = %who, "room: subscription failed; resubscribing");
                        if let Some(sub) = self.live.as_mut().and_then(|l| l.subs.remove(&who)) {
                            close_sub(&sub).await;
                            let _ = self.signaller.unsubscribe(&sub.id).await;
                        }
                        let p = self
                            .live
                            .as_ref()
                            .and_then(|l| l.remotes.get(&who).cloned());
                        if let Some(p) = p {
                            if let Err(e) = self.subscribe(&p.participant_id).await {
                                self.notify(RoomNotice::Error(format!("resubscribe {who}: {e}")));
                            }
                        }
                    }
                }
            }
            PcEvent::Track(key, track) => {
                let Some(live) = self.live.as_mut() else {
                    return;
                };
                let Some((who, sub)) = live.subs.iter_mut().find(|(_, s)| s.id == key) else {
                    return;
                };
                let kind = match track.kind().await {
                    RtpCodecKind::Audio => StreamKind::Audio,
                    _ => StreamKind::Video,
                };
                let who = who.clone();
                let tx = self.inner_tx.clone();
                sub.tasks.push(tokio::spawn(async move {
                    while let Some(ev) = track.poll().await {
                        match ev {
                            TrackRemoteEvent::OnRtpPacket(pkt) => {
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
                }));
            }
            PcEvent::DataChannel(key, dc) => {
                let Some(live) = self.live.as_mut() else {
                    return;
                };
                let Some((who, sub)) = live.subs.iter_mut().find(|(_, s)| s.id == key) else {
                    return;
                };
                sub.tasks.push(tokio::spawn(chat_loop(
                    dc,
                    who.clone(),
                    self.inner_tx.clone(),
                )));
            }
        }
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
            Inner::Chat { from, text } => {
                // Plain text, as Janus's clients send it; the name comes from the room's roster,
                // never from the message.
                let display_name = self
                    .live
                    .as_ref()
                    .and_then(|l| l.remotes.get(&from))
                    .map(|p| p.display_name.clone());
                self.notify(RoomNotice::Chat(ChatMessage {
                    from,
                    display_name,
                    text,
                    timestamp_ms: crate::model::now_ms(),
                }));
            }
            Inner::Rtp {
                participant,
                kind,
                pt,
                bytes,
            } => {
                if let Ok(mut s) = self.stats.lock() {
                    s.participants
                        .entry(participant.clone())
                        .or_default()
                        .packets += 1;
                }
                if let Some(p) = self.live.as_mut().and_then(|l| l.playback.as_mut()) {
                    p.push(&participant, kind, pt, &bytes);
                }
            }
        }
    }

    async fn send_sample(&mut self, s: EncodedSample) {
        let Some(publisher) = self.live.as_ref().and_then(|l| l.publisher.as_ref()) else {
            return;
        };
        if s.kind == StreamKind::Audio {
            if let Some(track) = publisher.audio.as_ref() {
                send_audio(track, &s, &self.stats).await;
            }
            return;
        }
        match self.camera {
            Camera::Off => return,
            // Start again on a keyframe: a receiver cannot decode from a delta frame.
            Camera::Resuming if !s.keyframe => return,
            Camera::Resuming => self.camera = Camera::On,
            Camera::On => {}
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
        if let Ok(mut st) = self.stats.lock() {
            st.video_samples_sent += 1;
        }
    }

    /// Sends one chat message as a plain UTF-8 text message on the publisher's data channel,
    /// which the room server relays to everyone subscribed with data (what Janus's own clients
    /// send and show).
    async fn send_chat(&mut self, text: String, to: Option<String>) {
        if let Some(to) = to {
            // The room's data channel reaches everyone: a "private" message would not be.
            self.notify(RoomNotice::Error(format!(
                "chat not sent: private messages (to {to}) are not supported by the {} room backend",
                self.signaller.name()
            )));
            return;
        }
        let dc = self
            .live
            .as_ref()
            .and_then(|l| l.publisher.as_ref())
            .and_then(|p| p.chat.clone());
        let Some(dc) = dc else {
            self.notify(RoomNotice::Error(
                "chat needs the room's data channel, which is not open".into(),
            ));
            return;
        };
        let state = dc.ready_state().await;
        tracing::debug!(?state, "room: sending chat");
        if let Err(e) = dc.send_text(&text).await {
            self.notify(RoomNotice::Error(format!("chat not sent: {e}")));
        }
    }

    /// Camera off stops the video at once (no sample is written from here on), then
    /// renegotiates the publisher with the video inactive, so the server tells the others the
    /// stream is off. Camera on renegotiates it back to sending and resumes at a keyframe.
    async fn set_camera(&mut self, on: bool) {
        match (on, self.camera) {
            (false, Camera::Off) | (true, Camera::On | Camera::Resuming) => return,
            (false, _) => self.camera = Camera::Off,
            (true, Camera::Off) => self.camera = Camera::Resuming,
        }
        self.sync_video().await;
        let publishing = self
            .live
            .as_ref()
            .is_some_and(|l| l.publisher.as_ref().is_some_and(|p| p.video.is_some()));
        if on && publishing {
            // Resume on a keyframe, sent once the room expects video again.
            self.notify(RoomNotice::KeyframeRequested);
        }
    }

    /// Renegotiates the publisher's video when what the room was told differs from the camera
    /// (after a camera change, or once a publisher that joined with the camera off connects).
    async fn sync_video(&mut self) {
        let on = self.camera != Camera::Off;
        let differs = self.live.as_ref().is_some_and(|l| {
            l.connected
                && l.publisher
                    .as_ref()
                    .is_some_and(|p| p.video.is_some() && p.video_on != on)
        });
        if !differs {
            return;
        }
        self.renegotiate_video(on).await;
    }

    /// Offers the publisher's video `on` or off to the room server and applies its answer. A
    /// failure is reported and the offer abandoned: the video then stays as last negotiated
    /// (with the camera off, nothing is written to it either way); the meeting goes on.
    async fn renegotiate_video(&mut self, on: bool) {
        let what = if on { "camera on" } else { "camera off" };
        let Some(publisher) = self.live.as_mut().and_then(|l| l.publisher.as_mut()) else {
            return;
        };
        let offer = match publisher.video_offer(on).await {
            Ok(Some(offer)) => offer,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "room: {what}: no renegotiation offer");
                let _ = publisher.rollback(!on).await;
                self.notify(RoomNotice::Error(format!(
                    "{what}: the others are not told (no offer: {e})"
                )));
                return;
            }
        };
        let kinds = PublishKinds {
            audio: publisher.audio.is_some(),
            video: on,
            data: publisher.chat.is_some(),
        };
        let started = Instant::now();
        // The answer may take a while (up to the signalling timeout): the microphone keeps
        // going meanwhile. Video samples are dropped: with the camera going off none may leave,
        // and coming on it resumes at the keyframe asked for once the room expects video.
        let audio = publisher.audio.clone();
        let stats = self.stats.clone();
        let result = {
            let answer = self.signaller.renegotiate(&offer, kinds);
            tokio::pin!(answer);
            loop {
                tokio::select! {
                    r = &mut answer => break r,
                    Some(s) = self.tap_rx.recv() => {
                        if let (StreamKind::Audio, Some(track)) = (s.kind, audio.as_ref()) {
                            send_audio(track, &s, &stats).await;
                        }
                    }
                }
            }
        };
        let Some(publisher) = self.live.as_mut().and_then(|l| l.publisher.as_mut()) else {
            return;
        };
        let failure = match result {
            Ok(answer) => match publisher.answer(answer).await {
                Ok(()) => {
                    publisher.video_on = on;
                    tracing::info!(elapsed = ?started.elapsed(), "room: {what}: renegotiated");
                    return;
                }
                Err(e) => format!("the answer was not usable: {e}"),
            },
            Err(RoomError::Unsupported(e)) => {
                tracing::debug!(backend = self.signaller.name(), "room: {what}: {e}");
                let _ = publisher.rollback(!on).await;
                return;
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
        let consequence = if on {
            "the others still see the camera off"
        } else {
            "no video is sent, but the others are not told the camera is off"
        };
        self.notify(RoomNotice::Error(format!(
            "{what}: renegotiation with the {} room failed ({failure}); {consequence}",
            self.signaller.name()
        )));
    }

    /// Answers the server's new offer for a subscription; if that fails, subscribes afresh.
    async fn reoffered(&mut self, subscription_id: String, offer: String) {
        let found = self.live.as_ref().and_then(|l| {
            l.subs
                .iter()
                .find(|(_, s)| s.id == subscription_id)
                .map(|(p, s)| (p.clone(), s.pc.clone()))
        });
        let Some((who, pc)) = found else {
            tracing::debug!(subscription = %subscription_id, "room: offer for a gone subscription");
            return;
        };
        let result = match peer::reanswer(&pc, offer).await {
            Ok(answer) => self.signaller.accept(&subscription_id, &answer).await,
            Err(e) => Err(RoomError::Protocol(format!("webrtc answer: {e}"))),
        };
        let Err(e) = result else {
            tracing::info!(participant = %who, "room: subscription renegotiated");
            return;
        };
        tracing::warn!(participant = %who, error = %e, "room: renegotiating a subscription failed; resubscribing");
        if let Some(sub) = self.live.as_mut().and_then(|l| l.subs.remove(&who)) {
            close_sub(&sub).await;
            let _ = self.signaller.unsubscribe(&sub.id).await;
        }
        if let Err(e) = self.subscribe(&who).await {
            self.notify(RoomNotice::Error(format!("resubscribe {who}: {e}")));
        }
    }

    async fn housekeeping(&mut self) {
        if let Ok(s) = self.stats.lock() {
            self.stats_tx.send_if_modified(|cur| {
                if *cur != *s {
                    *cur = s.clone();
                    true
                } else {
                    false
                }
            });
        }
        let overdue = self
            .live
            .as_ref()
            .is_some_and(|l| !l.connected && Instant::now() > l.deadline);
        if overdue {
            self.fault("ICE/DTLS did not connect in time").await;
        }
    }

    /// Drops the connection after a fault and schedules a rejoin.
    async fn fault(&mut self, reason: &str) {
        if self.live.is_none() {
            return;
        }
        tracing::warn!(%reason, "room: connection lost");
        self.teardown().await;
        self.notify(RoomNotice::Error(format!("room connection lost: {reason}")));
        self.notify(RoomNotice::State(MeetingState::Disconnected));
        if self.want.is_some() {
            self.schedule_retry();
        }
    }

    /// Closes every connection and forgets the room's people; the signalling is left alone.
    async fn teardown(&mut self) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        if live.publisher.is_some() {
            self.notify(RoomNotice::DetachTap);
        }
        if let Some(t) = live.feedback_task.take() {
            t.abort();
        }
        if let Some(p) = live.publisher.take() {
            tracing::debug!("room: closing the publisher");
            let _ = p.pc.close().await;
        }
        for (_, sub) in live.subs.drain() {
            tracing::debug!(subscription = %sub.id, "room: closing a subscription");
            close_sub(&sub).await;
        }
        tracing::debug!("room: connections closed");
        for id in live.remotes.keys() {
            self.notify(RoomNotice::ParticipantLeft(id.clone()));
        }
        if let Some(p) = live.playback.take() {
            // Stopping a pipeline blocks; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
        if let Ok(mut s) = self.stats.lock() {
            s.participants.clear();
        }
        if self.recording {
            self.recording = false;
            self.notify(RoomNotice::CloudRecording {
                state: ServiceState::Stopped,
                reason: Some("left the room".into()),
            });
        }
    }

    async fn leave(&mut self, reason: &str) {
        let was = self.want.take();
        self.retry_at = None;
        let had_live = self.live.is_some();
        if had_live {
            self.notify(RoomNotice::State(MeetingState::Closing));
        }
        self.teardown().await;
        if let Err(e) = self.signaller.leave().await {
            tracing::debug!(error = %e, "room: leave");
        }
        if let Some(w) = was {
            self.notify(RoomNotice::State(MeetingState::Closed));
            self.notify(RoomNotice::Left {
                room_id: w.room_id,
                reason: reason.to_string(),
            });
        }
    }
}

/// Sends one microphone sample on `track` and counts it.
async fn send_audio(track: &LocalTrack, s: &EncodedSample, stats: &Mutex<RoomStats>) {
    let duration = s.duration.unwrap_or(Duration::from_millis(20));
    if let Err(e) = track.write(s, duration).await {
        tracing::trace!(error = %e, "room: sample not sent");
        return;
    }
    if let Ok(mut st) = stats.lock() {
        st.audio_samples_sent += 1;
    }
}

async fn close_sub(sub: &Sub) {
    for t in &sub.tasks {
        t.abort();
    }
    let _ = sub.pc.close().await;
}

fn participant(p: &RemotePublisher) -> Participant {
    let mut streams = BTreeMap::new();
    for (kind, on) in [(StreamKind::Audio, p.audio), (StreamKind::Video, p.video)] {
        if on {
            let id = format!(
                "{}-{}",
                p.participant_id,
                if kind == StreamKind::Audio {
                    "audio"
                } else {
                    "video"
                }
            );
            streams.insert(
                id.clone(),
                crate::model::Stream {
                    id,
                    kind,
                    codec: if kind == StreamKind::Audio {
                        "opus"
                    } else {
                        "H264"
                    }
                    .into(),
                    paused: false,
                },
            );
        }
    }
    Participant {
        participant_id: p.participant_id.clone(),
        display_name: p.display_name.clone(),
        local: false,
        mode: if p.audio || p.video {
            Mode::SendAndReceive
        } else {
            Mode::ReceiveOnly
        },
        metadata: Default::default(),
        mic_on: p.audio,
        webcam_on: p.video,
        streams,
    }
}

async fn feedback_loop(track: LocalTrack, tx: mpsc::UnboundedSender<Inner>, mut fb: Feedback) {
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
        if !reqs.is_empty() && tx.send(Inner::Feedback(reqs)).is_err() {
            break;
        }
    }
}

async fn chat_loop(dc: Arc<dyn DataChannel>, from: String, tx: mpsc::UnboundedSender<Inner>) {
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

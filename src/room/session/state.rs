//! The room session's rules, with no network in them: which room the box wants, when it rejoins
//! and after how long, what the camera sends and when the publication is renegotiated, whom it
//! subscribes to and when a subscription is dropped or made again, and the notices the agent
//! hears. The shape of rumqttc's `state.rs` beside its `eventloop.rs`: each method changes the
//! state and returns [`Action`]s for the session task (`super`) to carry out in order. Nothing
//! here awaits, touches a connection, reads the clock or draws a random number: the time comes in
//! as an argument and the backoff's jitter from a function given at construction.
//!
//! The state decides ahead of the I/O: when a method returns, the state already reads as if its
//! actions were done. The task carries them out in order and reports the outcome of those that
//! can fail (`joined` or `join_failed`, `published`, `subscribed`, `renegotiated`, ...); the
//! actions a report returns run before the rest of the batch, as a call would.

use super::super::signaller::{Joined, RemotePublisher, RoomError, SignalEvent};
use super::super::{JoinRequest, RoomNotice};
use crate::backoff::Backoff;
use crate::model::{ChatMessage, MeetingState, Mode, ServiceState};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod camera;
mod remotes;
#[cfg(test)]
mod tests;

pub use camera::{Camera, Renegotiation, Share};

/// What the session task carries out for the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the agent this notice.
    Notify(RoomNotice),
    /// Send the agent the session's tap to feed (a notice only the task can build).
    AttachTap,
    /// Join at the signaller and start playback; report [`SessionState::joined`] or
    /// [`SessionState::join_failed`].
    Join(JoinRequest),
    /// Publish the microphone and camera; report [`SessionState::published`] or
    /// [`SessionState::join_failed`].
    Publish,
    /// Subscribe to a participant's media; report [`SessionState::subscribed`]. A failure is
    /// only reported to the agent: `again` says the subscription is a replacement for one that
    /// failed, which the error's wording tells.
    Subscribe {
        participant: String,
        /// Replaces a subscription whose connection failed.
        again: bool,
    },
    /// Close this subscription's connection and drop it at the server.
    Unsubscribe(String),
    /// Remove a participant from the playback pipeline.
    StopPlayback(String),
    /// Answer the server's new offer on a running subscription; report a failure with
    /// [`SessionState::reanswer_failed`].
    Reanswer {
        /// Whose subscription.
        participant: String,
        subscription_id: String,
        /// The server's SDP offer.
        offer: String,
    },
    /// Offer the publisher's video sending (true) or inactive; report
    /// [`SessionState::renegotiated`].
    Renegotiate(bool),
    /// Offer the content share sending (true; a second video the first time) or inactive;
    /// report [`SessionState::share_renegotiated`].
    RenegotiateShare(bool),
    /// Close the publisher, every subscription and the playback; the signalling stays.
    Close,
    /// Leave at the signaller (a failure is only logged).
    SignalLeave,
    /// End the room for everyone; report [`SessionState::ended`].
    EndForAll,
    /// Start or stop cloud recording; report [`SessionState::recording_set`].
    SetRecording(bool),
    /// Send this text on the publisher's data channel.
    SendChat(String),
}

/// What the box publishes, as the state needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Publishing {
    /// A camera track exists.
    video: bool,
    /// The video is negotiated sending, as the room server was last told.
    video_on: bool,
    /// The chat data channel exists.
    chat: bool,
    /// The share is negotiated sending, as the room server was last told.
    share_on: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sub {
    id: String,
    /// The participant's video was on when this subscription was made. If it was off, the
    /// server offered it inactive and does not offer it again when it comes on, so the
    /// subscription is made afresh then.
    video: bool,
}

/// One stay in the room, from a successful join until a fault or a leave.
#[derive(Debug, Clone)]
struct Link {
    joined: Joined,
    /// Publishers already in the room at join, subscribed once the box publishes.
    pending: Vec<RemotePublisher>,
    publisher: Option<Publishing>,
    /// Participant id → subscription.
    subs: BTreeMap<String, Sub>,
    /// Everyone else in the room, publishing or not.
    remotes: BTreeMap<String, RemotePublisher>,
    /// The server lists the room (see [`Joined::roster`]).
    roster: bool,
    /// Remotes not announced to the agent: without a roster, those with no subscription.
    unlisted: std::collections::BTreeSet<String>,
    /// Participants whose subscription failed, with its backoff and when to try again.
    resubscribe: BTreeMap<String, (Backoff, Instant)>,
    connected: bool,
    /// ICE and DTLS must connect by then, or the join counts as failed.
    deadline: Instant,
}

/// The session's state (see the module documentation).
pub struct SessionState {
    /// The backend's name, for errors the agent shows.
    backend: &'static str,
    connect_timeout: Duration,
    /// The room the box should be in, kept across faults until a leave or a refusal.
    want: Option<JoinRequest>,
    link: Option<Link>,
    /// Rejoin attempts since the last success (for the log).
    attempt: u32,
    backoff: Backoff,
    /// A draw in `0.0..=1.0` for the backoff's jitter, which spreads a fleet's rejoins after a
    /// server restart.
    jitter: fn() -> f64,
    retry_at: Option<Instant>,
    /// Cloud recording runs (stopped by leaving the room).
    recording: bool,
    /// Kept across joins: set by the join's `webcam`, then by `SetCamera`.
    camera: Camera,
    /// The content share, kept across joins: set by `SetShare`.
    share: Share,
}

impl SessionState {
    /// Out of any room.
    pub fn new(
        backend: &'static str,
        connect_timeout: Duration,
        backoff: Backoff,
        jitter: fn() -> f64,
    ) -> SessionState {
        SessionState {
            backend,
            connect_timeout,
            want: None,
            link: None,
            attempt: 0,
            backoff,
            jitter,
            retry_at: None,
            recording: false,
            camera: Camera::On,
            share: Share::Off,
        }
    }

    /// When the next rejoin is due, if one is.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// In a room (joined, connected or not yet), so the signaller's events matter.
    pub fn in_room(&self) -> bool {
        self.link.is_some()
    }

    /// Joins (or switches to) `req`, leaving the room the box is in first.
    pub fn join(&mut self, req: JoinRequest) -> Vec<Action> {
        let mut out = if self.link.is_some() {
            self.leave("left")
        } else {
            Vec::new()
        };
        self.camera = if req.webcam { Camera::On } else { Camera::Off };
        self.want = Some(req);
        self.attempt = 0;
        self.backoff.reset();
        // A rejoin pending for the previous request would join a second time.
        self.retry_at = None;
        out.extend(self.connect());
        out
    }

    /// The rejoin time came.
    pub fn retry(&mut self) -> Vec<Action> {
        self.retry_at = None;
        self.connect()
    }

    fn connect(&mut self) -> Vec<Action> {
        let Some(req) = self.want.clone() else {
            return Vec::new();
        };
        vec![
            Action::Notify(RoomNotice::State(MeetingState::Connecting)),
            Action::Join(req),
        ]
    }

    /// The signaller joined: publish first when the request publishes (the box is connected
    /// once the publisher's ICE and DTLS are), else subscribe and count as connected.
    pub fn joined(&mut self, mut joined: Joined, now: Instant) -> Vec<Action> {
        let Some(req) = self.want.as_ref() else {
            return Vec::new();
        };
        let publish = req.mode == Mode::SendAndReceive && (req.mic || req.webcam);
        let pending = std::mem::take(&mut joined.publishers);
        let roster = joined.roster;
        self.link = Some(Link {
            joined,
            pending: Vec::new(),
            publisher: None,
            subs: BTreeMap::new(),
            remotes: BTreeMap::new(),
            roster,
            unlisted: Default::default(),
            resubscribe: BTreeMap::new(),
            connected: false,
            deadline: now + self.connect_timeout,
        });
        if publish {
            if let Some(link) = self.link.as_mut() {
                link.pending = pending;
            }
            return vec![Action::Publish];
        }
        let mut out: Vec<Action> = pending
            .into_iter()
            .flat_map(|p| self.remote_published(p))
            .collect();
        out.extend(self.mark_connected());
        out
    }

    /// The publisher was answered: subscribe to those already in the room.
    pub fn published(&mut self, video: bool, chat: bool) -> Vec<Action> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        link.publisher = Some(Publishing {
            video,
            // Always offered sending, even with the camera off (see `peer::Publisher::offer`).
            video_on: video,
            chat,
            share_on: false,
        });
        let pending = std::mem::take(&mut link.pending);
        pending
            .into_iter()
            .flat_map(|p| self.remote_published(p))
            .collect()
    }

    /// Joining or publishing failed: a refusal ends the attempt, anything else retries later.
    pub fn join_failed(&mut self, e: &RoomError, now: Instant) -> Vec<Action> {
        let room_id = self
            .want
            .as_ref()
            .map(|w| w.room_id.clone())
            .unwrap_or_default();
        tracing::warn!(error = %e, room = %room_id, "room: join failed");
        let mut out = self.teardown();
        out.push(notice(RoomNotice::Error(format!("join {room_id}: {e}"))));
        if matches!(e, RoomError::Refused(_)) {
            self.want = None;
            out.push(notice(RoomNotice::State(MeetingState::Failed)));
            out.push(notice(RoomNotice::Left {
                room_id,
                reason: "refused".into(),
            }));
        } else {
            out.push(notice(RoomNotice::State(MeetingState::Disconnected)));
            self.schedule_retry(now);
        }
        out
    }

    fn schedule_retry(&mut self, now: Instant) {
        let delay = self.backoff.next_with((self.jitter)());
        self.attempt = self.attempt.saturating_add(1);
        tracing::info!(?delay, attempt = self.attempt, "room: rejoining later");
        self.retry_at = Some(now + delay);
    }

    /// The publisher's ICE and DTLS connected: the box is in the room; a camera that was off
    /// at join is now renegotiated off.
    pub fn publisher_connected(&mut self) -> Vec<Action> {
        let mut out = self.mark_connected();
        out.extend(self.sync_video());
        out.extend(self.sync_share());
        out
    }

    fn mark_connected(&mut self) -> Vec<Action> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        if link.connected {
            return Vec::new();
        }
        link.connected = true;
        self.attempt = 0;
        self.backoff.reset();
        let j = &link.joined;
        let mut out = vec![
            notice(RoomNotice::State(MeetingState::Connected)),
            notice(RoomNotice::Joined {
                room_id: j.room_id.clone(),
                session_id: j.session_id.clone(),
                participant_id: j.participant_id.clone(),
            }),
        ];
        if link.publisher.is_some() {
            out.push(Action::AttachTap);
        }
        out
    }

    /// The periodic check: a join whose media has not connected by its deadline is a fault.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let overdue = self
            .link
            .as_ref()
            .is_some_and(|l| !l.connected && now > l.deadline);
        if overdue {
            self.fault("ICE/DTLS did not connect in time", now)
        } else {
            self.resubscribe_due(now)
        }
    }

    /// The publisher's connection failed.
    pub fn publisher_failed(&mut self, now: Instant) -> Vec<Action> {
        self.fault("ICE/DTLS failed on the publisher", now)
    }

    /// Drops the connection after a fault and schedules a rejoin.
    fn fault(&mut self, reason: &str, now: Instant) -> Vec<Action> {
        if self.link.is_none() {
            return Vec::new();
        }
        tracing::warn!(%reason, "room: connection lost");
        let mut out = self.teardown();
        out.push(notice(RoomNotice::Error(format!(
            "room connection lost: {reason}"
        ))));
        out.push(notice(RoomNotice::State(MeetingState::Disconnected)));
        if self.want.is_some() {
            self.schedule_retry(now);
        }
        out
    }

    /// Closes every connection and forgets the room's people; the signalling is left alone.
    fn teardown(&mut self) -> Vec<Action> {
        let Some(link) = self.link.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if link.publisher.is_some() {
            out.push(notice(RoomNotice::DetachTap));
        }
        out.push(Action::Close);
        let unlisted = link.unlisted;
        out.extend(
            link.remotes
                .into_keys()
                .filter(|id| !unlisted.contains(id))
                .map(|id| notice(RoomNotice::ParticipantLeft(id))),
        );
        if self.recording {
            self.recording = false;
            out.push(notice(RoomNotice::CloudRecording {
                state: ServiceState::Stopped,
                reason: Some("left the room".into()),
            }));
        }
        out
    }

    /// Leaves the room (any pending rejoin with it); `reason` goes to the agent.
    pub fn leave(&mut self, reason: &str) -> Vec<Action> {
        let was = self.want.take();
        self.retry_at = None;
        let mut out = Vec::new();
        if self.link.is_some() {
            out.push(notice(RoomNotice::State(MeetingState::Closing)));
        }
        out.extend(self.teardown());
        out.push(Action::SignalLeave);
        if let Some(w) = was {
            out.push(notice(RoomNotice::State(MeetingState::Closed)));
            out.push(notice(RoomNotice::Left {
                room_id: w.room_id,
                reason: reason.to_string(),
            }));
        }
        out
    }

    /// Ends the room for everyone, when in one.
    pub fn end(&mut self) -> Vec<Action> {
        if self.link.is_none() {
            return vec![notice(RoomNotice::Error("not in a room".into()))];
        }
        vec![Action::EndForAll]
    }

    /// The server's reply to [`Action::EndForAll`].
    pub fn ended(&mut self, result: Result<(), RoomError>) -> Vec<Action> {
        match result {
            Ok(()) => self.leave("ended"),
            Err(e) => vec![notice(RoomNotice::Error(format!("end for everyone: {e}")))],
        }
    }

    /// Starts or stops cloud recording, when in a room.
    pub fn set_cloud_recording(&mut self, on: bool) -> Vec<Action> {
        if self.link.is_none() {
            return vec![notice(RoomNotice::CloudRecording {
                state: ServiceState::Failed,
                reason: Some("not in a room".into()),
            })];
        }
        vec![Action::SetRecording(on)]
    }

    /// The server's reply to [`Action::SetRecording`]. A failed stop leaves it running.
    pub fn recording_set(&mut self, on: bool, result: Result<(), RoomError>) -> Vec<Action> {
        let n = match result {
            Ok(()) => {
                self.recording = on;
                RoomNotice::CloudRecording {
                    state: if on {
                        ServiceState::Started
                    } else {
                        ServiceState::Stopped
                    },
                    reason: None,
                }
            }
            Err(e) => RoomNotice::CloudRecording {
                state: if on {
                    ServiceState::Failed
                } else {
                    ServiceState::Started
                },
                reason: Some(e.to_string()),
            },
        };
        vec![notice(n)]
    }

    /// Sends a chat message to everyone on the publisher's data channel, which the room server
    /// relays to everyone subscribed with data. A private message is refused: the room's data
    /// channel reaches everyone.
    pub fn send_chat(&mut self, text: String, to: Option<String>) -> Vec<Action> {
        if let Some(to) = to {
            return vec![notice(RoomNotice::Error(format!(
                "chat not sent: private messages (to {to}) are not supported by the {} room backend",
                self.backend
            )))];
        }
        let open = self
            .link
            .as_ref()
            .and_then(|l| l.publisher)
            .is_some_and(|p| p.chat);
        if !open {
            return vec![notice(RoomNotice::Error(
                "chat needs the room's data channel, which is not open".into(),
            ))];
        }
        vec![Action::SendChat(text)]
    }

    /// A chat message from `from`. Plain text, as Janus's clients send it; the name comes from
    /// the room's roster, never from the message.
    pub fn chat_received(&self, from: String, text: String, timestamp_ms: u64) -> RoomNotice {
        let display_name = self
            .link
            .as_ref()
            .and_then(|l| l.remotes.get(&from))
            .map(|p| p.display_name.clone());
        RoomNotice::Chat(ChatMessage {
            from,
            display_name,
            text,
            timestamp_ms,
        })
    }

    /// What the room server reported.
    pub fn signal(&mut self, ev: SignalEvent, now: Instant) -> Vec<Action> {
        match ev {
            SignalEvent::ParticipantJoined {
                participant_id,
                display_name,
            } => self.participant_entered(participant_id, display_name),
            SignalEvent::Published(p) => self.remote_published(p),
            SignalEvent::SubscriptionOffer {
                subscription_id,
                offer,
            } => self.reoffered(subscription_id, offer),
            SignalEvent::Unpublished { participant_id } => self.drop_remote(&participant_id, false),
            SignalEvent::ParticipantLeft { participant_id } => {
                self.drop_remote(&participant_id, true)
            }
            SignalEvent::Talking {
                participant_id,
                talking,
            } => vec![notice(RoomNotice::Talking {
                participant_id,
                talking,
            })],
            SignalEvent::MediaDown { what, reason } => {
                if what == "publisher" {
                    self.fault(&format!("publisher media down: {reason}"), now)
                } else {
                    tracing::info!(subscription = %what, %reason, "room: subscription hung up");
                    Vec::new()
                }
            }
            SignalEvent::RoomClosed { reason } => self.leave(&reason),
            SignalEvent::Disconnected { reason } => self.fault(&reason, now),
        }
    }
}

fn notice(n: RoomNotice) -> Action {
    Action::Notify(n)
}

//! The room half of the state machine: join requests out, room notices in.
//!
//! The state shows what the room session reports, never what was merely asked: the meeting is
//! CONNECTED once the session says so, and a participant is listed once the server announced
//! them.

use super::recording::cloud_event;
use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::config::Config;
use crate::event::Event;
use crate::media::{ConsumerId, ConsumerSpec, MediaAction};
use crate::model::{MeetingState, Metadata, Mode, Room, ServiceState, StreamKind};
use crate::room::{JoinRequest, RoomAction, RoomNotice};

/// `[room]`: what a join falls back on, and whether the box joins at start-up.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct RoomSetup {
    pub(super) room_id: String,
    pub(super) display_name: String,
    pub(super) mic: bool,
    pub(super) webcam: bool,
    pub(super) mode: Mode,
    pub(super) auto_join: bool,
}

impl RoomSetup {
    pub(super) fn from_config(config: &Config) -> RoomSetup {
        let r = &config.room;
        RoomSetup {
            room_id: r.room_id.clone(),
            display_name: r.display_name_or(&config.device.name).to_string(),
            mic: r.mic,
            webcam: r.webcam,
            mode: r.mode,
            auto_join: r.auto_join,
        }
    }
}

impl StateMachine {
    /// A join with the given overrides; the `[room]` defaults fill the rest. The microphone
    /// and camera are set as asked through the engine, which confirms before the state shows it.
    pub(super) fn join(
        &mut self,
        room_id: Option<String>,
        display_name: Option<String>,
        metadata: Option<Metadata>,
        mic: Option<bool>,
        webcam: Option<bool>,
        mode: Option<Mode>,
    ) -> Vec<Effect> {
        let d = &self.setup.room;
        let req = JoinRequest {
            room_id: room_id.unwrap_or_else(|| d.room_id.clone()),
            display_name: display_name.unwrap_or_else(|| d.display_name.clone()),
            metadata: metadata.unwrap_or_default(),
            mic: mic.unwrap_or(d.mic),
            webcam: webcam.unwrap_or(d.webcam),
            mode: mode.unwrap_or(d.mode),
        };
        let mut fx = Vec::new();
        if self.setup.media.has_audio && self.state.local_participant.mic_on != req.mic {
            fx.push(Effect::Media(MediaAction::SetMicMuted(!req.mic)));
        }
        if self.setup.media.has_video && self.state.local_participant.webcam_on != req.webcam {
            fx.push(Effect::Media(MediaAction::SetCameraEnabled(req.webcam)));
        }
        self.state.room = Some(Room {
            room_id: req.room_id.clone(),
            session_id: None,
        });
        self.state.local_participant.display_name = req.display_name.clone();
        self.state.local_participant.mode = req.mode;
        self.state.local_participant.metadata = req.metadata.clone();
        fx.push(Effect::Room(RoomAction::Join(req)));
        fx
    }

    /// `leave` (and `toggle-join` in a room).
    pub(super) fn leave(&mut self) -> Step {
        if self.state.room.is_none() {
            return Step::err(ErrorCode::InvalidState, "not in a room");
        }
        Step::ok(vec![Effect::Room(RoomAction::Leave)])
    }

    /// `end`: the session ends for everyone.
    pub(super) fn end(&mut self) -> Step {
        if self.state.meeting_state != MeetingState::Connected {
            return Step::err(ErrorCode::InvalidState, "not connected to a room");
        }
        Step::ok(vec![Effect::Room(RoomAction::End)])
    }

    /// `send-chat`: to the room, and public chat to the viewers' feed too.
    pub(super) fn send_chat(&mut self, message: &str, to: Option<&str>, now_ms: u64) -> Step {
        if self.state.meeting_state != MeetingState::Connected {
            return Step::err(ErrorCode::InvalidState, "not connected to a room");
        }
        let mut fx = vec![Effect::Room(RoomAction::SendChat {
            text: message.to_string(),
            to: to.map(str::to_string),
        })];
        // Public room chat reaches the viewers too; private messages do not.
        if to.is_none() {
            fx.push(self.local_chat_to_feed(message, now_ms));
        }
        Step::ok(fx)
    }

    /// Takes in what the room session reports.
    pub fn room_notice(&mut self, notice: RoomNotice) -> Vec<Effect> {
        let mut fx = Vec::new();
        match notice {
            RoomNotice::State(state) => {
                if self.state.meeting_state != state {
                    self.state.meeting_state = state;
                    fx.push(Effect::Emit(Event::MeetingStateChanged { state }));
                }
            }
            RoomNotice::Joined {
                room_id,
                session_id,
                participant_id,
            } => {
                self.state.room = Some(Room {
                    room_id: room_id.clone(),
                    session_id: session_id.clone(),
                });
                fx.push(Effect::Emit(Event::MeetingJoined {
                    room_id,
                    session_id,
                    participant_id,
                }));
            }
            RoomNotice::Left { room_id, reason } => {
                self.state.room = None;
                for id in std::mem::take(&mut self.state.participants).into_keys() {
                    fx.extend(self.unpin_left(&id));
                    fx.push(Effect::Emit(Event::ParticipantLeft { participant_id: id }));
                }
                if self.state.active_speaker.take().is_some() {
                    fx.push(Effect::Emit(Event::SpeakerChanged {
                        participant_id: None,
                    }));
                }
                if self.state.meeting_state != MeetingState::Closed {
                    self.state.meeting_state = MeetingState::Closed;
                    fx.push(Effect::Emit(Event::MeetingStateChanged {
                        state: MeetingState::Closed,
                    }));
                }
                if self.state.cloud_recording.is_active() {
                    self.state.cloud_recording = ServiceState::Stopped;
                    fx.push(cloud_event(
                        ServiceState::Stopped,
                        Some("left the room".into()),
                    ));
                }
                fx.extend(self.remote_share(None));
                fx.push(Effect::Emit(Event::MeetingLeft { room_id, reason }));
            }
            RoomNotice::ParticipantJoined(p) => {
                let first = !self.state.participants.contains_key(&p.participant_id);
                self.state
                    .participants
                    .insert(p.participant_id.clone(), p.clone());
                if first {
                    fx.push(Effect::Emit(Event::ParticipantJoined { participant: p }));
                }
            }
            RoomNotice::ParticipantLeft(id) => {
                fx.extend(self.remote_share(Some((&id, false))));
                if self.state.participants.remove(&id).is_some() {
                    fx.extend(self.unpin_left(&id));
                    fx.push(Effect::Emit(Event::ParticipantLeft {
                        participant_id: id.clone(),
                    }));
                }
                if self.state.active_speaker.as_deref() == Some(id.as_str()) {
                    self.state.active_speaker = None;
                    fx.push(Effect::Emit(Event::SpeakerChanged {
                        participant_id: None,
                    }));
                }
            }
            RoomNotice::Stream {
                participant_id,
                kind,
                enabled,
            } => {
                if kind == StreamKind::Share
                    && self.state.participants.contains_key(&participant_id)
                {
                    fx.extend(self.remote_share(Some((&participant_id, enabled))));
                }
                if let Some(p) = self.state.participants.get_mut(&participant_id) {
                    match kind {
                        StreamKind::Audio => p.mic_on = enabled,
                        StreamKind::Video => p.webcam_on = enabled,
                        StreamKind::Share => {}
                    }
                    let stream_id = format!(
                        "{participant_id}-{}",
                        match kind {
                            StreamKind::Audio => "audio",
                            StreamKind::Video => "video",
                            StreamKind::Share => "share",
                        }
                    );
                    if let Some(s) = p.streams.get_mut(&stream_id) {
                        s.paused = !enabled;
                    }
                    fx.push(Effect::Emit(Event::stream(
                        enabled,
                        participant_id,
                        kind,
                        stream_id,
                    )));
                }
            }
            RoomNotice::Talking {
                participant_id,
                talking,
            } => {
                let now = self.state.active_speaker.as_deref() == Some(participant_id.as_str());
                if talking && !now {
                    self.state.active_speaker = Some(participant_id.clone());
                    fx.push(Effect::Emit(Event::SpeakerChanged {
                        participant_id: Some(participant_id),
                    }));
                } else if !talking && now {
                    self.state.active_speaker = None;
                    fx.push(Effect::Emit(Event::SpeakerChanged {
                        participant_id: None,
                    }));
                }
            }
            RoomNotice::Chat(message) => {
                fx.push(self.room_chat_to_feed(&message));
                fx.push(Effect::Emit(Event::ChatMessage { message }));
            }
            RoomNotice::CloudRecording { state, reason } => {
                if self.state.cloud_recording != state {
                    self.state.cloud_recording = state;
                    fx.push(cloud_event(state, reason));
                }
            }
            RoomNotice::AttachTap(sender) => {
                fx.push(Effect::Media(MediaAction::Attach {
                    id: ConsumerId::RoomTap,
                    spec: ConsumerSpec::Tap(sender),
                }));
            }
            RoomNotice::DetachTap => fx.push(Effect::Media(MediaAction::Detach {
                id: ConsumerId::RoomTap,
            })),
            RoomNotice::KeyframeRequested => {
                if self.setup.media.has_video {
                    fx.push(Effect::Media(MediaAction::RequestKeyframe));
                }
            }
            RoomNotice::ShareKeyframeRequested => {
                fx.push(Effect::Media(MediaAction::RequestShareKeyframe));
            }
            RoomNotice::BitrateWanted(kbps) => {
                let (lo, hi) = self.setup.media.bitrate_bounds;
                let k = kbps.clamp(lo, hi.max(lo));
                if self.setup.media.has_video && k != self.state.media.bitrate_kbps {
                    self.state.media.bitrate_kbps = k;
                    fx.push(Effect::Media(MediaAction::SetBitrate(k)));
                }
            }
            RoomNotice::Error(message) => fx.push(Effect::Emit(Event::Error {
                code: "room".into(),
                message,
            })),
        }
        // The fallback follows the room at once when it comes back or is left.
        fx.extend(self.fallback_rule(self.last_tick_ms));
        self.refresh_health();
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use crate::command::{Command, ErrorCode};
    use crate::media::MediaNotice;
    use crate::model::{Participant, RecordingTarget};

    fn remote(id: &str) -> Participant {
        Participant {
            participant_id: id.into(),
            display_name: "Ann".into(),
            local: false,
            mode: Mode::SendAndReceive,
            metadata: Default::default(),
            mic_on: true,
            webcam_on: true,
            streams: Default::default(),
        }
    }

    fn joined() -> StateMachine {
        let mut s = state();
        s.set_room_backend(true);
        s.media_notice(MediaNotice::MicMuted(false));
        s.media_notice(MediaNotice::CameraEnabled(true));
        let step = s.command(&Command::ToggleJoin, 0);
        assert!(step.reply.is_ok());
        assert!(matches!(
            step.effects.last(),
            Some(Effect::Room(RoomAction::Join(_)))
        ));
        s.room_notice(RoomNotice::State(MeetingState::Connecting));
        s.room_notice(RoomNotice::State(MeetingState::Connected));
        s
    }

    #[test]
    fn join_follows_the_session_not_the_request() {
        let mut s = state();
        s.set_room_backend(true);
        let step = s.command(
            &Command::Join {
                room_id: Some("42".into()),
                display_name: None,
                metadata: None,
                mic: Some(false),
                webcam: None,
                mode: None,
            },
            0,
        );
        assert!(step.reply.is_ok());
        assert_eq!(
            s.state().meeting_state,
            MeetingState::Closed,
            "not connected until told"
        );
        let Some(Effect::Room(RoomAction::Join(req))) = step.effects.last() else {
            panic!("no join effect: {:?}", step.effects)
        };
        assert_eq!(req.room_id, "42");
        assert!(!req.mic);
        let fx = s.room_notice(RoomNotice::State(MeetingState::Connected));
        assert_eq!(emitted(&fx), vec!["meeting-state-changed"]);
        let fx = s.room_notice(RoomNotice::Joined {
            room_id: "42".into(),
            session_id: Some("s".into()),
            participant_id: "9".into(),
        });
        assert_eq!(emitted(&fx), vec!["meeting-joined"]);
        assert_eq!(
            s.state().room.as_ref().unwrap().session_id.as_deref(),
            Some("s")
        );
    }

    #[test]
    fn participants_speakers_and_leaving() {
        let mut s = joined();
        let fx = s.room_notice(RoomNotice::ParticipantJoined(remote("7")));
        assert_eq!(emitted(&fx), vec!["participant-joined"]);
        assert!(s
            .room_notice(RoomNotice::ParticipantJoined(remote("7")))
            .is_empty());
        let fx = s.room_notice(RoomNotice::Talking {
            participant_id: "7".into(),
            talking: true,
        });
        assert_eq!(emitted(&fx), vec!["speaker-changed"]);
        assert_eq!(s.state().active_speaker.as_deref(), Some("7"));
        let fx = s.room_notice(RoomNotice::Stream {
            participant_id: "7".into(),
            kind: StreamKind::Video,
            enabled: false,
        });
        assert_eq!(emitted(&fx), vec!["stream-disabled"]);
        assert!(!s.state().participants["7"].webcam_on);
        let fx = s.room_notice(RoomNotice::ParticipantLeft("7".into()));
        assert_eq!(emitted(&fx), vec!["participant-left", "speaker-changed"]);
        assert!(s.state().participants.is_empty());
        let step = s.command(&Command::Leave, 0);
        assert_eq!(step.effects, vec![Effect::Room(RoomAction::Leave)]);
        let fx = s.room_notice(RoomNotice::Left {
            room_id: "1234".into(),
            reason: "left".into(),
        });
        assert!(emitted(&fx).contains(&"meeting-left".to_string()));
        assert_eq!(s.state().meeting_state, MeetingState::Closed);
        assert!(s.state().room.is_none());
        assert_eq!(
            s.command(&Command::Leave, 0).reply.unwrap_err().code,
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn cloud_recording_needs_a_room_and_reports_each_state() {
        let mut s = state();
        s.set_room_backend(true);
        let start = Command::StartRecording {
            target: RecordingTarget::Cloud,
        };
        assert_eq!(
            s.command(&start, 0).reply.unwrap_err().code,
            ErrorCode::InvalidState
        );
        let mut s = joined();
        let step = s.command(&start, 0);
        assert!(step
            .effects
            .contains(&Effect::Room(RoomAction::SetCloudRecording(true))));
        assert_eq!(s.state().cloud_recording, ServiceState::Starting);
        s.room_notice(RoomNotice::CloudRecording {
            state: ServiceState::Started,
            reason: None,
        });
        assert_eq!(s.state().cloud_recording, ServiceState::Started);
        let stop = s.command(
            &Command::StopRecording {
                target: RecordingTarget::Cloud,
            },
            0,
        );
        assert!(stop
            .effects
            .contains(&Effect::Room(RoomAction::SetCloudRecording(false))));
    }

    #[test]
    fn the_camera_switch_reaches_the_room_session() {
        let mut s = joined();
        let fx = s.media_notice(MediaNotice::CameraEnabled(false));
        assert!(fx.contains(&Effect::Room(RoomAction::SetCamera(false))));
        assert_eq!(emitted(&fx), vec!["stream-disabled"]);
        let fx = s.media_notice(MediaNotice::CameraEnabled(true));
        assert!(fx.contains(&Effect::Room(RoomAction::SetCamera(true))));
        // Without a room backend there is no session to tell.
        let mut s = state();
        s.media_notice(MediaNotice::CameraEnabled(true));
        assert!(!s
            .media_notice(MediaNotice::CameraEnabled(false))
            .iter()
            .any(|e| matches!(e, Effect::Room(_))));
    }

    #[test]
    fn feedback_drives_the_one_encoder_within_bounds() {
        let mut s = joined();
        assert_eq!(
            s.room_notice(RoomNotice::KeyframeRequested),
            vec![Effect::Media(MediaAction::RequestKeyframe)]
        );
        assert_eq!(
            s.room_notice(RoomNotice::BitrateWanted(10)),
            vec![Effect::Media(MediaAction::SetBitrate(300))],
            "clamped to media.video.min_bitrate_kbps"
        );
        assert!(s.room_notice(RoomNotice::BitrateWanted(300)).is_empty());
    }

    #[test]
    fn a_dropped_connection_is_unhealthy_until_reconnected() {
        let mut s = joined();
        s.media_notice(MediaNotice::State {
            state: crate::event::MediaState::Playing,
            encoder: None,
        });
        assert!(s.state().health.ok);
        s.room_notice(RoomNotice::State(MeetingState::Disconnected));
        assert!(!s.state().health.ok);
        s.room_notice(RoomNotice::State(MeetingState::Connecting));
        s.room_notice(RoomNotice::State(MeetingState::Connected));
        assert!(s.state().health.ok);
    }
}

//! The agent's state and the pure machine that moves it.
//!
//! Nothing here touches a device, a socket, the disk or the clock: inputs come in (commands,
//! notices from the media engine, the room, the transcriber and the fleet client, the results of
//! I/O the machine asked for, ticks carrying the time), the state changes, and [`Effect`]s come
//! out for the agent loop to carry out. Effects whose outcome matters come back later as
//! notices, so the state only ever says what has actually happened (a muted mic is shown muted
//! once no audio leaves).
//!
//! [`AgentState`] is what is shown: what `get-state` returns, the fleet's state topic carries
//! and [`crate::agent::AgentHandle::state`] watchers read. [`StateMachine`] owns it, beside the
//! setup taken from the configuration and what was asked and not yet confirmed.
//!
//! This file keeps the composition and the command dispatch. Each concern has its own file of
//! one shape: a `...Setup` built from the config, a `...Status` that is serialized, notices
//! taken by a `..._notice` method, and its own tests. A command that needs I/O first (resolving
//! an RTMP host, loading the speech engine, listing segments on disk) is answered
//! [`Reply::Later`]: the machine asks for the I/O with a [`Token`], and its answer to the
//! matching [`IoNotice`] completes the reply.
//!
//! Imported by the agent loop (`agent/mod.rs`) and, for [`AgentState`] and [`FleetLink`], by the
//! layers above it (api, fleet, controls, http, run).

mod calendar;
mod effect;
mod fleet;
mod health;
mod hls;
mod livestream;
mod media;
mod meeting;
mod polls;
mod recording;
mod render;
mod room;
mod share;
mod transcription;
mod update;
mod viewers;

pub use calendar::CalendarStatus;
pub use effect::{Effect, IoNotice, Reply, Step, Token};
pub use fleet::{FleetLink, FleetLinkState, FleetStatus};
pub use health::Health;
pub use hls::HlsStatus;
pub use livestream::{
    FallbackStatus, HostUnresolved, LivestreamSetup, LivestreamStatus, OutputStatus,
};
pub use media::{MediaStatus, LOCAL_AUDIO_STREAM, LOCAL_VIDEO_STREAM};
pub use recording::RecordingStatus;
pub use transcription::{EngineLoadFailed, TranscriptionStatus};
pub use update::{
    install_gate, room_busy, Resumed, UpdateAction, UpdateNotice, UpdateStatus, INSTALL_TIMEOUT_MS,
};
pub use viewers::Viewers;

use crate::command::{Command, ErrorCode};
use crate::config::Config;
use crate::event::{Event, MediaState};
use crate::media::MediaAction;
use crate::model::{
    MeetingState, Mode, OutputKind, OutputSource, Participant, RecordingTarget, Room, ServiceState,
};
use crate::room::RoomAction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The agent's state as it is shown. Every field is what was last confirmed, never what was
/// merely asked; setup and pending requests live in [`StateMachine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// Device id (fleet topic level).
    pub device_id: String,
    /// Name for people.
    pub device_name: String,
    /// roombox version.
    pub version: String,
    /// Connection to the meeting.
    pub meeting_state: MeetingState,
    /// The room, while in or joining one.
    pub room: Option<Room>,
    /// This box as a participant.
    pub local_participant: Participant,
    /// Remote participants by id.
    pub participants: BTreeMap<String, Participant>,
    /// Who speaks now.
    pub active_speaker: Option<String>,
    /// Capture and encode.
    pub media: MediaStatus,
    /// Local recording.
    pub recording: RecordingStatus,
    /// Recording on the room server.
    pub cloud_recording: ServiceState,
    /// RTMP simulcast and fallback.
    pub livestream: LivestreamStatus,
    /// HLS served by the box.
    pub hls: HlsStatus,
    /// Realtime transcription, and recordings being transcribed.
    pub transcription: TranscriptionStatus,
    /// Identify (LED blink) runs until this time, ms since the epoch.
    pub identify_until_ms: Option<u64>,
    /// Health summary.
    pub health: Health,
    /// The agent is draining before exit.
    pub stopping: bool,
    /// Who presents (shares content) in the room: the box's participant id while the box
    /// shares, a remote participant's, or none.
    #[serde(default)]
    pub presenter: Option<String>,
    /// The remote participant pinned to the meeting feed's focus, if any.
    #[serde(default)]
    pub pinned: Option<String>,
    /// The link to the fleet's broker; none when `[fleet]` is off.
    pub fleet: Option<FleetStatus>,
    /// The room's calendar; none when `[calendar]` is off.
    #[serde(default)]
    pub calendar: Option<CalendarStatus>,
    /// The last software update, from its download to its proof of health.
    #[serde(default)]
    pub update: UpdateStatus,
    /// The room's live poll: the open one, or the last closed one with its results.
    #[serde(default)]
    pub poll: Option<crate::model::Poll>,
    /// The viewers' chat and questions, for the console. Watched but never serialized: chat
    /// text does not belong in `get-state` or the fleet's retained state topic.
    #[serde(skip)]
    pub viewers: Viewers,
}

impl AgentState {
    /// True while identify should blink the LEDs.
    pub fn identifying(&self) -> bool {
        self.identify_until_ms.is_some()
    }
}

/// The pure machine: the shown [`AgentState`], the setup it was configured with, and what it
/// asked for and has not heard back about.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    state: AgentState,
    setup: Setup,
    pending: Pending,
    /// The latest time the agent told the machine ([`StateMachine::at`]), for rules applied
    /// between ticks.
    last_tick_ms: u64,
    /// The last [`Token`] given out.
    last_token: u64,
    /// The content share's rules: the box's share and the one presenter.
    share: share::ShareRules,
    /// The running outputs that asked for the meeting, and what each was last said to carry
    /// ([`StateMachine::settle`]).
    carrying: BTreeMap<(OutputKind, Option<String>), OutputSource>,
}

/// Each concern's setup: from the configuration, or from what the agent attached.
#[derive(Debug, Clone, PartialEq, Default)]
struct Setup {
    media: media::MediaSetup,
    recording: recording::RecordingSetup,
    hls: hls::HlsSetup,
    livestream: LivestreamSetup,
    transcription: transcription::TranscriptionSetup,
    room: room::RoomSetup,
    fleet: fleet::FleetSetup,
    calendar: calendar::CalendarSetup,
    update: update::UpdateSetup,
    /// A room session runs (room commands are refused without one).
    room_backend: bool,
    /// Where the HTTP server answers (`http://host:port`), once it listens.
    http_base: Option<String>,
}

/// Each concern's requests that have not been confirmed yet.
#[derive(Debug, Clone, PartialEq, Default)]
struct Pending {
    media: media::MediaPending,
    recording: recording::RecordingPending,
    livestream: livestream::LivestreamPending,
    transcription: transcription::TranscriptionPending,
    calendar: calendar::CalendarPending,
    update: update::UpdatePending,
}

impl StateMachine {
    /// The machine at start-up for a configuration.
    pub fn new(config: &Config, device_id: String) -> StateMachine {
        let share = share::ShareRules::from_config(config, device_id.clone());
        let mut m = StateMachine {
            state: AgentState {
                device_id: device_id.clone(),
                device_name: config.device.name.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                meeting_state: MeetingState::Closed,
                room: None,
                local_participant: Participant {
                    participant_id: device_id,
                    display_name: config.device.name.clone(),
                    local: true,
                    mode: Mode::SendAndReceive,
                    metadata: Default::default(),
                    mic_on: false,
                    webcam_on: false,
                    streams: BTreeMap::new(),
                },
                participants: BTreeMap::new(),
                active_speaker: None,
                media: MediaStatus::default(),
                recording: RecordingStatus::default(),
                cloud_recording: ServiceState::Stopped,
                livestream: LivestreamStatus::default(),
                hls: HlsStatus::default(),
                transcription: TranscriptionStatus::default(),
                identify_until_ms: None,
                health: Health::default(),
                stopping: false,
                presenter: None,
                pinned: None,
                fleet: None,
                calendar: None,
                update: UpdateStatus::default(),
                poll: None,
                viewers: Viewers::default(),
            },
            setup: Setup::default(),
            pending: Pending::default(),
            last_tick_ms: 0,
            last_token: 0,
            share,
            carrying: BTreeMap::new(),
        };
        let _ = m.configure(config);
        m.refresh_health();
        m
    }

    /// The state as it is shown.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// The shown state, to set up a case directly in tests.
    #[cfg(test)]
    pub fn state_mut(&mut self) -> &mut AgentState {
        &mut self.state
    }

    /// Takes in the parts of a (re)loaded configuration that the machine keeps. A running
    /// recording whose settings changed is restarted with the new ones (the effects returned).
    pub fn configure(&mut self, config: &Config) -> Vec<Effect> {
        self.state.device_name = config.device.name.clone();
        self.state.local_participant.display_name = config.device.name.clone();
        self.configure_media(config);
        self.share.reconfigure(config);
        self.share_out(Vec::new());
        let fx = self.configure_recording(config);
        self.setup.hls = hls::HlsSetup::from_config(config);
        self.state.hls.source = config.hls.source;
        self.setup.transcription = transcription::TranscriptionSetup::from_config(config);
        self.setup.room = room::RoomSetup::from_config(config);
        self.configure_fleet(config);
        self.configure_calendar(config);
        self.configure_update(config);
        fx
    }

    /// Tells the machine the time, before an input that carries none (a room notice), so the
    /// rules that count time start from when things happened, not from the last tick.
    pub fn at(&mut self, now_ms: u64) {
        self.last_tick_ms = self.last_tick_ms.max(now_ms);
    }

    /// Takes the `[livestream]` settings, with stream key files already read by the agent.
    pub fn set_livestream(&mut self, setup: LivestreamSetup) {
        self.state.livestream.fallback.output = setup.fallback.as_ref().map(|(n, _, _)| n.clone());
        self.setup.livestream = setup;
    }

    /// Tells the machine a room session runs (room commands are refused without one).
    pub fn set_room_backend(&mut self, present: bool) {
        self.setup.room_backend = present;
    }

    /// Tells the machine where the HTTP server answers (`http://host:port`), once it listens.
    pub fn set_http_base(&mut self, base: Option<String>) {
        self.setup.http_base = base;
    }

    fn token(&mut self) -> Token {
        self.last_token += 1;
        Token(self.last_token)
    }

    /// Effects to run once at start-up: media, then what the configuration starts on its own.
    pub fn start(&mut self) -> Vec<Effect> {
        self.state.media.state = MediaState::Starting;
        let mut fx = vec![
            Effect::Media(MediaAction::Start),
            Effect::Emit(Event::MediaStateChanged {
                state: MediaState::Starting,
                encoder: None,
            }),
        ];
        if self.setup.recording.autostart {
            fx.extend(self.start_local_recording());
        }
        if self.setup.hls.autostart && self.setup.media.has_video && self.setup.http_base.is_some()
        {
            fx.extend(self.hls_effects());
        }
        if self.setup.room_backend && self.setup.room.auto_join {
            fx.extend(self.join(None, None, None, None, None, None));
        }
        if self.setup.transcription.autostart {
            fx.extend(self.autostart_transcription());
        }
        fx
    }

    /// Handles one command at time `now_ms`.
    pub fn command(&mut self, cmd: &Command, now_ms: u64) -> Step {
        if self.state.stopping && !matches!(cmd, Command::GetState | Command::Ping) {
            return Step::err(ErrorCode::InvalidState, "the agent is stopping");
        }
        self.calendar_activity(cmd, now_ms);
        match cmd {
            Command::Ping => Step::reply(
                Ok(serde_json::json!({"pong": true, "timeMs": now_ms})),
                Vec::new(),
            ),
            Command::GetState => Step::reply(
                Ok(serde_json::to_value(&self.state).unwrap_or_default()),
                Vec::new(),
            ),
            Command::EnableMic => self.set_mic(true),
            Command::DisableMic => self.set_mic(false),
            Command::ToggleMic => self.set_mic(!self.mic_target()),
            Command::EnableWebcam => self.set_webcam(true),
            Command::DisableWebcam => self.set_webcam(false),
            Command::ToggleWebcam => self.set_webcam(!self.webcam_target()),
            Command::StartShare => self.share_command(Some(true)),
            Command::StopShare => self.share_command(Some(false)),
            Command::ToggleShare => self.share_command(None),
            Command::RequestKeyframe => self.request_keyframe(),
            Command::SetBitrate { kbps } => self.set_bitrate(*kbps),
            Command::SetVolume { percent } => {
                self.state.media.volume = Some(*percent);
                Step::ok(vec![Effect::Media(MediaAction::SetSpeakerVolume(*percent))])
            }
            Command::Pin { participant_id } => self.pin(participant_id.as_deref()),
            Command::SetOutputSource {
                output,
                name,
                source,
            } => self.set_output_source(*output, name.as_deref(), *source),
            Command::RestartMedia => Step::ok(vec![Effect::Media(MediaAction::Restart)]),
            Command::StartRecording {
                target: RecordingTarget::Local,
            } => self.start_recording(),
            Command::StopRecording {
                target: RecordingTarget::Local,
            } => self.stop_recording(),
            Command::StartRecording {
                target: RecordingTarget::Cloud,
            }
            | Command::StopRecording {
                target: RecordingTarget::Cloud,
            }
            | Command::Join { .. }
            | Command::Leave
            | Command::End
            | Command::ToggleJoin
            | Command::SendChat { .. }
            | Command::JoinMeeting { .. }
                if !self.setup.room_backend =>
            {
                Step::err(
                    ErrorCode::Unavailable,
                    format!("`{cmd}` needs a room backend, and none is configured"),
                )
            }
            Command::StartRecording {
                target: RecordingTarget::Cloud,
            } => self.start_cloud_recording(),
            Command::StopRecording {
                target: RecordingTarget::Cloud,
            } => self.stop_cloud_recording(),
            Command::Join {
                room_id,
                display_name,
                metadata,
                mic,
                webcam,
                mode,
            } => Step::ok(self.join(
                room_id.clone(),
                display_name.clone(),
                metadata.clone(),
                *mic,
                *webcam,
                *mode,
            )),
            Command::ToggleJoin if self.state.room.is_none() => {
                let room = self.calendar_join_room();
                Step::ok(self.join(room, None, None, None, None, None))
            }
            Command::Leave | Command::ToggleJoin => self.leave(),
            Command::End => self.end(),
            Command::SendChat { message, to } => self.send_chat(message, to.as_deref(), now_ms),
            Command::ViewerChat { name, message } => self.viewer_chat(name, message, now_ms),
            Command::AskQuestion { name, text } => self.ask_question(name, text, now_ms),
            Command::AnswerQuestion { id } => {
                self.close_question(*id, crate::model::QuestionOutcome::Answered)
            }
            Command::DismissQuestion { id } => {
                self.close_question(*id, crate::model::QuestionOutcome::Dismissed)
            }
            Command::HideMessage { id } => self.hide_message(*id),
            Command::CreatePoll { question, options } => {
                self.create_poll(question, options, now_ms)
            }
            Command::ClosePoll { id } => self.close_poll(*id, now_ms),
            Command::Vote {
                poll_id,
                option,
                name,
            } => self.vote(*poll_id, *option, name),
            Command::StartLivestream { outputs } => self.request_livestream(outputs),
            Command::StopLivestream { name } => self.stop_livestream(name.as_deref()),
            Command::StartHls => self.start_hls(),
            Command::StopHls => self.stop_hls(),
            Command::StartTranscription { language } => {
                self.request_transcription(language.as_deref())
            }
            Command::StopTranscription => self.stop_transcription(),
            Command::TranscribeRecording { file, from, to } => {
                self.request_recording_transcription(file.clone(), *from, *to)
            }
            Command::Identify { seconds } => {
                self.state.identify_until_ms = Some(now_ms + u64::from(*seconds) * 1000);
                Step::ok(vec![Effect::Emit(Event::Identify { seconds: *seconds })])
            }
            Command::ReloadConfig => Step::ok(vec![Effect::ReloadConfig]),
            Command::Restart => {
                self.state.stopping = true;
                Step::ok(self.drain())
            }
            Command::CalendarRefresh | Command::JoinMeeting { .. } | Command::BookNow { .. } => {
                self.calendar_command(cmd, now_ms)
            }
            Command::Update { manifest, force } => self.update_command(manifest, *force, now_ms),
        }
    }

    /// Takes in the result of I/O asked for with an effect. The step's reply completes the
    /// command deferred under [`IoNotice::token`].
    pub fn io_notice(&mut self, notice: IoNotice) -> Step {
        let step = match notice {
            IoNotice::HostsResolved { token, result } => self.hosts_resolved(token, result),
            IoNotice::SpeechEngineLoaded { token, result } => {
                self.speech_engine_loaded(token, result)
            }
            IoNotice::SegmentsFound { token, result } => self.segments_found(token, result),
            IoNotice::TranscriberStarted(pcm) => Step::ok(self.transcriber_started(pcm)),
            n @ IoNotice::CalendarBooked { .. } => self
                .calendar_io(n)
                .unwrap_or_else(|| Step::err(ErrorCode::Internal, "unexpected notice")),
            IoNotice::Update(n) => Step::ok(self.update_notice(n, self.last_tick_ms)),
        };
        self.refresh_health();
        step
    }

    /// Begins a clean stop: recordings are finalised, then the loop exits.
    pub fn drain(&mut self) -> Vec<Effect> {
        self.state.stopping = true;
        let mut fx = self.update_drain(self.last_tick_ms);
        if self.state.room.is_some() {
            fx.push(Effect::Room(RoomAction::Leave));
        }
        fx.extend(self.drain_recording());
        if self.state.transcription.state.is_active() {
            fx.extend(self.transcription_stop_effects());
        }
        fx.push(Effect::Media(MediaAction::Stop));
        fx.push(Effect::Shutdown);
        fx
    }

    /// Periodic housekeeping at time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.state.identify_until_ms.is_some_and(|t| t <= now_ms) {
            self.state.identify_until_ms = None;
        }
        self.last_tick_ms = now_ms;
        let mut fx = self.fallback_rule(now_ms);
        fx.extend(self.calendar_tick(now_ms));
        fx.extend(self.update_tick(now_ms));
        self.refresh_health();
        fx
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub(super) fn state() -> StateMachine {
        StateMachine::new(&Config::default(), "box1".into())
    }

    pub(super) fn emitted(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Emit(ev) => Some(ev.name()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use crate::media::{ConsumerId, MediaNotice};

    #[test]
    fn start_starts_media_and_what_the_config_autostarts() {
        let mut s = state();
        assert_eq!(s.start()[0], Effect::Media(MediaAction::Start));
        let mut c = Config::default();
        c.recording.autostart = true;
        c.transcription.autostart = true;
        let mut s = StateMachine::new(&c, "b".into());
        let fx = s.start();
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::Media(MediaAction::Attach {
                id: ConsumerId::Recorder,
                ..
            })
        )));
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::LoadSpeechEngine { language, .. } if language == "en")));
        assert_eq!(s.state().recording.state, ServiceState::Starting);
    }

    #[test]
    fn get_state_is_the_shown_state_and_reads_back() {
        let mut s = state();
        let v = s.command(&Command::GetState, 0).reply.result().unwrap();
        assert_eq!(v["deviceId"], "box1");
        assert_eq!(v["media"]["state"], "STOPPED");
        assert!(v.get("viewers").is_none(), "chat stays out of get-state");
        let back: AgentState = serde_json::from_value(v).unwrap();
        assert_eq!(&back, s.state());
    }

    #[test]
    fn room_commands_without_a_backend_are_unavailable() {
        let mut s = state();
        let step = s.command(&Command::Leave, 0);
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::Unavailable);
    }

    #[test]
    fn identify_expires() {
        let mut s = state();
        s.command(&Command::Identify { seconds: 2 }, 1000);
        assert!(s.state().identifying());
        s.tick(2500);
        assert!(s.state().identifying());
        s.tick(3000);
        assert!(!s.state().identifying());
    }

    #[test]
    fn drain_stops_recording_then_media_then_exits() {
        let mut s = state();
        s.command(
            &Command::StartRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        s.media_notice(MediaNotice::Consumer {
            id: ConsumerId::Recorder,
            event: crate::media::ConsumerEvent::Started,
        });
        let fx = s.drain();
        assert_eq!(fx.last(), Some(&Effect::Shutdown));
        assert!(fx.contains(&Effect::Media(MediaAction::Stop)));
        let late = s.command(&Command::EnableMic, 0);
        assert_eq!(late.reply.unwrap_err().code, ErrorCode::InvalidState);
    }
}

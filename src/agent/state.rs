//! The agent's state and the pure machine that moves it.
//!
//! Nothing here touches a device, a socket or the clock: inputs come in (commands, notices from
//! the media engine, ticks carrying the time), the state changes, and [`Effect`]s come out for the
//! agent loop to carry out. Effects whose outcome matters come back later as notices, so the state
//! only ever says what has actually happened (a muted mic is shown muted once no audio leaves).

mod fleet;
mod hls;
mod livestream;
mod room;
mod transcription;
mod viewers;

pub use fleet::{FleetLink, FleetLinkState, FleetStatus};
pub use hls::{HlsStatus, HLS_ID};
pub use livestream::{FallbackStatus, LivestreamSetup, LivestreamStatus, OutputStatus};
pub use transcription::{TranscriptionStatus, TRANSCRIBER_ID};
pub use viewers::Viewers;

use crate::command::{Command, CommandError, ErrorCode};
use crate::config::{AudioSource, Config, VideoSource};
use crate::event::{Event, MediaState};
use crate::media::recorder::RecorderSpec;
use crate::media::{ConsumerEvent, ConsumerSpec, MediaAction, MediaNotice};
use crate::model::{
    MeetingState, Mode, Participant, RecordingTarget, Room, ServiceState, StreamKind,
};
use crate::room::RoomAction;
use serde::Serialize;
use std::collections::BTreeMap;

/// Stream ids of the local participant's tracks.
pub const LOCAL_AUDIO_STREAM: &str = "local-audio";
/// Stream id of the local camera.
pub const LOCAL_VIDEO_STREAM: &str = "local-video";
/// Consumer id of the local recorder.
pub const RECORDER_ID: &str = "recorder";

/// What the media pipeline is doing.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaStatus {
    /// Pipeline lifecycle.
    pub state: MediaState,
    /// The H.264 encoder element in use.
    pub encoder: Option<String>,
    /// Configured video source.
    pub video_source: String,
    /// Configured audio source.
    pub audio_source: String,
    /// Configured width x height.
    pub resolution: String,
    /// Frames per second actually encoded over the last second.
    pub fps: f64,
    /// Current video bitrate target, kbit/s.
    pub bitrate_kbps: u32,
    /// Video bitrate the encoder produced over the last second, kbit/s.
    pub encoded_kbps: u32,
    /// Time the encoder spent per frame over the last second, as a share of the frame interval.
    pub encode_usage: f64,
    /// `cpu` while overload holds the frame rate below the configured one, else `none`.
    pub quality_limitation: String,
    /// The frame rate sent now (the configured one unless limited).
    pub target_fps: u32,
    /// Restarts since the agent started.
    pub restarts: u32,
    /// The last fault, if any.
    pub last_error: Option<String>,
}

/// Local recording.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStatus {
    /// Lifecycle.
    pub state: ServiceState,
    /// Directory of the segments.
    pub dir: String,
    /// Segments closed since the agent started.
    pub segments_closed: u64,
    /// Bytes in closed segments since the agent started.
    pub bytes_closed: u64,
    /// The last closed segment.
    pub last_segment: Option<String>,
    /// Why it last failed.
    pub last_error: Option<String>,
}

/// Overall health, for the fleet and `roombox status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// True when nothing below is wrong.
    pub ok: bool,
    /// What is wrong, for a person.
    pub problems: Vec<String>,
}

/// The agent's whole state: what `get-state` returns and the fleet's state topic carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// The link to the fleet's broker; none when `[fleet]` is off.
    pub fleet: Option<FleetStatus>,
    /// The viewers' chat and questions, for the console (not serialized: see [`Viewers`]).
    #[serde(skip)]
    pub viewers: Viewers,
    /// `[fleet]` has a broker: link reports are taken in.
    #[serde(skip)]
    fleet_configured: bool,
    #[serde(skip)]
    bitrate_bounds: (u32, u32),
    #[serde(skip)]
    has_audio: bool,
    #[serde(skip)]
    has_video: bool,
    #[serde(skip)]
    recording_autostart: bool,
    /// What the recorder consumer is started with.
    #[serde(skip)]
    recorder: Option<RecorderSpec>,
    /// What the HLS consumer is started with.
    #[serde(skip)]
    hls_spec: Option<crate::media::hls::HlsSpec>,
    /// `[hls] autostart`.
    #[serde(skip)]
    hls_autostart: bool,
    /// Where the HTTP server answers, once it listens.
    #[serde(skip)]
    http_base: Option<String>,
    /// `[livestream]`, resolved.
    #[serde(skip)]
    livestream_setup: LivestreamSetup,
    /// Since when the room the box is meant to be in has been unreachable (ms).
    #[serde(skip)]
    room_lost_since_ms: Option<u64>,
    /// The outage for which a fallback that cannot start was already reported.
    #[serde(skip)]
    fallback_error_sent_for: Option<u64>,
    /// The latest time the agent told the state ([`AgentState::at`]), for rules applied
    /// between ticks.
    #[serde(skip)]
    last_tick_ms: u64,
    /// Mic state asked of the engine and not yet confirmed.
    #[serde(skip)]
    mic_wanted: Option<bool>,
    /// Camera state asked of the engine and not yet confirmed.
    #[serde(skip)]
    webcam_wanted: Option<bool>,
    #[serde(skip)]
    room_defaults: RoomDefaults,
    #[serde(skip)]
    room_backend: bool,
    /// `[transcription]`.
    #[serde(skip)]
    transcription_setup: transcription::TranscriptionSetup,
    /// Segments the running local recording closed (for `post_on_stop`).
    #[serde(skip)]
    recording_files: Vec<String>,
}

/// The `[room]` settings a join falls back on.
#[derive(Debug, Clone, PartialEq, Default)]
struct RoomDefaults {
    room_id: String,
    display_name: String,
    mic: bool,
    webcam: bool,
    mode: Mode,
    auto_join: bool,
}

/// Something the agent loop must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the media engine.
    Media(MediaAction),
    /// Ask the room session.
    Room(RoomAction),
    /// Ask the live transcriber.
    Transcription(crate::transcribe::live::TranscriptionAction),
    /// Broadcast an event.
    Emit(Event),
    /// Re-read the configuration from disk and apply it.
    ReloadConfig,
    /// Drain and exit.
    Shutdown,
}

/// The outcome of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The reply to whoever sent the command.
    pub reply: Result<serde_json::Value, CommandError>,
    /// What to do.
    pub effects: Vec<Effect>,
}

impl Step {
    fn ok(effects: Vec<Effect>) -> Step {
        Step {
            reply: Ok(serde_json::json!({"ok": true})),
            effects,
        }
    }
    fn err(code: ErrorCode, message: impl Into<String>) -> Step {
        Step {
            reply: Err(CommandError::new(code, message)),
            effects: Vec::new(),
        }
    }
}

impl AgentState {
    /// The state at start-up for a configuration.
    pub fn new(config: &Config, device_id: String) -> AgentState {
        let mut s = AgentState {
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
            fleet: None,
            viewers: Viewers::default(),
            fleet_configured: false,
            bitrate_bounds: (0, 0),
            has_audio: false,
            has_video: false,
            recording_autostart: false,
            recorder: None,
            hls_spec: None,
            hls_autostart: false,
            http_base: None,
            livestream_setup: LivestreamSetup::default(),
            room_lost_since_ms: None,
            fallback_error_sent_for: None,
            last_tick_ms: 0,
            room_defaults: RoomDefaults::default(),
            room_backend: false,
            mic_wanted: None,
            webcam_wanted: None,
            transcription_setup: Default::default(),
            recording_files: Vec::new(),
        };
        let _ = s.configure(config);
        s.refresh_health();
        s
    }

    /// Takes in the parts of a (re)loaded configuration that the state keeps. A running
    /// recording whose settings changed is restarted with the new ones (the effects returned).
    pub fn configure(&mut self, config: &Config) -> Vec<Effect> {
        let v = &config.media.video;
        self.device_name = config.device.name.clone();
        self.local_participant.display_name = config.device.name.clone();
        self.media.video_source = serde_plain(&v.source);
        self.media.audio_source = serde_plain(&config.media.audio.source);
        self.media.resolution = format!("{}x{}@{}", v.width, v.height, v.fps);
        self.media.bitrate_kbps = v.bitrate_kbps;
        if self.media.quality_limitation != "cpu" {
            self.media.quality_limitation = "none".into();
            self.media.target_fps = v.fps;
        }
        self.bitrate_bounds = (v.min_bitrate_kbps, v.max_bitrate_kbps);
        self.has_video = v.source != VideoSource::None;
        self.has_audio = config.media.audio.source != AudioSource::None;
        self.recording.dir = config.recording_dir().display().to_string();
        self.recording_autostart = config.recording.autostart;
        let recorder = RecorderSpec {
            config: config.recording.clone(),
            dir: config.recording_dir(),
        };
        self.configure_hls(config);
        self.configure_transcription(config);
        let mut fx = Vec::new();
        if self.recording.state.is_active() && self.recorder.as_ref() != Some(&recorder) {
            fx.push(Effect::Media(MediaAction::Attach {
                id: RECORDER_ID.into(),
                spec: ConsumerSpec::Recorder(recorder.clone()),
            }));
        }
        self.recorder = Some(recorder);
        let r = &config.room;
        self.room_defaults = RoomDefaults {
            room_id: r.room_id.clone(),
            display_name: r.display_name_or(&config.device.name).to_string(),
            mic: r.mic,
            webcam: r.webcam,
            mode: r.mode,
            auto_join: r.auto_join,
        };
        self.fleet_configured = config.fleet.enabled();
        if !self.fleet_configured {
            self.fleet = None;
        }
        fx
    }

    /// Tells the state the time, before an input that carries none (a room notice), so the rules
    /// that count time start from when things happened, not from the last tick.
    pub fn at(&mut self, now_ms: u64) {
        self.last_tick_ms = self.last_tick_ms.max(now_ms);
    }

    /// Takes the `[livestream]` settings, with stream key files already read by the agent.
    pub fn set_livestream(&mut self, setup: LivestreamSetup) {
        self.livestream.fallback.output = setup.fallback.as_ref().map(|(n, _, _)| n.clone());
        self.livestream_setup = setup;
    }

    /// Tells the state a room session runs (room commands are refused without one).
    pub fn set_room_backend(&mut self, present: bool) {
        self.room_backend = present;
    }

    /// Effects to run once at start-up.
    pub fn start(&mut self) -> Vec<Effect> {
        self.media.state = MediaState::Starting;
        let mut fx = vec![
            Effect::Media(MediaAction::Start),
            Effect::Emit(Event::MediaStateChanged {
                state: MediaState::Starting,
                encoder: None,
            }),
        ];
        if self.recording_autostart {
            fx.extend(self.start_local_recording());
        }
        if self.hls_autostart && self.has_video && self.http_base.is_some() {
            fx.extend(self.hls_effects());
        }
        if self.room_backend && self.room_defaults.auto_join {
            fx.extend(self.join(None, None, None, None, None, None));
        }
        fx
    }

    /// Handles one command at time `now_ms`.
    pub fn command(&mut self, cmd: &Command, now_ms: u64) -> Step {
        if self.stopping && !matches!(cmd, Command::GetState | Command::Ping) {
            return Step::err(ErrorCode::InvalidState, "the agent is stopping");
        }
        match cmd {
            Command::Ping => Step {
                reply: Ok(serde_json::json!({"pong": true, "timeMs": now_ms})),
                effects: Vec::new(),
            },
            Command::GetState => Step {
                reply: Ok(serde_json::to_value(&*self).unwrap_or_default()),
                effects: Vec::new(),
            },
            Command::EnableMic => self.set_mic(true),
            Command::DisableMic => self.set_mic(false),
            Command::ToggleMic => self.set_mic(!self.mic_target()),
            Command::EnableWebcam => self.set_webcam(true),
            Command::DisableWebcam => self.set_webcam(false),
            Command::ToggleWebcam => self.set_webcam(!self.webcam_target()),
            Command::StartRecording {
                target: RecordingTarget::Local,
            } => {
                if self.recording.state.is_active() {
                    return Step::err(
                        ErrorCode::InvalidState,
                        format!("local recording is already {:?}", self.recording.state),
                    );
                }
                Step::ok(self.start_local_recording())
            }
            Command::StopRecording {
                target: RecordingTarget::Local,
            } => {
                if !self.recording.state.is_active() {
                    return Step::err(ErrorCode::InvalidState, "local recording is not running");
                }
                self.recording.state = ServiceState::Stopping;
                Step::ok(vec![
                    Effect::Emit(Event::RecordingStateChanged {
                        target: RecordingTarget::Local,
                        state: ServiceState::Stopping,
                        reason: None,
                    }),
                    Effect::Media(MediaAction::Detach {
                        id: RECORDER_ID.into(),
                    }),
                ])
            }
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
                if !self.room_backend =>
            {
                Step::err(
                    ErrorCode::Unavailable,
                    format!("`{cmd}` needs a room backend, and none is configured"),
                )
            }
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
            Command::ToggleJoin if self.room.is_none() => {
                Step::ok(self.join(None, None, None, None, None, None))
            }
            Command::Leave | Command::ToggleJoin => {
                if self.room.is_none() {
                    return Step::err(ErrorCode::InvalidState, "not in a room");
                }
                Step::ok(vec![Effect::Room(RoomAction::Leave)])
            }
            Command::End => {
                if self.meeting_state != MeetingState::Connected {
                    return Step::err(ErrorCode::InvalidState, "not connected to a room");
                }
                Step::ok(vec![Effect::Room(RoomAction::End)])
            }
            Command::SendChat { message, to } => {
                if self.meeting_state != MeetingState::Connected {
                    return Step::err(ErrorCode::InvalidState, "not connected to a room");
                }
                let mut fx = vec![Effect::Room(RoomAction::SendChat {
                    text: message.clone(),
                    to: to.clone(),
                })];
                // Public room chat reaches the viewers too; private messages do not.
                if to.is_none() {
                    fx.push(self.local_chat_to_feed(message, now_ms));
                }
                Step::ok(fx)
            }
            Command::ViewerChat { name, message } => self.viewer_chat(name, message, now_ms),
            Command::AskQuestion { name, text } => self.ask_question(name, text, now_ms),
            Command::AnswerQuestion { id } => {
                self.close_question(*id, crate::model::QuestionOutcome::Answered)
            }
            Command::DismissQuestion { id } => {
                self.close_question(*id, crate::model::QuestionOutcome::Dismissed)
            }
            Command::HideMessage { id } => self.hide_message(*id),
            Command::StartRecording {
                target: RecordingTarget::Cloud,
            } => {
                if self.meeting_state != MeetingState::Connected {
                    return Step::err(ErrorCode::InvalidState, "not connected to a room");
                }
                if self.cloud_recording.is_active() {
                    return Step::err(ErrorCode::InvalidState, "cloud recording is already on");
                }
                self.cloud_recording = ServiceState::Starting;
                Step::ok(vec![
                    cloud_event(ServiceState::Starting, None),
                    Effect::Room(RoomAction::SetCloudRecording(true)),
                ])
            }
            Command::StopRecording {
                target: RecordingTarget::Cloud,
            } => {
                if !self.cloud_recording.is_active() {
                    return Step::err(ErrorCode::InvalidState, "cloud recording is not on");
                }
                self.cloud_recording = ServiceState::Stopping;
                Step::ok(vec![
                    cloud_event(ServiceState::Stopping, None),
                    Effect::Room(RoomAction::SetCloudRecording(false)),
                ])
            }
            Command::StartLivestream { outputs } => match self.livestream_specs(outputs) {
                Ok(specs) => self.start_livestream(specs),
                Err(e) => Step {
                    reply: Err(e),
                    effects: Vec::new(),
                },
            },
            Command::StopLivestream { name } => self.stop_livestream(name.as_deref()),
            Command::StartHls => self.start_hls(),
            Command::StopHls => self.stop_hls(),
            // The agent loop loads the engine and calls `start_transcription`; a state driven
            // without one has no engine to load.
            Command::StartTranscription { .. } => Step::err(
                ErrorCode::Unavailable,
                "no speech engine is attached to this state",
            ),
            Command::StopTranscription => self.stop_transcription(),
            // The agent loop finds the segments on disk and calls `transcribe_recording`.
            Command::TranscribeRecording { .. } => Step::err(
                ErrorCode::Unavailable,
                "no recording directory is attached to this state",
            ),
            Command::RequestKeyframe => {
                if !self.has_video {
                    return Step::err(ErrorCode::Unavailable, "there is no video source");
                }
                Step::ok(vec![Effect::Media(MediaAction::RequestKeyframe)])
            }
            Command::SetBitrate { kbps } => {
                let (lo, hi) = self.bitrate_bounds;
                if *kbps < lo || *kbps > hi {
                    return Step::err(
                        ErrorCode::OutOfRange,
                        format!("kbps: {kbps} is outside the configured {lo}..={hi}"),
                    );
                }
                if !self.has_video {
                    return Step::err(ErrorCode::Unavailable, "there is no video source");
                }
                Step::ok(vec![Effect::Media(MediaAction::SetBitrate(*kbps))])
            }
            Command::Identify { seconds } => {
                self.identify_until_ms = Some(now_ms + u64::from(*seconds) * 1000);
                Step::ok(vec![Effect::Emit(Event::Identify { seconds: *seconds })])
            }
            Command::ReloadConfig => Step::ok(vec![Effect::ReloadConfig]),
            Command::RestartMedia => Step::ok(vec![Effect::Media(MediaAction::Restart)]),
            Command::Restart => {
                self.stopping = true;
                Step::ok(self.drain())
            }
        }
    }

    /// Begins a clean stop: recordings are finalised, then the loop exits.
    pub fn drain(&mut self) -> Vec<Effect> {
        self.stopping = true;
        let mut fx = Vec::new();
        if self.room.is_some() {
            fx.push(Effect::Room(RoomAction::Leave));
        }
        if self.recording.state.is_active() {
            self.recording.state = ServiceState::Stopping;
            fx.push(Effect::Emit(Event::RecordingStateChanged {
                target: RecordingTarget::Local,
                state: ServiceState::Stopping,
                reason: None,
            }));
        }
        if self.transcription.state.is_active() {
            fx.push(Effect::Transcription(
                crate::transcribe::live::TranscriptionAction::Stop,
            ));
        }
        fx.push(Effect::Media(MediaAction::Stop));
        fx.push(Effect::Shutdown);
        fx
    }

    fn start_local_recording(&mut self) -> Vec<Effect> {
        let Some(spec) = self.recorder.clone() else {
            return Vec::new();
        };
        self.recording.state = ServiceState::Starting;
        self.recording.last_error = None;
        self.recording_files.clear();
        vec![
            Effect::Emit(Event::RecordingStateChanged {
                target: RecordingTarget::Local,
                state: ServiceState::Starting,
                reason: None,
            }),
            Effect::Media(MediaAction::Attach {
                id: RECORDER_ID.into(),
                spec: ConsumerSpec::Recorder(spec),
            }),
        ]
    }

    /// What the recorder consumer reported.
    fn recording_notice(&mut self, event: ConsumerEvent) -> Vec<Effect> {
        let mut fx = Vec::new();
        let (state, reason) = match event {
            ConsumerEvent::Started => (ServiceState::Started, None),
            ConsumerEvent::FileClosed { path, bytes } => {
                self.recording.segments_closed += 1;
                self.recording.bytes_closed += bytes;
                self.recording.last_segment = Some(path.clone());
                self.recording_files.push(path.clone());
                fx.push(Effect::Emit(Event::RecordingSegmentClosed { path, bytes }));
                return fx;
            }
            ConsumerEvent::Finished => {
                fx.extend(self.post_on_stop());
                (ServiceState::Stopped, None)
            }
            ConsumerEvent::Failed(e) | ConsumerEvent::Retrying { error: e, .. } => {
                self.recording.last_error = Some(e.to_string());
                (ServiceState::Failed, Some(e.to_string()))
            }
        };
        if self.recording.state != state || state == ServiceState::Failed {
            self.recording.state = state;
            fx.push(Effect::Emit(Event::RecordingStateChanged {
                target: RecordingTarget::Local,
                state,
                reason,
            }));
        }
        fx
    }

    /// What the mic will be once the engine has done what it was last asked.
    fn mic_target(&self) -> bool {
        self.mic_wanted.unwrap_or(self.local_participant.mic_on)
    }

    /// What the camera will be once the engine has done what it was last asked.
    fn webcam_target(&self) -> bool {
        self.webcam_wanted
            .unwrap_or(self.local_participant.webcam_on)
    }

    fn set_mic(&mut self, on: bool) -> Step {
        if !self.has_audio {
            return Step::err(ErrorCode::Unavailable, "there is no audio source");
        }
        if self.mic_target() == on {
            return Step::ok(Vec::new());
        }
        self.mic_wanted = Some(on);
        Step::ok(vec![Effect::Media(MediaAction::SetMicMuted(!on))])
    }

    fn set_webcam(&mut self, on: bool) -> Step {
        if !self.has_video {
            return Step::err(ErrorCode::Unavailable, "there is no video source");
        }
        if self.webcam_target() == on {
            return Step::ok(Vec::new());
        }
        self.webcam_wanted = Some(on);
        Step::ok(vec![Effect::Media(MediaAction::SetCameraEnabled(on))])
    }

    /// Takes in what the media engine reports.
    pub fn media(&mut self, notice: MediaNotice) -> Vec<Effect> {
        let mut fx = Vec::new();
        match notice {
            MediaNotice::State { state, encoder } => {
                if state == MediaState::Restarting {
                    self.media.restarts += 1;
                }
                if self.media.state != state || (encoder.is_some() && self.media.encoder != encoder)
                {
                    self.media.state = state;
                    if encoder.is_some() {
                        self.media.encoder = encoder.clone();
                    }
                    if state == MediaState::Playing {
                        self.media.last_error = None;
                    }
                    fx.push(Effect::Emit(Event::MediaStateChanged { state, encoder }));
                }
            }
            MediaNotice::Stats {
                fps,
                bitrate_kbps,
                encoded_kbps,
                encode_usage,
            } => {
                self.media.fps = fps;
                self.media.bitrate_kbps = bitrate_kbps;
                self.media.encoded_kbps = encoded_kbps;
                self.media.encode_usage = encode_usage;
            }
            MediaNotice::Overload { fps, full_fps, .. } => {
                let reason = if fps < full_fps { "cpu" } else { "none" };
                self.media.target_fps = fps;
                if self.media.quality_limitation != reason || fps < full_fps {
                    self.media.quality_limitation = reason.to_string();
                    fx.push(Effect::Emit(Event::QualityLimitationChanged {
                        reason: reason.to_string(),
                        fps,
                        full_fps,
                    }));
                }
            }
            MediaNotice::MicMuted(muted) => {
                let on = !muted;
                if self.mic_wanted == Some(on) {
                    self.mic_wanted = None;
                }
                if self.local_participant.mic_on != on {
                    self.local_participant.mic_on = on;
                    fx.push(self.local_stream_event(StreamKind::Audio, on));
                }
            }
            MediaNotice::CameraEnabled(on) => {
                if self.webcam_wanted == Some(on) {
                    self.webcam_wanted = None;
                }
                if self.room_backend {
                    // Camera off stops the room's video, not just the picture.
                    fx.push(Effect::Room(RoomAction::SetCamera(on)));
                }
                if self.local_participant.webcam_on != on {
                    self.local_participant.webcam_on = on;
                    fx.push(self.local_stream_event(StreamKind::Video, on));
                }
            }
            MediaNotice::Consumer { id, event } => {
                if id == RECORDER_ID {
                    fx.extend(self.recording_notice(event));
                } else if id == HLS_ID {
                    fx.extend(self.hls_notice(event));
                } else if id == TRANSCRIBER_ID {
                    if let ConsumerEvent::Failed(e) = event {
                        fx.extend(self.transcription_notice(
                            crate::transcribe::live::TranscriptionNotice::Failed(format!(
                                "the microphone's speech tap failed: {e}"
                            )),
                        ));
                    }
                } else if let Some(name) = id.strip_prefix(livestream::RTMP_PREFIX) {
                    fx.extend(self.livestream_notice(name, event));
                }
            }
            MediaNotice::Error(error) => {
                let message = error.to_string();
                self.media.last_error = Some(message.clone());
                fx.push(Effect::Emit(Event::Error {
                    code: "media".into(),
                    message,
                }));
            }
        }
        self.refresh_health();
        fx
    }

    /// Periodic housekeeping at time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.identify_until_ms.is_some_and(|t| t <= now_ms) {
            self.identify_until_ms = None;
        }
        self.last_tick_ms = now_ms;
        let fx = self.fallback_rule(now_ms);
        self.refresh_health();
        fx
    }

    /// True while identify should blink the LEDs.
    pub fn identifying(&self) -> bool {
        self.identify_until_ms.is_some()
    }

    fn local_stream_event(&self, kind: StreamKind, on: bool) -> Effect {
        let participant_id = self.local_participant.participant_id.clone();
        let stream_id = match kind {
            StreamKind::Audio => LOCAL_AUDIO_STREAM,
            _ => LOCAL_VIDEO_STREAM,
        }
        .to_string();
        Effect::Emit(Event::stream(on, participant_id, kind, stream_id))
    }

    fn refresh_health(&mut self) {
        let mut problems = Vec::new();
        if self.media.state != MediaState::Playing {
            problems.push(match &self.media.last_error {
                Some(e) => format!("media {:?}: {e}", self.media.state),
                None => format!("media {:?}", self.media.state),
            });
        }
        if self.room.is_some()
            && matches!(
                self.meeting_state,
                MeetingState::Disconnected | MeetingState::Failed
            )
        {
            problems.push(format!("room {:?}", self.meeting_state));
        }
        for (name, o) in &self.livestream.outputs {
            if o.state == ServiceState::Failed {
                problems.push(format!(
                    "livestream output {name} failed: {}",
                    o.last_error.as_deref().unwrap_or("unknown")
                ));
            }
        }
        if self.hls.state == ServiceState::Failed {
            problems.push(format!(
                "hls failed: {}",
                self.hls.last_error.as_deref().unwrap_or("unknown")
            ));
        }
        if self.recording.state == ServiceState::Failed {
            problems.push(format!(
                "recording failed: {}",
                self.recording.last_error.as_deref().unwrap_or("unknown")
            ));
        }
        if self.transcription.state == ServiceState::Failed {
            problems.push(format!(
                "transcription failed: {}",
                self.transcription
                    .last_error
                    .as_deref()
                    .unwrap_or("unknown")
            ));
        }
        problems.extend(self.fleet_problem());
        self.health = Health {
            ok: problems.is_empty(),
            problems,
        };
    }

    /// A one-line summary for people (the demo's live line, `STATUS=` for systemd).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "media {} {} {} {:.1} fps {} kbps",
            serde_plain(&self.media.state),
            self.media.encoder.as_deref().unwrap_or("-"),
            self.media.resolution,
            self.media.fps,
            self.media.bitrate_kbps
        );
        if self.media.quality_limitation == "cpu" {
            s.push_str(&format!(" (cpu-limited to {} fps)", self.media.target_fps));
        }
        s.push_str(&format!(
            " | mic {} cam {}",
            if self.local_participant.mic_on {
                "on"
            } else {
                "off"
            },
            if self.local_participant.webcam_on {
                "on"
            } else {
                "off"
            },
        ));
        s.push_str(&format!(
            " | rec {:?} {} segments",
            self.recording.state, self.recording.segments_closed
        ));
        if let Some(room) = &self.room {
            s.push_str(&format!(
                " | room {} {:?}",
                room.room_id, self.meeting_state
            ));
        }
        if !self.livestream.outputs.is_empty() {
            let outs: Vec<String> = self
                .livestream
                .outputs
                .iter()
                .map(|(n, o)| format!("{n} {:?}", o.state))
                .collect();
            s.push_str(&format!(" | rtmp {}", outs.join(", ")));
        }
        if self.transcription.state != ServiceState::Stopped {
            s.push_str(&format!(
                " | captions {} {}",
                serde_plain(&self.transcription.state),
                self.transcription.captions
            ));
        }
        if let Some(f) = &self.fleet {
            s.push_str(&format!(" | fleet {}", serde_plain(&f.state)));
        }
        s
    }
}

fn cloud_event(state: ServiceState, reason: Option<String>) -> Effect {
    Effect::Emit(Event::RecordingStateChanged {
        target: RecordingTarget::Cloud,
        state,
        reason,
    })
}

fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub(super) fn state() -> AgentState {
        AgentState::new(&Config::default(), "box1".into())
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

    #[test]
    fn start_starts_media_and_autostarts_recording_when_configured() {
        let mut s = state();
        assert_eq!(s.start()[0], Effect::Media(MediaAction::Start));
        let mut c = Config::default();
        c.recording.autostart = true;
        let mut s = AgentState::new(&c, "b".into());
        assert!(s.start().iter().any(
            |e| matches!(e, Effect::Media(MediaAction::Attach { id, .. }) if id == RECORDER_ID)
        ));
        assert_eq!(s.recording.state, ServiceState::Starting);
    }

    #[test]
    fn mute_is_shown_only_once_the_engine_confirms_it() {
        let mut s = state();
        s.media(MediaNotice::MicMuted(false));
        assert!(s.local_participant.mic_on);
        let step = s.command(&Command::DisableMic, 0);
        assert_eq!(
            step.effects,
            vec![Effect::Media(MediaAction::SetMicMuted(true))]
        );
        assert!(
            s.local_participant.mic_on,
            "must not claim muted before the engine did it"
        );
        let fx = s.media(MediaNotice::MicMuted(true));
        assert!(!s.local_participant.mic_on);
        assert_eq!(emitted(&fx), vec!["stream-disabled"]);
        // Toggle resolves against the confirmed state.
        let step = s.command(&Command::ToggleMic, 0);
        assert_eq!(
            step.effects,
            vec![Effect::Media(MediaAction::SetMicMuted(false))]
        );
    }

    #[test]
    fn a_mute_sent_before_the_unmute_is_confirmed_is_not_lost() {
        let mut s = state();
        s.media(MediaNotice::MicMuted(true));
        let on = s.command(&Command::EnableMic, 0);
        assert_eq!(
            on.effects,
            vec![Effect::Media(MediaAction::SetMicMuted(false))]
        );
        // The engine has not confirmed yet; the user presses mute again.
        let off = s.command(&Command::DisableMic, 0);
        assert_eq!(
            off.effects,
            vec![Effect::Media(MediaAction::SetMicMuted(true))]
        );
        let toggle = s.command(&Command::ToggleMic, 0);
        assert_eq!(
            toggle.effects,
            vec![Effect::Media(MediaAction::SetMicMuted(false))]
        );
        s.media(MediaNotice::MicMuted(false));
        s.media(MediaNotice::MicMuted(true));
        s.media(MediaNotice::MicMuted(false));
        assert!(s.local_participant.mic_on);
    }

    #[test]
    fn repeated_mute_is_a_no_op() {
        let mut s = state();
        let step = s.command(&Command::DisableMic, 0);
        assert!(step.reply.is_ok());
        assert!(step.effects.is_empty());
    }

    #[test]
    fn recording_lifecycle_emits_each_state() {
        let mut s = state();
        let step = s.command(
            &Command::StartRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        assert_eq!(emitted(&step.effects), vec!["recording-state-changed"]);
        assert_eq!(s.recording.state, ServiceState::Starting);
        let again = s.command(
            &Command::StartRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        assert_eq!(again.reply.unwrap_err().code, ErrorCode::InvalidState);
        s.media(MediaNotice::Consumer {
            id: RECORDER_ID.into(),
            event: ConsumerEvent::Started,
        });
        assert_eq!(s.recording.state, ServiceState::Started);
        s.media(MediaNotice::Consumer {
            id: RECORDER_ID.into(),
            event: ConsumerEvent::FileClosed {
                path: "a.mp4".into(),
                bytes: 10,
            },
        });
        assert_eq!(s.recording.segments_closed, 1);
        let stop = s.command(
            &Command::StopRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        assert!(stop.effects.contains(&Effect::Media(MediaAction::Detach {
            id: RECORDER_ID.into()
        })));
        s.media(MediaNotice::Consumer {
            id: RECORDER_ID.into(),
            event: ConsumerEvent::Finished,
        });
        assert_eq!(s.recording.state, ServiceState::Stopped);
    }

    #[test]
    fn a_failed_recording_is_unhealthy_and_can_be_restarted() {
        let mut s = state();
        s.media(MediaNotice::State {
            state: MediaState::Playing,
            encoder: Some("x264enc".into()),
        });
        s.command(
            &Command::StartRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        let fx = s.media(MediaNotice::Consumer {
            id: RECORDER_ID.into(),
            event: ConsumerEvent::Failed(crate::media::MediaError::DiskFull(
                "No space left on device".into(),
            )),
        });
        assert_eq!(emitted(&fx), vec!["recording-state-changed"]);
        assert!(!s.health.ok);
        let again = s.command(
            &Command::StartRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        assert!(again.reply.is_ok());
    }

    #[test]
    fn bitrate_outside_configured_bounds_is_refused_and_changes_nothing() {
        let mut s = state();
        let before = s.clone();
        let step = s.command(&Command::SetBitrate { kbps: 20_000 }, 0);
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::OutOfRange);
        assert_eq!(s, before);
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
        assert!(s.identifying());
        s.tick(2500);
        assert!(s.identifying());
        s.tick(3000);
        assert!(!s.identifying());
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
        s.media(MediaNotice::Consumer {
            id: RECORDER_ID.into(),
            event: ConsumerEvent::Started,
        });
        let fx = s.drain();
        assert_eq!(fx.last(), Some(&Effect::Shutdown));
        assert!(fx.contains(&Effect::Media(MediaAction::Stop)));
        let late = s.command(&Command::EnableMic, 0);
        assert_eq!(late.reply.unwrap_err().code, ErrorCode::InvalidState);
    }

    #[test]
    fn media_restarts_are_counted_and_clear_on_playing() {
        let mut s = state();
        s.media(MediaNotice::Error(crate::media::MediaError::Runtime(
            "camera gone".into(),
        )));
        s.media(MediaNotice::State {
            state: MediaState::Restarting,
            encoder: None,
        });
        assert_eq!(s.media.restarts, 1);
        assert!(!s.health.ok);
        s.media(MediaNotice::State {
            state: MediaState::Playing,
            encoder: Some("x264enc".into()),
        });
        assert!(s.health.ok);
        assert_eq!(s.media.encoder.as_deref(), Some("x264enc"));
    }
}

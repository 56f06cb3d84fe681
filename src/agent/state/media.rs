//! The media half of the state machine: the mic and camera switches, the encoder's keyframe and
//! bitrate, and what the media engine reports — its lifecycle, its stats and overload, and each
//! consumer's reports, handed to the concern that attached it by [`ConsumerId`].
//!
//! A switch is shown only once the engine confirms it: until then the request is pending, and
//! a toggle resolves against what was last asked, so quick presses are never lost.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::config::{AudioSource, Config, VideoSource};
use crate::event::{Event, MediaState};
use crate::media::{ConsumerEvent, ConsumerId, MediaAction, MediaNotice};
use crate::model::StreamKind;
use crate::room::RoomAction;
use crate::transcribe::live::TranscriptionNotice;
use serde::{Deserialize, Serialize};

/// Stream id of the local participant's microphone.
pub const LOCAL_AUDIO_STREAM: &str = "local-audio";
/// Stream id of the local camera.
pub const LOCAL_VIDEO_STREAM: &str = "local-video";

/// What the media pipeline is doing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
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
    /// The box's content share: `none` (not configured), `off`, `starting`, `on`, `stopping`.
    pub share: String,
    /// The mic's processing (echo cancellation and the rest) and the canceller's figures.
    pub audio_processing: Option<crate::media::echo::ProcessingReport>,
    /// The speaker's volume as last set (`set-volume`), 0..=100; none before (as received).
    pub volume: Option<u32>,
}

/// `[media]` as the machine uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct MediaSetup {
    /// The bitrate a command or the room may ask for, kbit/s, lowest and highest.
    pub(super) bitrate_bounds: (u32, u32),
    pub(super) has_audio: bool,
    pub(super) has_video: bool,
}

impl MediaSetup {
    pub(super) fn from_config(config: &Config) -> MediaSetup {
        let v = &config.media.video;
        MediaSetup {
            bitrate_bounds: (v.min_bitrate_kbps, v.max_bitrate_kbps),
            has_audio: config.media.audio.source != AudioSource::None,
            has_video: v.source != VideoSource::None,
        }
    }
}

/// Switches asked of the engine and not yet confirmed.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct MediaPending {
    /// The mic state asked for.
    pub(super) mic: Option<bool>,
    /// The camera state asked for.
    pub(super) webcam: Option<bool>,
}

impl StateMachine {
    /// Takes `[media]`: the setup, and the configured values the status shows.
    pub(super) fn configure_media(&mut self, config: &Config) {
        let v = &config.media.video;
        let m = &mut self.state.media;
        m.video_source = super::render::plain(&v.source);
        m.audio_source = super::render::plain(&config.media.audio.source);
        m.resolution = format!("{}x{}@{}", v.width, v.height, v.fps);
        m.bitrate_kbps = v.bitrate_kbps;
        if m.quality_limitation != "cpu" {
            m.quality_limitation = "none".into();
            m.target_fps = v.fps;
        }
        self.setup.media = MediaSetup::from_config(config);
    }

    /// What the mic will be once the engine has done what it was last asked.
    pub(super) fn mic_target(&self) -> bool {
        self.pending
            .media
            .mic
            .unwrap_or(self.state.local_participant.mic_on)
    }

    /// What the camera will be once the engine has done what it was last asked.
    pub(super) fn webcam_target(&self) -> bool {
        self.pending
            .media
            .webcam
            .unwrap_or(self.state.local_participant.webcam_on)
    }

    pub(super) fn set_mic(&mut self, on: bool) -> Step {
        if !self.setup.media.has_audio {
            return Step::err(ErrorCode::Unavailable, "there is no audio source");
        }
        if self.mic_target() == on {
            return Step::ok(Vec::new());
        }
        self.pending.media.mic = Some(on);
        Step::ok(vec![Effect::Media(MediaAction::SetMicMuted(!on))])
    }

    pub(super) fn set_webcam(&mut self, on: bool) -> Step {
        if !self.setup.media.has_video {
            return Step::err(ErrorCode::Unavailable, "there is no video source");
        }
        if self.webcam_target() == on {
            return Step::ok(Vec::new());
        }
        self.pending.media.webcam = Some(on);
        Step::ok(vec![Effect::Media(MediaAction::SetCameraEnabled(on))])
    }

    pub(super) fn request_keyframe(&mut self) -> Step {
        if !self.setup.media.has_video {
            return Step::err(ErrorCode::Unavailable, "there is no video source");
        }
        Step::ok(vec![Effect::Media(MediaAction::RequestKeyframe)])
    }

    pub(super) fn set_bitrate(&mut self, kbps: u32) -> Step {
        let (lo, hi) = self.setup.media.bitrate_bounds;
        if kbps < lo || kbps > hi {
            return Step::err(
                ErrorCode::OutOfRange,
                format!("kbps: {kbps} is outside the configured {lo}..={hi}"),
            );
        }
        if !self.setup.media.has_video {
            return Step::err(ErrorCode::Unavailable, "there is no video source");
        }
        Step::ok(vec![Effect::Media(MediaAction::SetBitrate(kbps))])
    }

    /// Takes in what the media engine reports.
    pub fn media_notice(&mut self, notice: MediaNotice) -> Vec<Effect> {
        let mut fx = Vec::new();
        match notice {
            MediaNotice::Share(n) => fx.extend(self.share_notice(n)),
            MediaNotice::State { state, encoder } => {
                let m = &mut self.state.media;
                if state == MediaState::Restarting {
                    m.restarts += 1;
                }
                if m.state != state || (encoder.is_some() && m.encoder != encoder) {
                    m.state = state;
                    if encoder.is_some() {
                        m.encoder = encoder.clone();
                    }
                    if state == MediaState::Playing {
                        m.last_error = None;
                    }
                    fx.push(Effect::Emit(Event::MediaStateChanged { state, encoder }));
                }
            }
            MediaNotice::Stats {
                fps,
                bitrate_kbps,
                encoded_kbps,
                encode_usage,
                processing,
            } => {
                let m = &mut self.state.media;
                m.audio_processing = processing;
                m.fps = fps;
                m.bitrate_kbps = bitrate_kbps;
                m.encoded_kbps = encoded_kbps;
                m.encode_usage = encode_usage;
            }
            MediaNotice::Overload { fps, full_fps, .. } => {
                let m = &mut self.state.media;
                let reason = if fps < full_fps { "cpu" } else { "none" };
                m.target_fps = fps;
                if m.quality_limitation != reason || fps < full_fps {
                    m.quality_limitation = reason.to_string();
                    fx.push(Effect::Emit(Event::QualityLimitationChanged {
                        reason: reason.to_string(),
                        fps,
                        full_fps,
                    }));
                }
            }
            MediaNotice::MicMuted(muted) => {
                let on = !muted;
                if self.pending.media.mic == Some(on) {
                    self.pending.media.mic = None;
                }
                if self.state.local_participant.mic_on != on {
                    self.state.local_participant.mic_on = on;
                    fx.push(self.local_stream_event(StreamKind::Audio, on));
                }
            }
            MediaNotice::CameraEnabled(on) => {
                if self.pending.media.webcam == Some(on) {
                    self.pending.media.webcam = None;
                }
                if self.setup.room_backend {
                    // Camera off stops the room's video, not just the picture.
                    fx.push(Effect::Room(RoomAction::SetCamera(on)));
                }
                if self.state.local_participant.webcam_on != on {
                    self.state.local_participant.webcam_on = on;
                    fx.push(self.local_stream_event(StreamKind::Video, on));
                }
            }
            MediaNotice::Consumer { id, event } => fx.extend(self.consumer_notice(id, event)),
            MediaNotice::Error(error) => {
                let message = error.to_string();
                self.state.media.last_error = Some(message.clone());
                fx.push(Effect::Emit(Event::Error {
                    code: "media".into(),
                    message,
                }));
            }
        }
        self.refresh_health();
        fx
    }

    /// A consumer's report, to the concern that attached it.
    fn consumer_notice(&mut self, id: ConsumerId, event: ConsumerEvent) -> Vec<Effect> {
        match id {
            ConsumerId::Recorder => self.recording_notice(event),
            ConsumerId::Hls => self.hls_notice(event),
            ConsumerId::Rtmp(name) => self.livestream_notice(&name, event),
            ConsumerId::Transcriber => match event {
                ConsumerEvent::Failed(e) => self.transcription_notice(TranscriptionNotice::Failed(
                    format!("the microphone's speech tap failed: {e}"),
                )),
                _ => Vec::new(),
            },
            // The room session hears about its tap from its own tracks.
            ConsumerId::RoomTap => Vec::new(),
        }
    }

    fn local_stream_event(&self, kind: StreamKind, on: bool) -> Effect {
        let participant_id = self.state.local_participant.participant_id.clone();
        let stream_id = match kind {
            StreamKind::Audio => LOCAL_AUDIO_STREAM,
            _ => LOCAL_VIDEO_STREAM,
        }
        .to_string();
        Effect::Emit(Event::stream(on, participant_id, kind, stream_id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use crate::command::Command;

    #[test]
    fn mute_is_shown_only_once_the_engine_confirms_it() {
        let mut s = state();
        s.media_notice(MediaNotice::MicMuted(false));
        assert!(s.state().local_participant.mic_on);
        let step = s.command(&Command::DisableMic, 0);
        assert_eq!(
            step.effects,
            vec![Effect::Media(MediaAction::SetMicMuted(true))]
        );
        assert!(
            s.state().local_participant.mic_on,
            "must not claim muted before the engine did it"
        );
        let fx = s.media_notice(MediaNotice::MicMuted(true));
        assert!(!s.state().local_participant.mic_on);
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
        s.media_notice(MediaNotice::MicMuted(true));
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
        s.media_notice(MediaNotice::MicMuted(false));
        s.media_notice(MediaNotice::MicMuted(true));
        s.media_notice(MediaNotice::MicMuted(false));
        assert!(s.state().local_participant.mic_on);
    }

    #[test]
    fn repeated_mute_is_a_no_op() {
        let mut s = state();
        let step = s.command(&Command::DisableMic, 0);
        assert!(step.reply.is_ok());
        assert!(step.effects.is_empty());
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
    fn set_volume_goes_to_the_speaker_and_the_cancellers_figures_reach_the_state() {
        let mut s = state();
        let step = s.command(&Command::SetVolume { percent: 60 }, 0);
        assert!(step.reply.is_ok());
        assert_eq!(
            step.effects,
            vec![Effect::Media(MediaAction::SetSpeakerVolume(60))]
        );
        assert_eq!(s.state.media.volume, Some(60), "the console shows it");
        let report = crate::media::echo::ProcessingReport {
            canceller: "aec3".into(),
            rate: 48_000,
            echo_cancel: true,
            echo_return_loss_enhancement: Some(31.5),
            ..Default::default()
        };
        s.media_notice(MediaNotice::Stats {
            fps: 30.0,
            bitrate_kbps: 2500,
            encoded_kbps: 2400,
            encode_usage: 0.3,
            processing: Some(report.clone()),
        });
        assert_eq!(s.state.media.audio_processing, Some(report));
        let json = serde_json::to_value(&s.state.media).unwrap();
        assert_eq!(
            json["audioProcessing"]["echoReturnLossEnhancement"],
            serde_json::json!(31.5)
        );
    }

    #[test]
    fn without_a_camera_video_commands_are_unavailable() {
        let mut c = Config::default();
        c.media.video.source = VideoSource::None;
        let mut s = StateMachine::new(&c, "b".into());
        for cmd in [
            Command::EnableWebcam,
            Command::RequestKeyframe,
            Command::SetBitrate { kbps: 1000 },
        ] {
            assert_eq!(
                s.command(&cmd, 0).reply.unwrap_err().code,
                ErrorCode::Unavailable,
                "{cmd}"
            );
        }
    }

    #[test]
    fn media_restarts_are_counted_and_clear_on_playing() {
        let mut s = state();
        s.media_notice(MediaNotice::Error(crate::media::MediaError::Runtime(
            "camera gone".into(),
        )));
        s.media_notice(MediaNotice::State {
            state: MediaState::Restarting,
            encoder: None,
        });
        assert_eq!(s.state().media.restarts, 1);
        assert!(!s.state().health.ok);
        s.media_notice(MediaNotice::State {
            state: MediaState::Playing,
            encoder: Some("x264enc".into()),
        });
        assert!(s.state().health.ok);
        assert_eq!(s.state().media.encoder.as_deref(), Some("x264enc"));
    }

    #[test]
    fn overload_is_shown_and_reported_until_the_full_rate_is_back() {
        let mut s = state();
        let fx = s.media_notice(MediaNotice::Overload {
            fps: 15,
            full_fps: 30,
            usage: 1.2,
        });
        assert_eq!(emitted(&fx), vec!["quality-limitation-changed"]);
        assert_eq!(s.state().media.quality_limitation, "cpu");
        assert_eq!(s.state().media.target_fps, 15);
        s.media_notice(MediaNotice::Overload {
            fps: 30,
            full_fps: 30,
            usage: 0.5,
        });
        assert_eq!(s.state().media.quality_limitation, "none");
        assert!(s
            .media_notice(MediaNotice::Overload {
                fps: 30,
                full_fps: 30,
                usage: 0.5,
            })
            .is_empty());
    }

    #[test]
    fn a_failed_transcriber_tap_fails_transcription() {
        let mut s = state();
        s.start_transcription("en".into(), "e".into());
        s.media_notice(MediaNotice::Consumer {
            id: ConsumerId::Transcriber,
            event: ConsumerEvent::Failed(crate::media::MediaError::Runtime("x".into())),
        });
        assert_eq!(
            s.state().transcription.state,
            crate::model::ServiceState::Failed
        );
    }
}

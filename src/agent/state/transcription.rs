//! The transcription half of the state machine: `start-transcription`, `stop-transcription`,
//! and what the live transcriber reports (captions, drops, failures), plus the progress of
//! recordings being transcribed.
//!
//! Loading the engine is I/O (a 75 MB model), so the agent loop does it between
//! [`AgentState::transcription_precheck`] and [`AgentState::start_transcription`]: a model that
//! is missing or corrupt, or a language the model does not know, is an error reply and the state
//! never moved.

use super::{AgentState, Effect, Step};
use crate::command::{CommandError, ErrorCode};
use crate::config::language_code;
use crate::event::Event;
use crate::model::{MeetingState, ServiceState};
use crate::room::RoomAction;
use crate::transcribe::live::{TranscriptionAction, TranscriptionNotice};
use crate::transcribe::transcript::Caption;
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Consumer id of the local mic's speech tap.
pub const TRANSCRIBER_ID: &str = "transcriber";

/// Realtime transcription, as `/api/state` and `roombox status` show it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptionStatus {
    /// Lifecycle.
    pub state: ServiceState,
    /// The language transcribed (`en`), while it runs.
    pub language: Option<String>,
    /// The engine and model (`whisper.cpp tiny.en`), while it runs.
    pub engine: Option<String>,
    /// The running transcript's WebVTT file name (served under `/transcripts/`).
    pub transcript: Option<String>,
    /// Where the HTTP server serves it, when it runs.
    pub transcript_url: Option<String>,
    /// Captions made in this session.
    pub captions: u64,
    /// Audio dropped untranscribed in this session, ms (the engine fell behind).
    pub dropped_ms: u64,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Recordings being transcribed (`transcribe-recording`), by first segment.
    pub recordings: Vec<String>,
}

/// `[transcription]` as the state uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct TranscriptionSetup {
    pub(super) autostart: bool,
    pub(super) relay_to_chat: bool,
    pub(super) post_on_stop: bool,
    pub(super) language: String,
    /// A session was told to stop and has not said `Stopped` yet: that `Stopped` belongs to it,
    /// not to a session started since (after a failure, a new one may start at once).
    pub(super) draining: bool,
}

impl AgentState {
    /// Checks a `start-transcription` before the engine is loaded; returns the language to
    /// load (the primary subtag: `en-US` is `en`).
    pub fn transcription_precheck(&self, language: Option<&str>) -> Result<String, CommandError> {
        if self.transcription.state.is_active()
            || self.transcription.state == ServiceState::Stopping
        {
            return Err(CommandError::new(
                ErrorCode::InvalidState,
                format!(
                    "transcription is already {}",
                    super::serde_plain(&self.transcription.state)
                ),
            ));
        }
        if !self.has_audio && !self.room_backend {
            return Err(CommandError::new(
                ErrorCode::Unavailable,
                "there is nothing to transcribe: no microphone and no room backend",
            ));
        }
        let tag = language.unwrap_or(&self.transcription_setup.language);
        language_code(tag).ok_or_else(|| {
            CommandError::new(
                ErrorCode::OutOfRange,
                format!("language: `{tag}` is not a language tag like en or en-US"),
            )
        })
    }

    /// `[transcription] autostart`.
    pub fn transcription_autostart(&self) -> bool {
        self.transcription_setup.autostart
    }

    /// `[transcription] post_on_stop`.
    pub fn transcription_post_on_stop(&self) -> bool {
        self.transcription_setup.post_on_stop
    }

    /// Starts transcription once the engine (`engine`) loaded for `language`.
    pub fn start_transcription(&mut self, language: String, engine: String) -> Step {
        self.transcription = TranscriptionStatus {
            state: ServiceState::Starting,
            language: Some(language.clone()),
            engine: Some(engine),
            recordings: std::mem::take(&mut self.transcription.recordings),
            ..Default::default()
        };
        Step::ok(vec![
            Effect::Emit(Event::TranscriptionStateChanged {
                state: ServiceState::Starting,
                language: Some(language.clone()),
                reason: None,
            }),
            Effect::Transcription(TranscriptionAction::Start {
                language,
                local_id: self.local_participant.participant_id.clone(),
                mic: self.has_audio,
            }),
        ])
    }

    pub(super) fn stop_transcription(&mut self) -> Step {
        if !self.transcription.state.is_active() {
            return Step::err(ErrorCode::InvalidState, "transcription is not running");
        }
        self.transcription.state = ServiceState::Stopping;
        self.transcription_setup.draining = true;
        Step::ok(vec![
            Effect::Emit(Event::TranscriptionStateChanged {
                state: ServiceState::Stopping,
                language: None,
                reason: None,
            }),
            Effect::Transcription(TranscriptionAction::Stop),
        ])
    }

    /// Whether the local mic's audio may be transcribed now: on, and not being muted. The gate
    /// shuts as soon as a mute is asked, before the engine confirms it.
    pub fn mic_may_be_transcribed(&self) -> bool {
        self.local_participant.mic_on && self.mic_wanted != Some(false)
    }

    fn display_name(&self, participant_id: &str) -> String {
        if participant_id == self.local_participant.participant_id {
            return self.local_participant.display_name.clone();
        }
        self.participants
            .get(participant_id)
            .map(|p| p.display_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| participant_id.to_string())
    }

    /// Takes in what the transcriber reports.
    pub fn transcription_notice(&mut self, notice: TranscriptionNotice) -> Vec<Effect> {
        let mut fx = Vec::new();
        match notice {
            TranscriptionNotice::Started { transcript } => {
                if self.transcription.state != ServiceState::Starting {
                    return fx;
                }
                self.transcription.state = ServiceState::Started;
                self.transcription.transcript_url = match (&self.http_base, &transcript) {
                    (Some(base), Some(name)) => Some(format!("{base}/transcripts/{name}")),
                    _ => None,
                };
                self.transcription.transcript = transcript;
                fx.push(Effect::Emit(Event::TranscriptionStateChanged {
                    state: ServiceState::Started,
                    language: self.transcription.language.clone(),
                    reason: None,
                }));
            }
            TranscriptionNotice::Text {
                participant_id,
                started_at,
                offset,
                duration,
                text,
            } => {
                if !self.transcription.state.is_active() || text.trim().is_empty() {
                    return fx;
                }
                let start_ms = ms_since_epoch(started_at);
                let caption = Caption {
                    participant_name: self.display_name(&participant_id),
                    participant_id,
                    text: text.trim().to_string(),
                    start_ms,
                    end_ms: start_ms + duration.as_millis() as u64,
                    meeting_start_ms: offset.as_millis() as u64,
                    meeting_end_ms: (offset + duration).as_millis() as u64,
                };
                self.transcription.captions += 1;
                fx.push(Effect::Emit(Event::TranscriptionText {
                    participant_id: Some(caption.participant_id.clone()),
                    participant_name: caption.participant_name.clone(),
                    text: caption.text.clone(),
                    timestamp_ms: self.last_tick_ms.max(caption.end_ms),
                    start_ms: caption.start_ms,
                    end_ms: caption.end_ms,
                    meeting_start_ms: caption.meeting_start_ms,
                    meeting_end_ms: caption.meeting_end_ms,
                    is_final: true,
                }));
                if self.transcription_setup.relay_to_chat
                    && self.meeting_state == MeetingState::Connected
                {
                    fx.push(Effect::Room(RoomAction::SendChat {
                        text: format!("[{}] {}", caption.participant_name, caption.text),
                        to: None,
                    }));
                }
                fx.push(Effect::Transcription(TranscriptionAction::Append(caption)));
            }
            TranscriptionNotice::Dropped {
                participant_id,
                audio,
            } => {
                let audio_ms = audio.as_millis() as u64;
                self.transcription.dropped_ms += audio_ms;
                fx.push(Effect::Emit(Event::TranscriptionDropped {
                    participant_id,
                    audio_ms,
                }));
            }
            TranscriptionNotice::Failed(reason) => {
                if self.transcription.state == ServiceState::Stopped {
                    return fx;
                }
                self.transcription.state = ServiceState::Failed;
                self.transcription.last_error = Some(reason.clone());
                self.transcription_setup.draining = true;
                fx.push(Effect::Emit(Event::TranscriptionStateChanged {
                    state: ServiceState::Failed,
                    language: None,
                    reason: Some(reason),
                }));
                fx.push(Effect::Transcription(TranscriptionAction::Stop));
            }
            TranscriptionNotice::Error(message) => {
                fx.push(Effect::Emit(Event::Error {
                    code: "transcription".into(),
                    message,
                }));
            }
            TranscriptionNotice::Stopped => {
                let ours = std::mem::take(&mut self.transcription_setup.draining);
                if self.transcription.state == ServiceState::Failed
                    || (ours && self.transcription.state.is_active())
                {
                    // FAILED keeps its reason; a session started since is not the one that
                    // stopped.
                    return fx;
                }
                self.transcription.state = ServiceState::Stopped;
                self.transcription.language = None;
                self.transcription.engine = None;
                fx.push(Effect::Emit(Event::TranscriptionStateChanged {
                    state: ServiceState::Stopped,
                    language: None,
                    reason: None,
                }));
            }
            TranscriptionNotice::Progress {
                recording,
                done,
                total,
                state,
                vtt,
                srt,
                reason,
            } => {
                let list = &mut self.transcription.recordings;
                if state.is_active() {
                    if !list.contains(&recording) {
                        list.push(recording.clone());
                    }
                } else {
                    list.retain(|r| r != &recording);
                }
                fx.push(Effect::Emit(Event::TranscriptionProgress {
                    recording,
                    done_ms: done.as_millis() as u64,
                    total_ms: total.as_millis() as u64,
                    state,
                    vtt,
                    srt,
                    reason,
                }));
            }
        }
        fx
    }

    /// `transcribe-recording` for the segments the agent found: queued, and listed in the reply.
    pub fn transcribe_recording(&mut self, segments: Vec<std::path::PathBuf>) -> Step {
        let names: Vec<String> = segments
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Step {
            reply: Ok(serde_json::json!({ "ok": true, "segments": names })),
            effects: vec![Effect::Transcription(TranscriptionAction::TranscribeFiles(
                segments,
            ))],
        }
    }

    /// With `post_on_stop`, the segments a recording closed are transcribed once it stops.
    pub(super) fn post_on_stop(&mut self) -> Vec<Effect> {
        let files = std::mem::take(&mut self.recording_files);
        if !self.transcription_setup.post_on_stop || files.is_empty() {
            return Vec::new();
        }
        vec![Effect::Transcription(TranscriptionAction::TranscribeFiles(
            files.into_iter().map(std::path::PathBuf::from).collect(),
        ))]
    }

    /// Takes `[transcription]`.
    pub(super) fn configure_transcription(&mut self, config: &crate::config::Config) {
        let t = &config.transcription;
        self.transcription_setup = TranscriptionSetup {
            autostart: t.autostart,
            relay_to_chat: t.relay_to_chat,
            post_on_stop: t.post_on_stop,
            language: t.language.clone(),
            draining: self.transcription_setup.draining,
        };
    }
}

fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use crate::command::Command;
    use crate::media::MediaNotice;

    fn text(who: &str, words: &str) -> TranscriptionNotice {
        TranscriptionNotice::Text {
            participant_id: who.into(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000),
            offset: Duration::from_millis(2_000),
            duration: Duration::from_millis(1_500),
            text: words.into(),
        }
    }

    #[test]
    fn bad_language_and_double_start_are_refused_without_a_change() {
        let mut s = state();
        assert_eq!(s.transcription_precheck(None).unwrap(), "en");
        assert_eq!(s.transcription_precheck(Some("en-US")).unwrap(), "en");
        let e = s.transcription_precheck(Some("klingon!")).unwrap_err();
        assert_eq!(e.code, ErrorCode::OutOfRange);
        assert_eq!(s.transcription.state, ServiceState::Stopped);
        s.start_transcription("en".into(), "whisper.cpp tiny.en".into());
        assert_eq!(
            s.transcription_precheck(None).unwrap_err().code,
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn a_session_goes_starting_started_stopping_stopped() {
        let mut s = state();
        let step = s.start_transcription("en".into(), "e".into());
        assert_eq!(emitted(&step.effects), vec!["transcription-state-changed"]);
        assert_eq!(s.transcription.state, ServiceState::Starting);
        s.transcription_notice(TranscriptionNotice::Started {
            transcript: Some("t.vtt".into()),
        });
        assert_eq!(s.transcription.state, ServiceState::Started);
        let step = s.command(&Command::StopTranscription, 0);
        assert!(step.reply.is_ok());
        assert!(step
            .effects
            .contains(&Effect::Transcription(TranscriptionAction::Stop)));
        assert_eq!(s.transcription.state, ServiceState::Stopping);
        s.transcription_notice(TranscriptionNotice::Stopped);
        assert_eq!(s.transcription.state, ServiceState::Stopped);
        assert_eq!(
            s.command(&Command::StopTranscription, 0)
                .reply
                .unwrap_err()
                .code,
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn captions_are_attributed_written_and_relayed_when_asked() {
        let mut s = state();
        s.transcription_setup.relay_to_chat = true;
        s.start_transcription("en".into(), "e".into());
        let fx = s.transcription_notice(text("box1", " hello world "));
        let Effect::Emit(Event::TranscriptionText {
            participant_id,
            participant_name,
            text: t,
            start_ms,
            end_ms,
            meeting_start_ms,
            meeting_end_ms,
            is_final,
            ..
        }) = &fx[0]
        else {
            panic!("{fx:?}")
        };
        assert_eq!(participant_id.as_deref(), Some("box1"));
        assert_eq!(participant_name, "roombox");
        assert_eq!(t, "hello world");
        assert_eq!((*start_ms, *end_ms), (1_000_000, 1_001_500));
        assert_eq!((*meeting_start_ms, *meeting_end_ms), (2_000, 3_500));
        assert!(is_final);
        // Not in a room: nothing goes to chat, but the transcript gets it.
        assert!(!fx.iter().any(|e| matches!(e, Effect::Room(_))));
        assert!(matches!(
            fx.last(),
            Some(Effect::Transcription(TranscriptionAction::Append(_)))
        ));
        s.meeting_state = MeetingState::Connected;
        let fx = s.transcription_notice(text("someone", "hi"));
        assert!(fx.contains(&Effect::Room(RoomAction::SendChat {
            text: "[someone] hi".into(),
            to: None
        })));
        assert_eq!(s.transcription.captions, 2);
        // Empty text is no caption.
        assert!(s.transcription_notice(text("box1", "  ")).is_empty());
    }

    #[test]
    fn drops_and_failures_are_reported() {
        let mut s = state();
        s.start_transcription("en".into(), "e".into());
        let fx = s.transcription_notice(TranscriptionNotice::Dropped {
            participant_id: "box1".into(),
            audio: Duration::from_millis(2_500),
        });
        assert_eq!(emitted(&fx), vec!["transcription-dropped"]);
        assert_eq!(s.transcription.dropped_ms, 2_500);
        let fx = s.transcription_notice(TranscriptionNotice::Failed("boom".into()));
        assert_eq!(s.transcription.state, ServiceState::Failed);
        assert!(fx.contains(&Effect::Transcription(TranscriptionAction::Stop)));
        // The stop that follows a failure leaves it FAILED, with its reason.
        s.transcription_notice(TranscriptionNotice::Stopped);
        assert_eq!(s.transcription.state, ServiceState::Failed);
        assert_eq!(s.transcription.last_error.as_deref(), Some("boom"));
        // And it can start again at once; the failed session's late `Stopped` is not the new
        // session's.
        assert!(s.transcription_precheck(None).is_ok());
        s.start_transcription("en".into(), "e".into());
        s.transcription_notice(TranscriptionNotice::Failed("again".into()));
        s.start_transcription("en".into(), "e".into());
        s.transcription_notice(TranscriptionNotice::Stopped);
        assert_eq!(s.transcription.state, ServiceState::Starting);
    }

    #[test]
    fn post_on_stop_transcribes_the_segments_the_recording_closed() {
        let mut c = crate::config::Config::default();
        c.transcription.post_on_stop = true;
        let mut s = AgentState::new(&c, "b".into());
        assert!(s
            .command(
                &Command::StartRecording {
                    target: crate::model::RecordingTarget::Local
                },
                0
            )
            .reply
            .is_ok());
        let rec = |e| MediaNotice::Consumer {
            id: super::super::RECORDER_ID.into(),
            event: e,
        };
        s.media(rec(crate::media::ConsumerEvent::Started));
        for p in ["/r/a.mkv", "/r/b.mkv"] {
            s.media(rec(crate::media::ConsumerEvent::FileClosed {
                path: p.into(),
                bytes: 1,
            }));
        }
        let fx = s.media(rec(crate::media::ConsumerEvent::Finished));
        assert!(fx.contains(&Effect::Transcription(
            TranscriptionAction::TranscribeFiles(vec!["/r/a.mkv".into(), "/r/b.mkv".into()])
        )));
        // Without post_on_stop, nothing is queued.
        let mut s = state();
        s.media(rec(crate::media::ConsumerEvent::FileClosed {
            path: "/r/a.mkv".into(),
            bytes: 1,
        }));
        let fx = s.media(rec(crate::media::ConsumerEvent::Finished));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Transcription(_))));
    }

    #[test]
    fn a_box_without_a_mic_transcribes_the_room_only() {
        let mut c = crate::config::Config::default();
        c.media.audio.source = crate::config::AudioSource::None;
        let mut s = AgentState::new(&c, "b".into());
        assert_eq!(
            s.transcription_precheck(None).unwrap_err().code,
            ErrorCode::Unavailable,
            "no mic and no room: nothing to transcribe"
        );
        s.set_room_backend(true);
        let step = s.start_transcription("en".into(), "e".into());
        assert!(step
            .effects
            .contains(&Effect::Transcription(TranscriptionAction::Start {
                language: "en".into(),
                local_id: "b".into(),
                mic: false
            })));
    }

    #[test]
    fn the_mic_gate_shuts_as_soon_as_a_mute_is_asked() {
        let mut s = state();
        s.media(MediaNotice::MicMuted(false));
        assert!(s.mic_may_be_transcribed());
        s.command(&Command::DisableMic, 0);
        assert!(!s.mic_may_be_transcribed(), "before the engine confirms");
        s.media(MediaNotice::MicMuted(true));
        assert!(!s.mic_may_be_transcribed());
    }
}

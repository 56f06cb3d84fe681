//! The transcription half of the state machine: `start-transcription`, `stop-transcription`,
//! `transcribe-recording`, and what the live transcriber reports (captions, drops, failures),
//! plus the progress of recordings being transcribed.
//!
//! Loading the engine is I/O (a 75 MB model), so a `start-transcription` that passes the checks
//! here asks the agent loop for it ([`Effect::LoadSpeechEngine`]) and its reply waits: a model
//! that is missing or corrupt, or a language the model does not know, is then an error reply and
//! the state never moved. Finding a recording's segments on disk is asked for the same way
//! ([`Effect::FindSegments`]). Once the transcriber runs, the mic's speech tap is attached like
//! any consumer ([`ConsumerId::Transcriber`]).

use super::{Effect, StateMachine, Step, Token};
use crate::command::ErrorCode;
use crate::config::Config;
use crate::event::Event;
use crate::media::pcm::PcmSender;
use crate::media::{ConsumerId, ConsumerSpec, MediaAction};
use crate::model::{MeetingState, ServiceState};
use crate::room::RoomAction;
use crate::transcribe::live::{TranscriptionAction, TranscriptionNotice};
use crate::transcribe::transcript::Caption;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

mod post;
mod start;

pub use start::EngineLoadFailed;

/// Realtime transcription, as `/api/state` and `roombox status` show it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TranscriptionStatus {
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

/// `[transcription]` as the machine uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct TranscriptionSetup {
    pub(super) autostart: bool,
    pub(super) relay_to_chat: bool,
    pub(super) post_on_stop: bool,
    /// The language tag a `start-transcription` without one uses.
    pub(super) language: String,
}

impl TranscriptionSetup {
    pub(super) fn from_config(config: &Config) -> TranscriptionSetup {
        let t = &config.transcription;
        TranscriptionSetup {
            autostart: t.autostart,
            relay_to_chat: t.relay_to_chat,
            post_on_stop: t.post_on_stop,
            language: t.language.clone(),
        }
    }
}

/// What transcription waits on.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct TranscriptionPending {
    /// A session was told to stop and has not said `Stopped` yet: that `Stopped` belongs to it,
    /// not to a session started since (after a failure, a new one may start at once).
    pub(super) draining: bool,
    /// The engine being loaded for a start.
    pub(super) loading: Option<start::Loading>,
    /// `transcribe-recording`s whose segments are being listed.
    pub(super) finding: BTreeSet<Token>,
}

impl StateMachine {
    /// Starts transcription once the engine (`engine`) loaded for `language`.
    pub(super) fn start_transcription(&mut self, language: String, engine: String) -> Step {
        self.state.transcription = TranscriptionStatus {
            state: ServiceState::Starting,
            language: Some(language.clone()),
            engine: Some(engine),
            recordings: std::mem::take(&mut self.state.transcription.recordings),
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
                local_id: self.state.local_participant.participant_id.clone(),
                mic: self.setup.media.has_audio,
            }),
        ])
    }

    /// The transcriber runs: the mic's speech goes to it. A box without a mic transcribes the
    /// room only (a tap with no feed would fail).
    pub(super) fn transcriber_started(&mut self, pcm: PcmSender) -> Vec<Effect> {
        if !self.setup.media.has_audio || !self.state.transcription.state.is_active() {
            return Vec::new();
        }
        vec![Effect::Media(MediaAction::Attach {
            id: ConsumerId::Transcriber,
            spec: ConsumerSpec::Pcm(pcm),
        })]
    }

    /// Untap the mic, then stop the transcriber.
    pub(super) fn transcription_stop_effects(&mut self) -> Vec<Effect> {
        self.pending.transcription.draining = true;
        vec![
            Effect::Media(MediaAction::Detach {
                id: ConsumerId::Transcriber,
            }),
            Effect::Transcription(TranscriptionAction::Stop),
        ]
    }

    pub(super) fn stop_transcription(&mut self) -> Step {
        if !self.state.transcription.state.is_active() {
            return Step::err(ErrorCode::InvalidState, "transcription is not running");
        }
        self.state.transcription.state = ServiceState::Stopping;
        let mut fx = vec![Effect::Emit(Event::TranscriptionStateChanged {
            state: ServiceState::Stopping,
            language: None,
            reason: None,
        })];
        fx.extend(self.transcription_stop_effects());
        Step::ok(fx)
    }

    /// Whether the local mic's audio may be transcribed now: on, and not being muted. The gate
    /// shuts as soon as a mute is asked, before the engine confirms it.
    pub fn mic_may_be_transcribed(&self) -> bool {
        self.state.local_participant.mic_on && self.pending.media.mic != Some(false)
    }

    fn display_name(&self, participant_id: &str) -> String {
        if participant_id == self.state.local_participant.participant_id {
            return self.state.local_participant.display_name.clone();
        }
        self.state
            .participants
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
                if self.state.transcription.state != ServiceState::Starting {
                    return fx;
                }
                self.state.transcription.state = ServiceState::Started;
                self.state.transcription.transcript_url = match (&self.setup.http_base, &transcript)
                {
                    (Some(base), Some(name)) => Some(format!("{base}/transcripts/{name}")),
                    _ => None,
                };
                self.state.transcription.transcript = transcript;
                fx.push(Effect::Emit(Event::TranscriptionStateChanged {
                    state: ServiceState::Started,
                    language: self.state.transcription.language.clone(),
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
                if !self.state.transcription.state.is_active() || text.trim().is_empty() {
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
                self.state.transcription.captions += 1;
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
                if self.setup.transcription.relay_to_chat
                    && self.state.meeting_state == MeetingState::Connected
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
                self.state.transcription.dropped_ms += audio_ms;
                fx.push(Effect::Emit(Event::TranscriptionDropped {
                    participant_id,
                    audio_ms,
                }));
            }
            TranscriptionNotice::Failed(reason) => {
                if self.state.transcription.state == ServiceState::Stopped {
                    return fx;
                }
                self.state.transcription.state = ServiceState::Failed;
                self.state.transcription.last_error = Some(reason.clone());
                fx.push(Effect::Emit(Event::TranscriptionStateChanged {
                    state: ServiceState::Failed,
                    language: None,
                    reason: Some(reason),
                }));
                fx.extend(self.transcription_stop_effects());
            }
            TranscriptionNotice::Error(message) => {
                fx.push(Effect::Emit(Event::Error {
                    code: "transcription".into(),
                    message,
                }));
            }
            TranscriptionNotice::Stopped => {
                let ours = std::mem::take(&mut self.pending.transcription.draining);
                if self.state.transcription.state == ServiceState::Failed
                    || (ours && self.state.transcription.state.is_active())
                {
                    // FAILED keeps its reason; a session started since is not the one that
                    // stopped.
                    return fx;
                }
                self.state.transcription.state = ServiceState::Stopped;
                self.state.transcription.language = None;
                self.state.transcription.engine = None;
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
                let list = &mut self.state.transcription.recordings;
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
}

fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::IoNotice;
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

    fn pcm() -> PcmSender {
        PcmSender {
            tx: tokio::sync::mpsc::channel(1).0,
            source: "box1".into(),
            gate: Default::default(),
        }
    }

    #[test]
    fn the_mic_tap_is_attached_once_the_transcriber_runs_and_detached_on_stop() {
        let mut s = state();
        assert!(
            s.io_notice(IoNotice::TranscriberStarted(pcm()))
                .effects
                .is_empty(),
            "not running"
        );
        s.start_transcription("en".into(), "e".into());
        let fx = s.io_notice(IoNotice::TranscriberStarted(pcm())).effects;
        assert_eq!(
            fx,
            vec![Effect::Media(MediaAction::Attach {
                id: ConsumerId::Transcriber,
                spec: ConsumerSpec::Pcm(match &fx[0] {
                    Effect::Media(MediaAction::Attach {
                        spec: ConsumerSpec::Pcm(p),
                        ..
                    }) => p.clone(),
                    _ => panic!("{fx:?}"),
                }),
            })]
        );
        let stop = s.command(&Command::StopTranscription, 0);
        let detach = stop.effects.iter().position(|e| {
            *e == Effect::Media(MediaAction::Detach {
                id: ConsumerId::Transcriber,
            })
        });
        let stop_at = stop
            .effects
            .iter()
            .position(|e| *e == Effect::Transcription(TranscriptionAction::Stop));
        assert!(detach.is_some() && detach < stop_at, "{:?}", stop.effects);
    }

    #[test]
    fn a_session_goes_starting_started_stopping_stopped() {
        let mut s = state();
        let step = s.start_transcription("en".into(), "e".into());
        assert_eq!(emitted(&step.effects), vec!["transcription-state-changed"]);
        assert_eq!(s.state().transcription.state, ServiceState::Starting);
        s.transcription_notice(TranscriptionNotice::Started {
            transcript: Some("t.vtt".into()),
        });
        assert_eq!(s.state().transcription.state, ServiceState::Started);
        let step = s.command(&Command::StopTranscription, 0);
        assert!(step.reply.is_ok());
        assert!(step
            .effects
            .contains(&Effect::Transcription(TranscriptionAction::Stop)));
        assert_eq!(s.state().transcription.state, ServiceState::Stopping);
        s.transcription_notice(TranscriptionNotice::Stopped);
        assert_eq!(s.state().transcription.state, ServiceState::Stopped);
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
        s.setup.transcription.relay_to_chat = true;
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
        s.state_mut().meeting_state = MeetingState::Connected;
        let fx = s.transcription_notice(text("someone", "hi"));
        assert!(fx.contains(&Effect::Room(RoomAction::SendChat {
            text: "[someone] hi".into(),
            to: None
        })));
        assert_eq!(s.state().transcription.captions, 2);
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
        assert_eq!(s.state().transcription.dropped_ms, 2_500);
        let fx = s.transcription_notice(TranscriptionNotice::Failed("boom".into()));
        assert_eq!(s.state().transcription.state, ServiceState::Failed);
        assert!(fx.contains(&Effect::Transcription(TranscriptionAction::Stop)));
        // The stop that follows a failure leaves it FAILED, with its reason.
        s.transcription_notice(TranscriptionNotice::Stopped);
        assert_eq!(s.state().transcription.state, ServiceState::Failed);
        assert_eq!(s.state().transcription.last_error.as_deref(), Some("boom"));
        // And it can start again at once; the failed session's late `Stopped` is not the new
        // session's.
        assert!(s.check_start(None).is_ok());
        s.start_transcription("en".into(), "e".into());
        s.transcription_notice(TranscriptionNotice::Failed("again".into()));
        s.start_transcription("en".into(), "e".into());
        s.transcription_notice(TranscriptionNotice::Stopped);
        assert_eq!(s.state().transcription.state, ServiceState::Starting);
    }

    #[test]
    fn a_box_without_a_mic_transcribes_the_room_only() {
        let mut c = crate::config::Config::default();
        c.media.audio.source = crate::config::AudioSource::None;
        let mut s = StateMachine::new(&c, "b".into());
        assert_eq!(
            s.check_start(None).unwrap_err().code,
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
        s.media_notice(MediaNotice::MicMuted(false));
        assert!(s.mic_may_be_transcribed());
        s.command(&Command::DisableMic, 0);
        assert!(!s.mic_may_be_transcribed(), "before the engine confirms");
        s.media_notice(MediaNotice::MicMuted(true));
        assert!(!s.mic_may_be_transcribed());
    }
}

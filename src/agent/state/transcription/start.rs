//! Starting live transcription: `start-transcription` (and `[transcription] autostart`) is
//! checked here, then the agent loop loads the speech engine ([`Effect::LoadSpeechEngine`]) and
//! the command's reply waits for it. A model that is missing or corrupt is Unavailable, a
//! language the model does not know is OutOfRange, and either way the state never moved.

use super::super::{Effect, Reply, StateMachine, Step, Token};
use crate::command::{CommandError, ErrorCode};
use crate::config::language_code;
use crate::event::Event;
use crate::model::ServiceState;
use crate::transcribe::TranscribeError;

/// A start waiting for its engine.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::agent::state) struct Loading {
    token: Token,
    language: String,
    /// Started by `[transcription] autostart`: nobody waits for the reply, so a failure is
    /// said as an event.
    autostart: bool,
}

/// Why the speech engine could not be loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineLoadFailed {
    /// The engine said why (a missing or corrupt model, a language it does not know).
    Engine(TranscribeError),
    /// The loading task itself died.
    Crashed(String),
}

impl StateMachine {
    /// Checks a `start-transcription` before the engine is loaded; returns the language to
    /// load (the primary subtag: `en-US` is `en`).
    pub(in crate::agent::state) fn check_start(
        &self,
        language: Option<&str>,
    ) -> Result<String, CommandError> {
        let t = &self.state.transcription;
        if t.state.is_active() || t.state == ServiceState::Stopping {
            return Err(CommandError::new(
                ErrorCode::InvalidState,
                format!(
                    "transcription is already {}",
                    super::super::render::plain(&t.state)
                ),
            ));
        }
        if self.pending.transcription.loading.is_some() {
            return Err(CommandError::new(
                ErrorCode::InvalidState,
                "transcription is already STARTING (its engine is loading)",
            ));
        }
        if !self.setup.media.has_audio && !self.setup.room_backend {
            return Err(CommandError::new(
                ErrorCode::Unavailable,
                "there is nothing to transcribe: no microphone and no room backend",
            ));
        }
        let tag = language.unwrap_or(&self.setup.transcription.language);
        language_code(tag).ok_or_else(|| {
            CommandError::new(
                ErrorCode::OutOfRange,
                format!("language: `{tag}` is not a language tag like en or en-US"),
            )
        })
    }

    fn load_engine(&mut self, language: String, autostart: bool) -> (Token, Vec<Effect>) {
        let token = self.token();
        self.pending.transcription.loading = Some(Loading {
            token,
            language: language.clone(),
            autostart,
        });
        (token, vec![Effect::LoadSpeechEngine { token, language }])
    }

    /// `start-transcription`: checked now, started once the engine has loaded.
    pub(in crate::agent::state) fn request_transcription(
        &mut self,
        language: Option<&str>,
    ) -> Step {
        match self.check_start(language) {
            Ok(language) => {
                let (token, fx) = self.load_engine(language, false);
                Step::later(token, fx)
            }
            Err(e) => Step::refuse(e),
        }
    }

    /// `[transcription] autostart`: as `start-transcription`, with failures said as events.
    pub(in crate::agent::state) fn autostart_transcription(&mut self) -> Vec<Effect> {
        match self.check_start(None) {
            Ok(language) => self.load_engine(language, true).1,
            Err(e) => vec![autostart_error(&e.message)],
        }
    }

    /// The engine for a start loaded, or could not be.
    pub(in crate::agent::state) fn speech_engine_loaded(
        &mut self,
        token: Token,
        result: Result<String, EngineLoadFailed>,
    ) -> Step {
        let Some(loading) = self
            .pending
            .transcription
            .loading
            .take_if(|l| l.token == token)
        else {
            return Step::err(
                ErrorCode::Internal,
                "no start-transcription waits for an engine",
            );
        };
        let mut step = match result {
            _ if self.state.stopping => Step::err(ErrorCode::InvalidState, "the agent is stopping"),
            Ok(engine) => self.start_transcription(loading.language, engine),
            Err(EngineLoadFailed::Engine(e)) => {
                let code = match e {
                    TranscribeError::Language(_) => ErrorCode::OutOfRange,
                    _ => ErrorCode::Unavailable,
                };
                Step::err(code, e.to_string())
            }
            Err(EngineLoadFailed::Crashed(e)) => {
                Step::err(ErrorCode::Internal, format!("loading the engine: {e}"))
            }
        };
        if loading.autostart {
            if let Reply::Now(Err(e)) = &step.reply {
                step.effects.push(autostart_error(&e.message));
            }
        }
        step
    }
}

fn autostart_error(message: &str) -> Effect {
    Effect::Emit(Event::Error {
        code: "transcription".into(),
        message: format!("[transcription] autostart: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::*;
    use super::super::super::IoNotice;
    use super::*;
    use crate::command::Command;
    use crate::config::Config;

    /// `start-transcription` as the agent loop drives it: the engine loads with `result`.
    fn start(
        s: &mut StateMachine,
        language: Option<&str>,
        result: Result<String, EngineLoadFailed>,
    ) -> Step {
        let step = s.command(
            &Command::StartTranscription {
                language: language.map(str::to_string),
            },
            0,
        );
        let Reply::Later(token) = step.reply else {
            return step;
        };
        assert!(
            matches!(step.effects.as_slice(), [Effect::LoadSpeechEngine { token: t, .. }] if *t == token)
        );
        s.io_notice(IoNotice::SpeechEngineLoaded { token, result })
    }

    #[test]
    fn a_start_waits_for_its_engine_and_then_starts() {
        let mut s = state();
        let before = s.state().clone();
        let step = s.command(
            &Command::StartTranscription {
                language: Some("en-US".into()),
            },
            0,
        );
        let Reply::Later(token) = step.reply else {
            panic!("{step:?}")
        };
        assert_eq!(
            step.effects,
            vec![Effect::LoadSpeechEngine {
                token,
                language: "en".into()
            }]
        );
        assert_eq!(s.state(), &before, "nothing shows before the engine loaded");
        let again = s.command(&Command::StartTranscription { language: None }, 0);
        assert_eq!(again.reply.unwrap_err().code, ErrorCode::InvalidState);
        let step = s.io_notice(IoNotice::SpeechEngineLoaded {
            token,
            result: Ok("whisper.cpp tiny.en".into()),
        });
        assert!(step.reply.is_ok());
        assert_eq!(emitted(&step.effects), vec!["transcription-state-changed"]);
        assert_eq!(s.state().transcription.state, ServiceState::Starting);
        assert_eq!(
            s.state().transcription.engine.as_deref(),
            Some("whisper.cpp tiny.en")
        );
    }

    #[test]
    fn a_load_that_fails_is_an_error_reply_and_changes_nothing() {
        let mut s = state();
        let before = s.clone();
        let missing = EngineLoadFailed::Engine(TranscribeError::Model {
            path: "/m.bin".into(),
            reason: "no such file".into(),
        });
        let step = start(&mut s, None, Err(missing));
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::Unavailable);
        assert!(step.effects.is_empty());
        assert_eq!(s.state(), before.state());
        assert_eq!(s.pending, before.pending);
        let step = start(
            &mut s,
            Some("xx"),
            Err(EngineLoadFailed::Engine(TranscribeError::Language(
                "xx".into(),
            ))),
        );
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::OutOfRange);
        let step = start(
            &mut s,
            None,
            Err(EngineLoadFailed::Crashed("panicked".into())),
        );
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::Internal);
        assert_eq!(s.state(), before.state());
        assert!(start(&mut s, None, Ok("e".into())).reply.is_ok());
    }

    #[test]
    fn an_autostart_that_fails_says_so_as_an_event() {
        let mut c = Config::default();
        c.transcription.autostart = true;
        let mut s = StateMachine::new(&c, "b".into());
        let token = s
            .start()
            .into_iter()
            .find_map(|e| match e {
                Effect::LoadSpeechEngine { token, .. } => Some(token),
                _ => None,
            })
            .unwrap();
        let step = s.io_notice(IoNotice::SpeechEngineLoaded {
            token,
            result: Err(EngineLoadFailed::Engine(TranscribeError::Engine(
                "corrupt".into(),
            ))),
        });
        assert_eq!(emitted(&step.effects), vec!["error"]);
        c.media.audio.source = crate::config::AudioSource::None;
        let mut s = StateMachine::new(&c, "b".into());
        assert_eq!(
            emitted(&s.start()).last().map(String::as_str),
            Some("error")
        );
    }

    #[test]
    fn bad_language_and_double_start_are_refused_without_a_change() {
        let mut s = state();
        assert_eq!(s.check_start(None).unwrap(), "en");
        assert_eq!(s.check_start(Some("en-US")).unwrap(), "en");
        let e = s.check_start(Some("klingon!")).unwrap_err();
        assert_eq!(e.code, ErrorCode::OutOfRange);
        assert_eq!(s.state().transcription.state, ServiceState::Stopped);
        s.start_transcription("en".into(), "whisper.cpp tiny.en".into());
        assert_eq!(
            s.check_start(None).unwrap_err().code,
            ErrorCode::InvalidState
        );
    }
}

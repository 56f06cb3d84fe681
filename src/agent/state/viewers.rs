//! The viewers' half of the state machine: the chat feed viewers of the live stream share with
//! the room, and their questions waiting in the console's queue.
//!
//! Viewers' messages enter as `viewer-chat` and `ask-question` commands (the web server builds
//! them from the viewers' page, through the one decoder); the room's chat joins the feed as it
//! arrives. Each message has an id so the room can hide it (`hide-message`), and each question
//! one so the room can answer or dismiss it.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::event::Event;
use crate::model::{ChatMessage, FeedMessage, FeedSource, MeetingState, Question, QuestionOutcome};
use crate::room::RoomAction;
use std::collections::VecDeque;

/// Messages the feed keeps for pages that open later; older ones are forgotten.
pub const FEED_KEEP: usize = 100;
/// Open questions at most: past this a new one is refused, so a flood cannot grow the state.
pub const MAX_OPEN_QUESTIONS: usize = 100;

/// The viewers' chat and question queue. Not part of the serialized state: chat text does not
/// belong in the fleet's retained state topic; the console reads it from here.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Viewers {
    /// The latest messages, oldest first.
    pub feed: VecDeque<FeedMessage>,
    /// Open questions, oldest first.
    pub questions: Vec<Question>,
    /// Who voted in the current poll (names, trimmed, case ignored).
    pub(super) voters: std::collections::BTreeSet<String>,
    /// The last id given to a message, a question or a poll.
    last_id: u64,
}

impl Viewers {
    pub(super) fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Adds a message to the feed and returns the event that announces it.
    fn push(&mut self, source: FeedSource, name: &str, text: &str, now_ms: u64) -> Effect {
        let message = FeedMessage {
            id: self.next_id(),
            source,
            name: name.to_string(),
            text: text.to_string(),
            timestamp_ms: now_ms,
            hidden: false,
        };
        if self.feed.len() >= FEED_KEEP {
            self.feed.pop_front();
        }
        self.feed.push_back(message.clone());
        Effect::Emit(Event::FeedMessage { message })
    }

    /// The messages viewers may see.
    pub fn visible(&self) -> Vec<FeedMessage> {
        self.feed.iter().filter(|m| !m.hidden).cloned().collect()
    }
}

impl StateMachine {
    /// `viewer-chat`: into the feed, and into the room while the box is connected to one.
    pub(super) fn viewer_chat(&mut self, name: &str, message: &str, now_ms: u64) -> Step {
        let name = name.trim();
        let mut fx = vec![self
            .state
            .viewers
            .push(FeedSource::Viewer, name, message, now_ms)];
        if self.setup.room_backend && self.state.meeting_state == MeetingState::Connected {
            fx.push(Effect::Room(RoomAction::SendChat {
                text: format!("viewer: {name}: {message}"),
                to: None,
            }));
        }
        Step::ok(fx)
    }

    /// `ask-question`: into the queue, up to [`MAX_OPEN_QUESTIONS`].
    pub(super) fn ask_question(&mut self, name: &str, text: &str, now_ms: u64) -> Step {
        if self.state.viewers.questions.len() >= MAX_OPEN_QUESTIONS {
            return Step::err(
                ErrorCode::InvalidState,
                "the question queue is full; try again later",
            );
        }
        let question = Question {
            id: self.state.viewers.next_id(),
            name: name.trim().to_string(),
            text: text.to_string(),
            timestamp_ms: now_ms,
        };
        self.state.viewers.questions.push(question.clone());
        let id = self.state.viewers.last_id;
        Step::reply(
            Ok(serde_json::json!({"ok": true, "id": id})),
            vec![Effect::Emit(Event::QuestionAsked { question })],
        )
    }

    /// `answer-question` and `dismiss-question`.
    pub(super) fn close_question(&mut self, id: u64, outcome: QuestionOutcome) -> Step {
        let Some(i) = self.state.viewers.questions.iter().position(|q| q.id == id) else {
            return Step::err(
                ErrorCode::InvalidArgument,
                format!("id: no open question {id}"),
            );
        };
        self.state.viewers.questions.remove(i);
        Step::ok(vec![Effect::Emit(Event::QuestionClosed { id, outcome })])
    }

    /// `hide-message`.
    pub(super) fn hide_message(&mut self, id: u64) -> Step {
        let Some(m) = self.state.viewers.feed.iter_mut().find(|m| m.id == id) else {
            return Step::err(ErrorCode::InvalidArgument, format!("id: no message {id}"));
        };
        if m.hidden {
            return Step::ok(Vec::new());
        }
        m.hidden = true;
        Step::ok(vec![Effect::Emit(Event::FeedMessageHidden { id })])
    }

    /// A chat message from the room joins the feed.
    pub(super) fn room_chat_to_feed(&mut self, message: &ChatMessage) -> Effect {
        let name = message
            .display_name
            .clone()
            .or_else(|| {
                self.state
                    .participants
                    .get(&message.from)
                    .map(|p| p.display_name.clone())
            })
            .unwrap_or_else(|| message.from.clone());
        self.state
            .viewers
            .push(FeedSource::Room, &name, &message.text, message.timestamp_ms)
    }

    /// The box's own public chat joins the feed once the room session was asked to send it.
    pub(super) fn local_chat_to_feed(&mut self, text: &str, now_ms: u64) -> Effect {
        let name = self.state.local_participant.display_name.clone();
        self.state
            .viewers
            .push(FeedSource::Local, &name, text, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::config::Config;

    fn state() -> StateMachine {
        StateMachine::new(&Config::default(), "box".into())
    }

    fn emitted(fx: &[Effect]) -> Vec<Event> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Emit(ev) => Some(ev.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn viewer_chat_reaches_the_feed_and_the_room_only_while_connected() {
        let mut s = state();
        s.set_room_backend(true);
        let chat = Command::ViewerChat {
            name: " Ana ".into(),
            message: "hello".into(),
        };
        let step = s.command(&chat, 1);
        assert!(step.reply.is_ok());
        assert!(!step.effects.iter().any(|e| matches!(e, Effect::Room(_))));
        s.state_mut().meeting_state = MeetingState::Connected;
        let step = s.command(&chat, 2);
        assert!(step.effects.contains(&Effect::Room(RoomAction::SendChat {
            text: "viewer: Ana: hello".into(),
            to: None
        })));
        let evs = emitted(&step.effects);
        let Event::FeedMessage { message } = &evs[0] else {
            panic!("{evs:?}")
        };
        assert_eq!(
            (message.source, message.name.as_str(), message.id),
            (FeedSource::Viewer, "Ana", 2)
        );
        assert_eq!(s.state().viewers.feed.len(), 2);
    }

    #[test]
    fn questions_queue_until_answered_or_dismissed() {
        let mut s = state();
        for (i, t) in ["why?", "how?"].iter().enumerate() {
            let step = s.command(
                &Command::AskQuestion {
                    name: "Bo".into(),
                    text: t.to_string(),
                },
                i as u64,
            );
            assert_eq!(
                step.reply.result().ok().and_then(|v| v["id"].as_u64()),
                Some(i as u64 + 1)
            );
        }
        assert_eq!(s.state().viewers.questions.len(), 2);
        let step = s.command(&Command::AnswerQuestion { id: 1 }, 5);
        assert_eq!(
            emitted(&step.effects),
            vec![Event::QuestionClosed {
                id: 1,
                outcome: QuestionOutcome::Answered
            }]
        );
        let again = s.command(&Command::DismissQuestion { id: 1 }, 6);
        assert_eq!(
            again.reply.result().map_err(|e| e.code),
            Err(ErrorCode::InvalidArgument)
        );
        assert!(s
            .command(&Command::DismissQuestion { id: 2 }, 7)
            .reply
            .is_ok());
        assert!(s.state().viewers.questions.is_empty());
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut s = state();
        let q = Command::AskQuestion {
            name: "Bo".into(),
            text: "?".into(),
        };
        for _ in 0..MAX_OPEN_QUESTIONS {
            assert!(s.command(&q, 0).reply.is_ok());
        }
        assert_eq!(
            s.command(&q, 0).reply.result().map_err(|e| e.code),
            Err(ErrorCode::InvalidState)
        );
    }

    #[test]
    fn a_hidden_message_leaves_what_viewers_see_and_the_feed_is_bounded() {
        let mut s = state();
        for i in 0..(FEED_KEEP as u64 + 5) {
            s.command(
                &Command::ViewerChat {
                    name: "Ana".into(),
                    message: format!("m{i}"),
                },
                i,
            );
        }
        assert_eq!(s.state().viewers.feed.len(), FEED_KEEP);
        let last = s
            .state()
            .viewers
            .feed
            .back()
            .map(|m| m.id)
            .unwrap_or_default();
        let step = s.command(&Command::HideMessage { id: last }, 0);
        assert_eq!(
            emitted(&step.effects),
            vec![Event::FeedMessageHidden { id: last }]
        );
        assert!(s.state().viewers.visible().iter().all(|m| m.id != last));
        assert_eq!(s.state().viewers.visible().len(), FEED_KEEP - 1);
        assert!(s
            .command(&Command::HideMessage { id: last }, 0)
            .effects
            .is_empty());
        assert!(s
            .command(&Command::HideMessage { id: 1 }, 0)
            .reply
            .result()
            .is_err());
    }
}

//! Live polls: the room (console, control socket, fleet) opens one with `create-poll`, viewers
//! vote from the viewers' page (`vote`, once per name), and `close-poll` ends it: its results
//! become an event, join the viewers' chat and go to the room's chat while the box is in one.
//!
//! One poll at a time: the open one, or the last closed one with its results until the next
//! opens. The poll and its counts are in the shown state; who voted is kept beside the viewers'
//! chat, never serialized.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::event::Event;
use crate::model::{MeetingState, Poll, PollOption};
use crate::room::RoomAction;

/// Votes one poll counts at most: past this a vote is refused, so a flood of names cannot grow
/// the state without bound.
pub const MAX_VOTES: usize = 10_000;

/// The key a voter is known by: the name, trimmed, case ignored.
fn voter(name: &str) -> String {
    name.trim().to_lowercase()
}

impl StateMachine {
    /// `create-poll`: refused while another is open.
    pub(super) fn create_poll(&mut self, question: &str, options: &[String], now_ms: u64) -> Step {
        if let Some(p) = self.state.poll.as_ref().filter(|p| p.open) {
            return Step::err(
                ErrorCode::InvalidState,
                format!("poll {} is open; close it first", p.id),
            );
        }
        let poll = Poll {
            id: self.state.viewers.next_id(),
            question: question.trim().to_string(),
            options: options
                .iter()
                .map(|o| PollOption {
                    text: o.trim().to_string(),
                    votes: 0,
                })
                .collect(),
            open: true,
            created_ms: now_ms,
            closed_ms: None,
        };
        self.state.viewers.voters.clear();
        self.state.poll = Some(poll.clone());
        Step::reply(
            Ok(serde_json::json!({"ok": true, "id": poll.id})),
            vec![Effect::Emit(Event::PollCreated { poll })],
        )
    }

    /// The poll `id` if it is the current one, else a clear error.
    fn poll_mut(&mut self, id: u64) -> Result<&mut Poll, Step> {
        match self.state.poll.as_mut() {
            Some(p) if p.id == id => Ok(p),
            _ => Err(Step::err(
                ErrorCode::InvalidArgument,
                format!("id: no poll {id}"),
            )),
        }
    }

    /// `close-poll`.
    pub(super) fn close_poll(&mut self, id: u64, now_ms: u64) -> Step {
        let poll = match self.poll_mut(id) {
            Ok(p) => p,
            Err(step) => return step,
        };
        if !poll.open {
            return Step::err(
                ErrorCode::InvalidState,
                format!("poll {id} is already closed"),
            );
        }
        poll.open = false;
        poll.closed_ms = Some(now_ms);
        let poll = poll.clone();
        let results = poll.results();
        let mut fx = vec![Effect::Emit(Event::PollClosed { poll })];
        if self.setup.room_backend && self.state.meeting_state == MeetingState::Connected {
            fx.push(Effect::Room(RoomAction::SendChat {
                text: results.clone(),
                to: None,
            }));
        }
        fx.push(self.local_chat_to_feed(&results, now_ms));
        Step::ok(fx)
    }

    /// `vote`: once per name in the open poll.
    pub(super) fn vote(&mut self, poll_id: u64, option: usize, name: &str) -> Step {
        let key = voter(name);
        let voted = self.state.viewers.voters.contains(&key);
        let full = self.state.viewers.voters.len() >= MAX_VOTES;
        let poll = match self.poll_mut(poll_id) {
            Ok(p) => p,
            Err(step) => return step,
        };
        if !poll.open {
            return Step::err(ErrorCode::InvalidState, format!("poll {poll_id} is closed"));
        }
        let last = poll.options.len() - 1;
        let Some(o) = poll.options.get_mut(option) else {
            return Step::err(
                ErrorCode::InvalidArgument,
                format!("option: {option} is not one of poll {poll_id}'s (0 to {last})"),
            );
        };
        if voted {
            return Step::err(
                ErrorCode::InvalidState,
                format!("{} has already voted in poll {poll_id}", name.trim()),
            );
        }
        if full {
            return Step::err(
                ErrorCode::InvalidState,
                format!("poll {poll_id} has counted {MAX_VOTES} votes, its most"),
            );
        }
        o.votes += 1;
        let poll = poll.clone();
        self.state.viewers.voters.insert(key);
        Step::ok(vec![Effect::Emit(Event::PollUpdated { poll })])
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

    fn create(s: &mut StateMachine, question: &str, options: &[&str]) -> Step {
        let cmd = Command::CreatePoll {
            question: question.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        s.command(&cmd, 10)
    }

    fn vote(s: &mut StateMachine, poll_id: u64, option: usize, name: &str) -> Step {
        let cmd = Command::Vote {
            poll_id,
            option,
            name: name.into(),
        };
        s.command(&cmd, 20)
    }

    fn code(step: &Step) -> Option<ErrorCode> {
        step.reply.clone().result().err().map(|e| e.code)
    }

    fn counts(s: &StateMachine) -> Vec<u32> {
        let poll = s.state().poll.as_ref().expect("a poll");
        poll.options.iter().map(|o| o.votes).collect()
    }

    #[test]
    fn viewers_vote_once_each_and_the_counts_are_in_the_state() {
        let mut s = state();
        let step = create(&mut s, " Lunch? ", &["Pizza", " Sushi "]);
        let id = step
            .reply
            .result()
            .ok()
            .and_then(|v| v["id"].as_u64())
            .unwrap();
        let poll = s.state().poll.clone().unwrap();
        assert_eq!((poll.question.as_str(), poll.open), ("Lunch?", true));
        assert_eq!(poll.options[1].text, "Sushi");
        assert!(vote(&mut s, id, 0, "Ana").reply.is_ok());
        let step = vote(&mut s, id, 1, "Bo");
        assert!(matches!(
            &step.effects[..],
            [Effect::Emit(Event::PollUpdated { poll })] if poll.options[1].votes == 1
        ));
        // The same viewer again, whatever the case and spaces: refused, counts unchanged.
        let again = vote(&mut s, id, 1, " ana ");
        assert_eq!(code(&again), Some(ErrorCode::InvalidState));
        assert!(again.effects.is_empty());
        assert_eq!(counts(&s), vec![1, 1]);
        let v = serde_json::to_value(s.state()).unwrap();
        assert_eq!(v["poll"]["options"][0]["votes"], 1, "{v}");
        assert!(
            !v.to_string().contains("Ana"),
            "voters stay out of the state"
        );
    }

    #[test]
    fn bad_votes_change_nothing() {
        let mut s = state();
        assert_eq!(
            code(&vote(&mut s, 1, 0, "Ana")),
            Some(ErrorCode::InvalidArgument)
        );
        create(&mut s, "Q?", &["a", "b"]);
        let id = s.state().poll.as_ref().unwrap().id;
        assert_eq!(
            code(&vote(&mut s, id + 1, 0, "Ana")),
            Some(ErrorCode::InvalidArgument)
        );
        let e = vote(&mut s, id, 2, "Ana");
        assert_eq!(code(&e), Some(ErrorCode::InvalidArgument));
        assert!(e.reply.result().unwrap_err().message.contains("0 to 1"));
        assert!(s.command(&Command::ClosePoll { id }, 30).reply.is_ok());
        assert_eq!(
            code(&vote(&mut s, id, 0, "Ana")),
            Some(ErrorCode::InvalidState)
        );
        assert_eq!(counts(&s), vec![0, 0]);
    }

    #[test]
    fn one_poll_at_a_time_and_closing_posts_the_results() {
        let mut s = state();
        s.set_room_backend(true);
        s.state_mut().meeting_state = MeetingState::Connected;
        create(&mut s, "Lunch?", &["Pizza", "Sushi"]);
        let id = s.state().poll.as_ref().unwrap().id;
        assert_eq!(
            code(&create(&mut s, "Other?", &["x", "y"])),
            Some(ErrorCode::InvalidState)
        );
        vote(&mut s, id, 0, "Ana");
        let step = s.command(&Command::ClosePoll { id }, 30);
        let text = "Poll: Lunch? Pizza 1, Sushi 0".to_string();
        assert!(step.effects.contains(&Effect::Room(RoomAction::SendChat {
            text: text.clone(),
            to: None
        })));
        assert!(step.effects.iter().any(|e| matches!(
            e,
            Effect::Emit(Event::PollClosed { poll }) if !poll.open && poll.closed_ms == Some(30)
        )));
        assert_eq!(s.state().viewers.feed.back().map(|m| &m.text), Some(&text));
        assert_eq!(
            code(&s.command(&Command::ClosePoll { id }, 31)),
            Some(ErrorCode::InvalidState)
        );
        // A new poll replaces the closed one, and everyone may vote again.
        let step = create(&mut s, "Coffee?", &["yes", "no"]);
        let id2 = step
            .reply
            .result()
            .ok()
            .and_then(|v| v["id"].as_u64())
            .unwrap();
        assert!(vote(&mut s, id2, 0, "Ana").reply.is_ok());
    }
}

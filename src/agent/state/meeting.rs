//! The meeting feed's part of the state machine: `pin`, and a pin that ends when its
//! participant leaves.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::event::Event;
use crate::media::MediaAction;

impl StateMachine {
    /// Pins `who` (a remote participant in the room) to the meeting feed's focus, or unpins.
    pub(super) fn pin(&mut self, who: Option<&str>) -> Step {
        if let Some(id) = who {
            if !self.state.participants.contains_key(id) {
                return Step::err(
                    ErrorCode::InvalidState,
                    format!("participantId: `{id}` is not in the meeting"),
                );
            }
        }
        let before = self.state.pinned.clone();
        if before.as_deref() == who {
            return Step::ok(Vec::new());
        }
        self.state.pinned = who.map(str::to_string);
        let mut fx = Vec::new();
        if let Some(old) = before {
            fx.push(Effect::Emit(Event::PinStateChanged {
                participant_id: old,
                pinned: false,
            }));
        }
        if let Some(id) = who {
            fx.push(Effect::Emit(Event::PinStateChanged {
                participant_id: id.to_string(),
                pinned: true,
            }));
        }
        fx.push(Effect::Media(MediaAction::Pin(self.state.pinned.clone())));
        Step::ok(fx)
    }

    /// A participant left: their pin goes with them (the feed's hub forgets it too).
    pub(super) fn unpin_left(&mut self, id: &str) -> Vec<Effect> {
        if self.state.pinned.as_deref() != Some(id) {
            return Vec::new();
        }
        self.state.pinned = None;
        vec![Effect::Emit(Event::PinStateChanged {
            participant_id: id.to_string(),
            pinned: false,
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use crate::agent::state::Effect;
    use crate::command::{Command, ErrorCode};
    use crate::media::MediaAction;
    use crate::model::Participant;
    use crate::room::RoomNotice;

    fn joined(s: &mut crate::agent::state::StateMachine, id: &str) {
        s.room_notice(RoomNotice::ParticipantJoined(Participant {
            participant_id: id.into(),
            display_name: id.into(),
            local: false,
            mode: Default::default(),
            metadata: Default::default(),
            mic_on: true,
            webcam_on: true,
            streams: Default::default(),
        }));
    }

    #[test]
    fn a_pin_names_someone_in_the_meeting_and_moves_from_one_to_the_next() {
        let mut s = state();
        let step = s.command(
            &Command::Pin {
                participant_id: Some("ana".into()),
            },
            0,
        );
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::InvalidState);
        assert!(s.state.pinned.is_none());
        joined(&mut s, "ana");
        joined(&mut s, "bo");
        let step = s.command(
            &Command::Pin {
                participant_id: Some("ana".into()),
            },
            0,
        );
        assert!(step.reply.is_ok());
        assert_eq!(emitted(&step.effects), ["pin-state-changed"]);
        assert!(step
            .effects
            .contains(&Effect::Media(MediaAction::Pin(Some("ana".into())))));
        let step = s.command(
            &Command::Pin {
                participant_id: Some("bo".into()),
            },
            0,
        );
        assert_eq!(
            emitted(&step.effects),
            ["pin-state-changed", "pin-state-changed"]
        );
        assert_eq!(s.state.pinned.as_deref(), Some("bo"));
        let step = s.command(
            &Command::Pin {
                participant_id: None,
            },
            0,
        );
        assert!(step
            .effects
            .contains(&Effect::Media(MediaAction::Pin(None))));
        assert!(s.state.pinned.is_none());
    }

    #[test]
    fn the_pinned_participant_leaving_unpins() {
        let mut s = state();
        joined(&mut s, "ana");
        s.command(
            &Command::Pin {
                participant_id: Some("ana".into()),
            },
            0,
        );
        let fx = s.room_notice(RoomNotice::ParticipantLeft("ana".into()));
        assert!(
            emitted(&fx).contains(&"pin-state-changed".to_string()),
            "{fx:?}"
        );
        assert!(s.state.pinned.is_none());
    }
}

//! Health: one verdict, for the fleet and `roombox status`, made again after every input from
//! what each concern shows. A problem is said in words a person can act on; a box that is still
//! connecting (to a room, to the fleet) is not unhealthy yet.

use super::StateMachine;
use crate::event::MediaState;
use crate::model::{MeetingState, ServiceState};
use serde::{Deserialize, Serialize};

/// Overall health.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Health {
    /// True when nothing below is wrong.
    pub ok: bool,
    /// What is wrong, for a person.
    pub problems: Vec<String>,
}

impl StateMachine {
    pub(super) fn refresh_health(&mut self) {
        let s = &self.state;
        let mut problems = Vec::new();
        if s.media.state != MediaState::Playing {
            problems.push(match &s.media.last_error {
                Some(e) => format!("media {:?}: {e}", s.media.state),
                None => format!("media {:?}", s.media.state),
            });
        }
        if s.room.is_some()
            && matches!(
                s.meeting_state,
                MeetingState::Disconnected | MeetingState::Failed
            )
        {
            problems.push(format!("room {:?}", s.meeting_state));
        }
        for (name, o) in &s.livestream.outputs {
            if o.state == ServiceState::Failed {
                problems.push(format!(
                    "livestream output {name} failed: {}",
                    unknown(&o.last_error)
                ));
            }
        }
        let failed = [
            ("hls", s.hls.state, &s.hls.last_error),
            ("recording", s.recording.state, &s.recording.last_error),
            (
                "transcription",
                s.transcription.state,
                &s.transcription.last_error,
            ),
        ];
        for (what, state, error) in failed {
            if state == ServiceState::Failed {
                problems.push(format!("{what} failed: {}", unknown(error)));
            }
        }
        problems.extend(self.fleet_problem());
        self.state.health = Health {
            ok: problems.is_empty(),
            problems,
        };
    }
}

fn unknown(error: &Option<String>) -> &str {
    error.as_deref().unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use crate::event::MediaState;
    use crate::media::{ConsumerEvent, ConsumerId, MediaError, MediaNotice};
    use crate::model::MeetingState;
    use crate::room::RoomNotice;

    #[test]
    fn media_that_does_not_play_is_the_first_problem() {
        let mut s = state();
        assert_eq!(s.state().health.problems, vec!["media Stopped".to_string()]);
        s.media_notice(MediaNotice::Error(MediaError::Runtime("no camera".into())));
        assert_eq!(
            s.state().health.problems,
            vec!["media Stopped: no camera".to_string()]
        );
    }

    #[test]
    fn every_failed_service_is_listed_with_its_reason() {
        let mut s = state();
        s.media_notice(MediaNotice::State {
            state: MediaState::Playing,
            encoder: None,
        });
        assert!(s.state().health.ok);
        s.set_http_base(Some("http://h".into()));
        s.command(&crate::command::Command::StartHls, 0);
        s.media_notice(MediaNotice::Consumer {
            id: ConsumerId::Hls,
            event: ConsumerEvent::Failed(MediaError::DiskFull("full".into())),
        });
        s.set_room_backend(true);
        s.command(&crate::command::Command::ToggleJoin, 0);
        s.room_notice(RoomNotice::State(MeetingState::Failed));
        let h = &s.state().health;
        assert!(!h.ok);
        assert_eq!(h.problems.len(), 2, "{:?}", h.problems);
        assert_eq!(h.problems[0], "room Failed");
        assert!(
            h.problems[1].starts_with("hls failed: "),
            "{:?}",
            h.problems
        );
    }
}

//! The livestream's fallback: while the box is meant to be in a room and the room has not been
//! CONNECTED for `after`, it streams to the configured fallback output on its own; once the room
//! is back (or left) it stops, or stays, as configured. Every switch says why.

use super::super::{Effect, StateMachine};
use crate::config::FallbackReturn;
use crate::event::Event;
use crate::model::MeetingState;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fallback: streaming on its own while the room is unreachable.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FallbackStatus {
    /// The configured output, when the fallback is on.
    pub output: Option<String>,
    /// True while the fallback streams.
    pub active: bool,
    /// Why it last switched.
    pub reason: Option<String>,
}

impl StateMachine {
    /// The fallback's rule, applied at every tick and room change: stream once the room has been
    /// unreachable for `after` while the box is meant to be in it; stop (or stay) once it is back.
    pub(in crate::agent::state) fn fallback_rule(&mut self, now_ms: u64) -> Vec<Effect> {
        let Some((output, after, on_return)) = self.setup.livestream.fallback.clone() else {
            return Vec::new();
        };
        let connected = self.state.meeting_state == MeetingState::Connected;
        let wanted = self.state.room.is_some() && !self.state.stopping;
        if !wanted || connected {
            self.pending.livestream.room_lost_since_ms = None;
        } else if self.pending.livestream.room_lost_since_ms.is_none() {
            self.pending.livestream.room_lost_since_ms = Some(now_ms);
        }
        let active = self.state.livestream.fallback.active;
        if !active {
            let Some(since) = self.pending.livestream.room_lost_since_ms else {
                return Vec::new();
            };
            if now_ms.saturating_sub(since) < after.as_millis() as u64 {
                return Vec::new();
            }
            if self.state.livestream.outputs.contains_key(&output) {
                // Already streaming there by command.
                return Vec::new();
            }
            let spec = self
                .setup
                .livestream
                .outputs
                .iter()
                .find(|(n, _)| *n == output)
                .map(|(_, s)| s.clone());
            let reason = format!(
                "room {} unreachable for {}",
                self.state
                    .room
                    .as_ref()
                    .map(|r| r.room_id.as_str())
                    .unwrap_or("?"),
                humantime::format_duration(Duration::from_secs(
                    now_ms.saturating_sub(since) / 1000
                ))
            );
            self.state.livestream.fallback.reason = Some(reason.clone());
            return match spec {
                Some(Ok(spec)) => {
                    self.state.livestream.fallback.active = true;
                    self.start_output(spec, true, Some(reason))
                }
                other if self.pending.livestream.fallback_error_sent_for != Some(since) => {
                    self.pending.livestream.fallback_error_sent_for = Some(since);
                    let e = other
                        .and_then(|s| s.err())
                        .unwrap_or_else(|| format!("fallback output `{output}` is not configured"));
                    vec![Effect::Emit(Event::Error {
                        code: "livestream".into(),
                        message: format!("fallback not started ({reason}): {e}"),
                    })]
                }
                _ => Vec::new(),
            };
        }
        let back = connected || !wanted;
        if back && on_return == FallbackReturn::Stop {
            let reason = if connected {
                "the room is back"
            } else {
                "the box left the room"
            };
            return self.stop_output(&output, Some(reason.to_string()));
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::*;
    use super::super::super::LivestreamSetup;
    use super::*;
    use crate::command::Command;
    use crate::media::rtmp::{RtmpSpec, StreamKey};
    use crate::media::{ConsumerId, MediaAction};

    fn spec(name: &str) -> RtmpSpec {
        RtmpSpec {
            name: name.into(),
            url: "rtmp://127.0.0.1:1935/live".into(),
            key: StreamKey::new("sekrit"),
            reconnect: Default::default(),
            source: Default::default(),
        }
    }

    #[test]
    fn fallback_starts_after_the_room_is_lost_for_after_and_stops_when_it_is_back() {
        let mut s = state();
        s.set_room_backend(true);
        s.setup.livestream = LivestreamSetup {
            outputs: vec![("backup".into(), Ok(spec("backup")))],
            fallback: Some((
                "backup".into(),
                Duration::from_secs(5),
                FallbackReturn::Stop,
            )),
            reconnect: Default::default(),
        };
        s.command(&Command::ToggleJoin, 0);
        s.room_notice(crate::room::RoomNotice::State(MeetingState::Connected));
        assert!(s.tick(1_000).is_empty());
        // Lost between ticks: counted from when the notice came.
        s.at(1_500);
        s.room_notice(crate::room::RoomNotice::State(MeetingState::Disconnected));
        assert!(s.tick(2_000).is_empty());
        assert!(s.tick(6_400).is_empty(), "not before `after`");
        let fx = s.tick(6_600);
        assert!(fx.iter().any(|e| matches!(e,
            Effect::Media(MediaAction::Attach { id: ConsumerId::Rtmp(n), .. }) if n == "backup")));
        assert!(s.state().livestream.fallback.active);
        let reason = s.state().livestream.fallback.reason.clone().unwrap();
        assert!(reason.contains("unreachable for 5s"), "{reason}");
        assert!(s.tick(8_000).is_empty(), "started once");
        let fx = s.room_notice(crate::room::RoomNotice::State(MeetingState::Connected));
        assert!(fx.iter().any(|e| matches!(e,
            Effect::Media(MediaAction::Detach { id: ConsumerId::Rtmp(n) }) if n == "backup")));
        assert!(!s.state().livestream.fallback.active);
        assert_eq!(
            s.state().livestream.fallback.reason.as_deref(),
            Some("the room is back")
        );
    }
}

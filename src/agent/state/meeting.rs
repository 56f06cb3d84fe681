//! The meeting feed's part of the state machine: `pin`, a pin that ends when its participant
//! leaves, and `set-output-source` (an output's picture and sound: the room's or the meeting's).

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::event::Event;
use crate::media::{ConsumerId, MediaAction};
use crate::model::{OutputKind, OutputSource};
use std::collections::BTreeMap;

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

    /// `set-output-source`: the output carries `source` from now on (the next start, and the
    /// running output at once, which the engine switches without stopping it).
    pub(super) fn set_output_source(
        &mut self,
        output: OutputKind,
        name: Option<&str>,
        source: OutputSource,
    ) -> Step {
        let mut fx = Vec::new();
        match output {
            OutputKind::Recording => {
                let Some(spec) = self.setup.recording.recorder.as_mut() else {
                    return Step::err(ErrorCode::Unavailable, "there is no local recording");
                };
                if self.state.recording.source == source && spec.config.source == source {
                    return Step::ok(Vec::new());
                }
                spec.config.source = source;
                self.state.recording.source = source;
                if self.state.recording.state.is_active() {
                    fx.push(switch(ConsumerId::Recorder, source));
                }
            }
            OutputKind::Hls => {
                let Some(spec) = self.setup.hls.spec.as_mut() else {
                    return Step::err(ErrorCode::Unavailable, "HLS is not configured");
                };
                if self.state.hls.source == source && spec.source == source {
                    return Step::ok(Vec::new());
                }
                spec.source = source;
                self.state.hls.source = source;
                if self.state.hls.state.is_active() {
                    fx.push(switch(ConsumerId::Hls, source));
                }
            }
            OutputKind::Livestream => {
                let named = |n: &str| name.is_none_or(|w| w == n);
                let configured = self.setup.livestream.outputs.iter().any(|(n, _)| named(n));
                let running = self.state.livestream.outputs.keys().any(|n| named(n));
                if !configured && !running {
                    return match name {
                        Some(n) => {
                            Step::err(ErrorCode::InvalidArgument, format!("no output named `{n}`"))
                        }
                        None => Step::err(ErrorCode::Unavailable, "there is no RTMP output"),
                    };
                }
                for (n, spec) in self.setup.livestream.outputs.iter_mut() {
                    if let (true, Ok(spec)) = (named(n), spec) {
                        spec.source = source;
                    }
                }
                for (n, status) in self.state.livestream.outputs.iter_mut() {
                    if named(n) && status.source != source {
                        status.source = source;
                        if status.state.is_active() {
                            fx.push(switch(ConsumerId::Rtmp(n.clone()), source));
                        }
                    }
                }
            }
        }
        // The running ones this moved are said to carry what they carry now, so `settle` does
        // not say it again.
        let carries = self.carries(source);
        for key in self.meeting_outputs() {
            let named = key.0 == output && name.is_none_or(|n| key.1.as_deref() == Some(n));
            if named {
                self.carrying.insert(key, carries);
            }
        }
        fx.push(Effect::Emit(Event::OutputSourceChanged {
            output,
            name: name.map(str::to_string),
            source,
            carries,
        }));
        Step::ok(fx)
    }

    /// What an output that asked for `source` carries now: the meeting only in a room.
    fn carries(&self, source: OutputSource) -> OutputSource {
        match (source, &self.state.room) {
            (OutputSource::Meeting, Some(_)) => OutputSource::Meeting,
            _ => OutputSource::Room,
        }
    }

    /// The running outputs whose source is the meeting.
    fn meeting_outputs(&self) -> Vec<(OutputKind, Option<String>)> {
        let s = &self.state;
        let mut out = Vec::new();
        if s.recording.state.is_active() && s.recording.source == OutputSource::Meeting {
            out.push((OutputKind::Recording, None));
        }
        if s.hls.state.is_active() && s.hls.source == OutputSource::Meeting {
            out.push((OutputKind::Hls, None));
        }
        for (n, o) in &s.livestream.outputs {
            if o.state.is_active() && o.source == OutputSource::Meeting {
                out.push((OutputKind::Livestream, Some(n.clone())));
            }
        }
        out
    }

    /// After every input: an output that asked for the meeting and starts while the box is in
    /// no room says that it carries the room's own picture and sound (`output-source-changed`,
    /// `carries: room`), and a running one says so again when the box joins or leaves a room.
    /// One that starts in a room says nothing: it carries what it asked for.
    pub fn settle(&mut self) -> Vec<Effect> {
        let carries = self.carries(OutputSource::Meeting);
        let mut fx = Vec::new();
        let mut carrying = BTreeMap::new();
        for key in self.meeting_outputs() {
            let said = self.carrying.get(&key).copied();
            if said != Some(carries) && (said.is_some() || carries == OutputSource::Room) {
                fx.push(Effect::Emit(Event::OutputSourceChanged {
                    output: key.0,
                    name: key.1.clone(),
                    source: OutputSource::Meeting,
                    carries,
                }));
            }
            carrying.insert(key, carries);
        }
        self.carrying = carrying;
        fx
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

fn switch(id: ConsumerId, source: OutputSource) -> Effect {
    Effect::Media(MediaAction::SetSource { id, source })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use crate::agent::state::Effect;
    use crate::command::{Command, ErrorCode};
    use crate::media::MediaAction;
    use crate::model::{OutputKind, OutputSource, Participant};
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

    fn set(output: OutputKind, name: Option<&str>, source: OutputSource) -> Command {
        Command::SetOutputSource {
            output,
            name: name.map(str::to_string),
            source,
        }
    }

    #[test]
    fn an_output_source_holds_for_the_next_start_and_switches_a_running_output() {
        use crate::media::{ConsumerId, ConsumerSpec};
        let mut s = state();
        // Not running: the next start carries the meeting.
        let step = s.command(&set(OutputKind::Recording, None, OutputSource::Meeting), 0);
        assert!(step.reply.is_ok());
        assert_eq!(emitted(&step.effects), ["output-source-changed"]);
        assert!(!step
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Media(MediaAction::SetSource { .. }))));
        assert_eq!(s.state.recording.source, OutputSource::Meeting);
        let started = s.command(
            &Command::StartRecording {
                target: Default::default(),
            },
            0,
        );
        assert!(started.effects.iter().any(|e| matches!(
            e,
            Effect::Media(MediaAction::Attach { spec: ConsumerSpec::Recorder(r), .. })
                if r.config.source == OutputSource::Meeting
        )));
        // Running: switched where it runs.
        let step = s.command(&set(OutputKind::Recording, None, OutputSource::Room), 0);
        assert!(step
            .effects
            .contains(&Effect::Media(MediaAction::SetSource {
                id: ConsumerId::Recorder,
                source: OutputSource::Room
            })));
        // The same again: nothing to do, nothing said.
        let step = s.command(&set(OutputKind::Recording, None, OutputSource::Room), 0);
        assert!(step.reply.is_ok() && step.effects.is_empty());
        // HLS, not running.
        let step = s.command(&set(OutputKind::Hls, None, OutputSource::Meeting), 0);
        assert!(step.reply.is_ok());
        assert_eq!(s.state.hls.source, OutputSource::Meeting);
    }

    fn carries(fx: &[Effect]) -> Vec<(OutputKind, OutputSource)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Emit(crate::event::Event::OutputSourceChanged {
                    output, carries, ..
                }) => Some((*output, *carries)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_output_asking_for_the_meeting_out_of_a_room_says_it_carries_the_room_until_the_box_joins()
    {
        let mut s = state();
        s.command(&set(OutputKind::Recording, None, OutputSource::Meeting), 0);
        assert!(s.settle().is_empty(), "not running: nothing to say");
        s.command(
            &Command::StartRecording {
                target: Default::default(),
            },
            0,
        );
        let fx = s.settle();
        assert_eq!(
            carries(&fx),
            [(OutputKind::Recording, OutputSource::Room)],
            "{fx:?}"
        );
        assert!(s.settle().is_empty(), "said once");
        s.room_notice(RoomNotice::Joined {
            room_id: "r".into(),
            session_id: Some("s".into()),
            participant_id: "box1".into(),
        });
        assert_eq!(
            carries(&s.settle()),
            [(OutputKind::Recording, OutputSource::Meeting)]
        );
        // Switched to the room and back while in the room: the command says it, settle not again.
        let step = s.command(&set(OutputKind::Recording, None, OutputSource::Room), 0);
        assert_eq!(
            carries(&step.effects),
            [(OutputKind::Recording, OutputSource::Room)]
        );
        assert!(s.settle().is_empty());
        let step = s.command(&set(OutputKind::Recording, None, OutputSource::Meeting), 0);
        assert_eq!(
            carries(&step.effects),
            [(OutputKind::Recording, OutputSource::Meeting)]
        );
        assert!(s.settle().is_empty());
        s.room_notice(RoomNotice::Left {
            room_id: "r".into(),
            reason: "left".into(),
        });
        assert_eq!(
            carries(&s.settle()),
            [(OutputKind::Recording, OutputSource::Room)]
        );
        s.command(
            &Command::StopRecording {
                target: Default::default(),
            },
            0,
        );
        assert!(s.settle().is_empty(), "a stopped output says nothing");
    }

    #[test]
    fn an_rtmp_output_must_exist() {
        let mut s = state();
        let step = s.command(
            &set(OutputKind::Livestream, Some("yt"), OutputSource::Meeting),
            0,
        );
        let e = step.reply.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("`yt`"), "{}", e.message);
        let step = s.command(&set(OutputKind::Livestream, None, OutputSource::Meeting), 0);
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::Unavailable);
        assert!(step.effects.is_empty());
    }
}

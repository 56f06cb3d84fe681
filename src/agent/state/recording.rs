//! The recording half of the state machine: the local recorder (a media consumer) started and
//! stopped by command, at start-up or on a reload that changed its settings, and recording on
//! the room server, asked of the room session.
//!
//! The local recording is STARTED once the recorder's first segment is open, and STOPPED once
//! its last segment is finalised; the segments it closed are kept for `post_on_stop`.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::config::Config;
use crate::event::Event;
use crate::media::recorder::RecorderSpec;
use crate::media::{ConsumerEvent, ConsumerId, ConsumerSpec, MediaAction};
use crate::model::{MeetingState, RecordingTarget, ServiceState};
use crate::room::RoomAction;
use serde::{Deserialize, Serialize};

/// Local recording.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecordingStatus {
    pub state: ServiceState,
    /// Directory of the segments.
    pub dir: String,
    /// Segments closed since the agent started.
    pub segments_closed: u64,
    /// Bytes in closed segments since the agent started.
    pub bytes_closed: u64,
    /// The last closed segment.
    pub last_segment: Option<String>,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// What it carries (or will, once started).
    pub source: crate::model::OutputSource,
}

/// `[recording]` as the machine uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct RecordingSetup {
    pub(super) autostart: bool,
    /// What the recorder consumer is started with.
    pub(super) recorder: Option<RecorderSpec>,
    /// Where its segments are, for `transcribe-recording`.
    pub(super) dir: std::path::PathBuf,
}

impl RecordingSetup {
    pub(super) fn from_config(config: &Config) -> RecordingSetup {
        RecordingSetup {
            autostart: config.recording.autostart,
            recorder: Some(RecorderSpec {
                config: config.recording.clone(),
                dir: config.recording_dir(),
                // Who the box is in the room: set when the recording starts.
                speaker: Default::default(),
            }),
            dir: config.recording_dir(),
        }
    }
}

/// What the running local recording has written so far.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct RecordingPending {
    /// Segments the running recording closed, for `post_on_stop`.
    pub(super) files: Vec<String>,
}

impl StateMachine {
    /// Takes `[recording]`. A running recording whose settings changed is attached again with
    /// the new ones.
    pub(super) fn configure_recording(&mut self, config: &Config) -> Vec<Effect> {
        let setup = RecordingSetup::from_config(config);
        self.state.recording.dir = config.recording_dir().display().to_string();
        self.state.recording.source = config.recording.source;
        let mut fx = Vec::new();
        if let Some(spec) = &setup.recorder {
            if self.state.recording.state.is_active()
                && self.setup.recording.recorder != setup.recorder
            {
                fx.push(Effect::Media(MediaAction::Attach {
                    id: ConsumerId::Recorder,
                    spec: ConsumerSpec::Recorder(self.as_me(spec.clone())),
                }));
            }
        }
        self.setup.recording = setup;
        fx
    }

    /// `spec` with the box as it is in the room now: its own track in a recording of the
    /// meeting carries the name it joined with.
    fn as_me(&self, mut spec: RecorderSpec) -> RecorderSpec {
        let me = &self.state.local_participant;
        spec.speaker = (me.participant_id.clone(), me.display_name.clone());
        spec
    }

    /// `start-recording` (local).
    pub(super) fn start_recording(&mut self) -> Step {
        if self.state.recording.state.is_active() {
            return Step::err(
                ErrorCode::InvalidState,
                format!(
                    "local recording is already {:?}",
                    self.state.recording.state
                ),
            );
        }
        Step::ok(self.start_local_recording())
    }

    /// Effects that start the local recording (also at start-up with `autostart`).
    pub(super) fn start_local_recording(&mut self) -> Vec<Effect> {
        let Some(spec) = self.setup.recording.recorder.clone() else {
            return Vec::new();
        };
        let spec = self.as_me(spec);
        self.state.recording.state = ServiceState::Starting;
        self.state.recording.last_error = None;
        self.pending.recording.files.clear();
        vec![
            local_event(ServiceState::Starting, None),
            Effect::Media(MediaAction::Attach {
                id: ConsumerId::Recorder,
                spec: ConsumerSpec::Recorder(spec),
            }),
        ]
    }

    /// `stop-recording` (local).
    pub(super) fn stop_recording(&mut self) -> Step {
        if !self.state.recording.state.is_active() {
            return Step::err(ErrorCode::InvalidState, "local recording is not running");
        }
        self.state.recording.state = ServiceState::Stopping;
        Step::ok(vec![
            local_event(ServiceState::Stopping, None),
            Effect::Media(MediaAction::Detach {
                id: ConsumerId::Recorder,
            }),
        ])
    }

    /// On a clean stop: the media engine's stop finalises the recorder; this says so.
    pub(super) fn drain_recording(&mut self) -> Vec<Effect> {
        if !self.state.recording.state.is_active() {
            return Vec::new();
        }
        self.state.recording.state = ServiceState::Stopping;
        vec![local_event(ServiceState::Stopping, None)]
    }

    /// What the recorder consumer reported.
    pub(super) fn recording_notice(&mut self, event: ConsumerEvent) -> Vec<Effect> {
        let mut fx = Vec::new();
        let r = &mut self.state.recording;
        let (state, reason) = match event {
            ConsumerEvent::Started => (ServiceState::Started, None),
            ConsumerEvent::FileClosed { path, bytes } => {
                r.segments_closed += 1;
                r.bytes_closed += bytes;
                r.last_segment = Some(path.clone());
                self.pending.recording.files.push(path.clone());
                fx.push(Effect::Emit(Event::RecordingSegmentClosed { path, bytes }));
                return fx;
            }
            ConsumerEvent::Finished => {
                fx.extend(self.post_on_stop());
                (ServiceState::Stopped, None)
            }
            ConsumerEvent::Failed(e) | ConsumerEvent::Retrying { error: e, .. } => {
                r.last_error = Some(e.to_string());
                (ServiceState::Failed, Some(e.to_string()))
            }
        };
        let r = &mut self.state.recording;
        if r.state != state || state == ServiceState::Failed {
            r.state = state;
            fx.push(local_event(state, reason));
        }
        fx
    }

    /// `start-recording` (cloud): asked of the room session, shown once it confirms.
    pub(super) fn start_cloud_recording(&mut self) -> Step {
        if self.state.meeting_state != MeetingState::Connected {
            return Step::err(ErrorCode::InvalidState, "not connected to a room");
        }
        if self.state.cloud_recording.is_active() {
            return Step::err(ErrorCode::InvalidState, "cloud recording is already on");
        }
        self.state.cloud_recording = ServiceState::Starting;
        Step::ok(vec![
            cloud_event(ServiceState::Starting, None),
            Effect::Room(RoomAction::SetCloudRecording(true)),
        ])
    }

    /// `stop-recording` (cloud).
    pub(super) fn stop_cloud_recording(&mut self) -> Step {
        if !self.state.cloud_recording.is_active() {
            return Step::err(ErrorCode::InvalidState, "cloud recording is not on");
        }
        self.state.cloud_recording = ServiceState::Stopping;
        Step::ok(vec![
            cloud_event(ServiceState::Stopping, None),
            Effect::Room(RoomAction::SetCloudRecording(false)),
        ])
    }
}

fn local_event(state: ServiceState, reason: Option<String>) -> Effect {
    Effect::Emit(Event::RecordingStateChanged {
        target: RecordingTarget::Local,
        state,
        reason,
    })
}

/// The event of a cloud recording's change (also when leaving the room ends it).
pub(super) fn cloud_event(state: ServiceState, reason: Option<String>) -> Effect {
    Effect::Emit(Event::RecordingStateChanged {
        target: RecordingTarget::Cloud,
        state,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use crate::command::Command;
    use crate::event::MediaState;
    use crate::media::MediaNotice;

    fn rec(event: ConsumerEvent) -> MediaNotice {
        MediaNotice::Consumer {
            id: ConsumerId::Recorder,
            event,
        }
    }

    const START: Command = Command::StartRecording {
        target: RecordingTarget::Local,
    };
    const STOP: Command = Command::StopRecording {
        target: RecordingTarget::Local,
    };

    #[test]
    fn recording_lifecycle_emits_each_state() {
        let mut s = state();
        let step = s.command(&START, 0);
        assert_eq!(emitted(&step.effects), vec!["recording-state-changed"]);
        assert_eq!(s.state().recording.state, ServiceState::Starting);
        let again = s.command(&START, 0);
        assert_eq!(again.reply.unwrap_err().code, ErrorCode::InvalidState);
        s.media_notice(rec(ConsumerEvent::Started));
        assert_eq!(s.state().recording.state, ServiceState::Started);
        s.media_notice(rec(ConsumerEvent::FileClosed {
            path: "a.mp4".into(),
            bytes: 10,
        }));
        assert_eq!(s.state().recording.segments_closed, 1);
        let stop = s.command(&STOP, 0);
        assert!(stop.effects.contains(&Effect::Media(MediaAction::Detach {
            id: ConsumerId::Recorder
        })));
        s.media_notice(rec(ConsumerEvent::Finished));
        assert_eq!(s.state().recording.state, ServiceState::Stopped);
        assert_eq!(
            s.command(&STOP, 0).reply.unwrap_err().code,
            ErrorCode::InvalidState
        );
    }

    #[test]
    fn a_failed_recording_is_unhealthy_and_can_be_restarted() {
        let mut s = state();
        s.media_notice(MediaNotice::State {
            state: MediaState::Playing,
            encoder: Some("x264enc".into()),
        });
        s.command(&START, 0);
        let fx = s.media_notice(rec(ConsumerEvent::Failed(
            crate::media::MediaError::DiskFull("No space left on device".into()),
        )));
        assert_eq!(emitted(&fx), vec!["recording-state-changed"]);
        assert!(!s.state().health.ok);
        assert!(s.command(&START, 0).reply.is_ok());
    }

    #[test]
    fn a_reload_that_changes_the_recorder_restarts_a_running_recording_only() {
        let mut s = state();
        let mut c = Config::default();
        c.recording.segment = std::time::Duration::from_secs(7);
        assert!(s.configure(&c).is_empty(), "nothing runs");
        s.command(&START, 0);
        assert!(s.configure(&c).is_empty(), "same settings");
        c.recording.segment = std::time::Duration::from_secs(9);
        let fx = s.configure(&c);
        assert!(matches!(
            fx.as_slice(),
            [Effect::Media(MediaAction::Attach {
                id: ConsumerId::Recorder,
                ..
            })]
        ));
    }
}

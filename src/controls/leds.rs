//! From the agent's state to LED patterns, and from patterns to levels over time.
//!
//! [`pattern_for`] is pure: the state picks the highest-priority [`LedState`] that holds, and
//! that state's [`Look`](crate::config::controls::Look) says which LEDs light and how. [`level_at`] and
//! [`next_change`] turn a pattern into brightness over time for the driver.

use super::Led;
use crate::agent::state::AgentState;
use crate::config::controls::{LedConfig, LedState, Pattern};
use crate::event::MediaState;
use crate::model::{MeetingState, ServiceState};

/// The pattern of each LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedPatterns {
    pub red: Pattern,
    pub green: Pattern,
    pub blue: Pattern,
}

impl LedPatterns {
    /// Every LED off.
    pub const OFF: LedPatterns = LedPatterns {
        red: Pattern::Off,
        green: Pattern::Off,
        blue: Pattern::Off,
    };

    /// One LED's pattern.
    pub fn get(&self, led: Led) -> Pattern {
        match led {
            Led::Red => self.red,
            Led::Green => self.green,
            Led::Blue => self.blue,
        }
    }
}

/// Whether a state holds now.
pub fn holds(s: LedState, state: &AgentState) -> bool {
    let booting = matches!(
        state.media.state,
        MediaState::Stopped | MediaState::Starting
    ) && state.media.last_error.is_none()
        && state.media.restarts == 0;
    match s {
        LedState::Muted => state.media.audio_source != "none" && !state.local_participant.mic_on,
        LedState::Identify => state.identifying(),
        LedState::Error => {
            state.meeting_state == MeetingState::Failed || (!state.health.ok && !booting)
        }
        LedState::Connecting => matches!(
            state.meeting_state,
            MeetingState::Connecting | MeetingState::Disconnected
        ),
        LedState::InCall => state.meeting_state == MeetingState::Connected,
        LedState::MeetingSoon => {
            !matches!(
                state.meeting_state,
                MeetingState::Connected | MeetingState::Connecting | MeetingState::Disconnected
            ) && state
                .calendar
                .as_ref()
                .is_some_and(|c| c.joinable.is_some())
        }
        LedState::Recording => state.recording.state == ServiceState::Started,
        LedState::Starting => booting,
        LedState::Idle => true,
    }
}

/// The state the LEDs show: the first in `config.priority` that holds.
pub fn shown_state(state: &AgentState, config: &LedConfig) -> Option<LedState> {
    config.priority.iter().copied().find(|s| holds(*s, state))
}

/// The pattern of every LED for a state of the agent.
pub fn pattern_for(state: &AgentState, config: &LedConfig) -> LedPatterns {
    let Some(shown) = shown_state(state, config) else {
        return LedPatterns::OFF;
    };
    let look = config.looks.get(shown);
    let [r, g, b] = look.color.rgb();
    let p = |on: bool| if on { look.pattern } else { Pattern::Off };
    LedPatterns {
        red: p(r),
        green: p(g),
        blue: p(b),
    }
}

/// Brightness of `pattern` `t_ms` after it started, 0.0..=1.0. `pwm` says whether the LED can
/// dim; without it the result is 0.0 or 1.0.
pub fn level_at(pattern: Pattern, t_ms: u64, pwm: bool, dim_level: f64) -> f64 {
    let square = |on_ms: u64, period_ms: u64| {
        if t_ms % period_ms < on_ms {
            1.0
        } else {
            0.0
        }
    };
    match pattern {
        Pattern::Off => 0.0,
        Pattern::Solid => 1.0,
        Pattern::Dim if pwm => dim_level,
        Pattern::Dim => square(100, 3000),
        Pattern::Pulse if pwm => {
            // Starts bright so a change shows at once, then breathes over 2 s.
            let phase = (t_ms % 2000) as f64 / 2000.0 * std::f64::consts::TAU;
            0.05 + 0.95 * (0.5 + 0.5 * phase.cos())
        }
        Pattern::Pulse => square(1000, 2000),
        Pattern::Blink => square(500, 1000),
        Pattern::Flash => square(125, 250),
    }
}

/// When (ms after the pattern started, after `t_ms`) the level may next change; `None` for a
/// steady pattern.
pub fn next_change(pattern: Pattern, t_ms: u64, pwm: bool) -> Option<u64> {
    let edges = |on_ms: u64, period_ms: u64| {
        let base = t_ms - t_ms % period_ms;
        let e = if t_ms % period_ms < on_ms {
            base + on_ms
        } else {
            base + period_ms
        };
        Some(e)
    };
    match pattern {
        Pattern::Off | Pattern::Solid => None,
        Pattern::Dim if pwm => None,
        Pattern::Dim => edges(100, 3000),
        // 50 steps a second are smooth enough for a breathing LED.
        Pattern::Pulse if pwm => Some(t_ms - t_ms % 20 + 20),
        Pattern::Pulse => edges(1000, 2000),
        Pattern::Blink => edges(500, 1000),
        Pattern::Flash => edges(125, 250),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::state::StateMachine;
    use crate::config::controls::{Color, Look};
    use crate::config::{AudioSource, Config};
    use crate::media::MediaNotice;
    use crate::model::RecordingTarget;

    fn playing() -> StateMachine {
        let mut s = StateMachine::new(&Config::default(), "b".into());
        s.media_notice(MediaNotice::State {
            state: MediaState::Playing,
            encoder: Some("x264enc".into()),
        });
        s.media_notice(MediaNotice::MicMuted(false));
        s
    }

    fn cfg() -> LedConfig {
        LedConfig::default()
    }

    fn rgb(p: LedPatterns) -> [Pattern; 3] {
        [p.red, p.green, p.blue]
    }

    #[test]
    fn ready_is_dim_white() {
        let s = playing();
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Idle));
        assert_eq!(rgb(pattern_for(s.state(), &cfg())), [Pattern::Dim; 3]);
    }

    #[test]
    fn muted_is_solid_red_and_nothing_else() {
        let mut s = playing();
        s.media_notice(MediaNotice::MicMuted(true));
        assert_eq!(
            rgb(pattern_for(s.state(), &cfg())),
            [Pattern::Solid, Pattern::Off, Pattern::Off]
        );
    }

    #[test]
    fn muted_beats_everything_else() {
        let mut s = playing();
        s.media_notice(MediaNotice::MicMuted(true));
        s.state_mut().meeting_state = MeetingState::Failed;
        s.state_mut().identify_until_ms = Some(u64::MAX);
        s.media_notice(MediaNotice::Error(crate::media::MediaError::Runtime(
            "x".into(),
        )));
        s.media_notice(MediaNotice::State {
            state: MediaState::Restarting,
            encoder: None,
        });
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Muted));
    }

    #[test]
    fn without_an_audio_source_the_mic_is_never_shown_muted() {
        let mut c = Config::default();
        c.media.audio.source = AudioSource::None;
        let mut s = StateMachine::new(&c, "b".into());
        s.media_notice(MediaNotice::State {
            state: MediaState::Playing,
            encoder: None,
        });
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Idle));
    }

    #[test]
    fn a_call_is_solid_blue_and_connecting_pulses() {
        let mut s = playing();
        s.state_mut().meeting_state = MeetingState::Connecting;
        assert_eq!(
            rgb(pattern_for(s.state(), &cfg())),
            [Pattern::Off, Pattern::Off, Pattern::Pulse]
        );
        s.state_mut().meeting_state = MeetingState::Disconnected;
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Connecting));
        s.state_mut().meeting_state = MeetingState::Connected;
        assert_eq!(
            rgb(pattern_for(s.state(), &cfg())),
            [Pattern::Off, Pattern::Off, Pattern::Solid]
        );
    }

    #[test]
    fn a_meeting_to_join_breathes_white_until_the_box_is_in_it() {
        let mut s = playing();
        s.state_mut().calendar = Some(crate::agent::state::CalendarStatus {
            joinable: Some("standup".into()),
            ..Default::default()
        });
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::MeetingSoon));
        assert_eq!(rgb(pattern_for(s.state(), &cfg())), [Pattern::Pulse; 3]);
        s.state_mut().meeting_state = MeetingState::Connecting;
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Connecting));
        s.state_mut().meeting_state = MeetingState::Connected;
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::InCall));
        s.state_mut().meeting_state = MeetingState::Closed;
        s.media_notice(MediaNotice::MicMuted(true));
        assert_eq!(
            shown_state(s.state(), &cfg()),
            Some(LedState::Muted),
            "a muted mic still comes first"
        );
        s.media_notice(MediaNotice::MicMuted(false));
        s.state_mut().calendar.as_mut().unwrap().joinable = None;
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Idle));
    }

    #[test]
    fn errors_flash_red_but_booting_does_not() {
        let s = StateMachine::new(&Config::default(), "b".into());
        assert!(!s.state().health.ok, "media is not playing yet");
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Muted));
        let mut s = StateMachine::new(&Config::default(), "b".into());
        s.media_notice(MediaNotice::MicMuted(false));
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Starting));
        s.media_notice(MediaNotice::Error(crate::media::MediaError::Runtime(
            "camera gone".into(),
        )));
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Error));
        assert_eq!(
            rgb(pattern_for(s.state(), &cfg())),
            [Pattern::Flash, Pattern::Off, Pattern::Off]
        );
        let mut s = playing();
        s.state_mut().meeting_state = MeetingState::Failed;
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Error));
    }

    #[test]
    fn identify_blinks_white_over_a_call() {
        let mut s = playing();
        s.state_mut().meeting_state = MeetingState::Connected;
        s.state_mut().identify_until_ms = Some(u64::MAX);
        assert_eq!(rgb(pattern_for(s.state(), &cfg())), [Pattern::Blink; 3]);
    }

    #[test]
    fn local_recording_lights_the_call_led() {
        let mut s = playing();
        s.command(
            &crate::command::Command::StartRecording {
                target: RecordingTarget::Local,
            },
            0,
        );
        s.media_notice(MediaNotice::Consumer {
            id: crate::media::ConsumerId::Recorder,
            event: crate::media::ConsumerEvent::Started,
        });
        assert_eq!(shown_state(s.state(), &cfg()), Some(LedState::Recording));
        assert_eq!(pattern_for(s.state(), &cfg()).blue, Pattern::Solid);
    }

    #[test]
    fn priority_and_looks_come_from_config() {
        let mut c = cfg();
        c.priority = vec![LedState::InCall, LedState::Muted];
        c.looks.in_call = Look {
            color: Color::Green,
            pattern: Pattern::Solid,
        };
        let mut s = playing();
        s.media_notice(MediaNotice::MicMuted(true));
        s.state_mut().meeting_state = MeetingState::Connected;
        assert_eq!(
            rgb(pattern_for(s.state(), &c)),
            [Pattern::Off, Pattern::Solid, Pattern::Off]
        );
        s.state_mut().meeting_state = MeetingState::Closed;
        assert_eq!(shown_state(s.state(), &c), Some(LedState::Muted));
        s.media_notice(MediaNotice::MicMuted(false));
        assert_eq!(
            pattern_for(s.state(), &c),
            LedPatterns::OFF,
            "no listed state holds"
        );
    }

    #[test]
    fn patterns_start_lit_so_a_change_shows_at_once() {
        for p in [
            Pattern::Solid,
            Pattern::Dim,
            Pattern::Pulse,
            Pattern::Blink,
            Pattern::Flash,
        ] {
            assert!(level_at(p, 0, false, 0.15) > 0.5, "{p:?}");
            assert!(level_at(p, 0, true, 0.15) > 0.1, "{p:?}");
        }
        assert_eq!(level_at(Pattern::Off, 0, true, 0.15), 0.0);
    }

    #[test]
    fn on_off_patterns_toggle_at_their_edges() {
        assert_eq!(level_at(Pattern::Blink, 499, false, 0.0), 1.0);
        assert_eq!(level_at(Pattern::Blink, 500, false, 0.0), 0.0);
        assert_eq!(next_change(Pattern::Blink, 0, false), Some(500));
        assert_eq!(next_change(Pattern::Blink, 500, false), Some(1000));
        assert_eq!(next_change(Pattern::Flash, 130, false), Some(250));
        assert_eq!(level_at(Pattern::Dim, 150, false, 0.15), 0.0);
        assert_eq!(next_change(Pattern::Dim, 150, false), Some(3000));
        assert_eq!(next_change(Pattern::Solid, 10, false), None);
        assert_eq!(level_at(Pattern::Dim, 10, true, 0.15), 0.15);
        assert!(level_at(Pattern::Pulse, 1000, true, 0.0) < 0.1);
    }
}

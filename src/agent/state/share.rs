//! The content share's rules, pure: the box's own share (asked for by a command or by `auto`
//! when the grabber sees a signal), remote participants' shares, and the one presenter they
//! leave.
//!
//! - The box's share is shown on (`stream-enabled` kind `share`) only once the engine says it
//!   runs, and off once it says it stopped or failed.
//! - One presenter at a time. With `last-wins`, a remote share that starts stops the box's,
//!   and the box's may start while a remote presents (it takes over). With `first-wins`, the
//!   box's start is refused while a remote presents, and a remote share that starts while the
//!   box presents does not take over. Either way an event says what happened.
//! - `auto`: the grabber's signal coming starts the share, its going stops it. A share stopped
//!   by hand while the signal stays is not restarted until the signal goes and comes back.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::config::{Config, PresenterRule};
use crate::event::Event;
use crate::media::MediaAction;
use crate::model::StreamKind;

/// Stream id of the box's share.
pub const LOCAL_SHARE_STREAM: &str = "local-share";

/// Where the box's share is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Local {
    #[default]
    Off,
    /// Asked of the engine, not yet confirmed.
    Starting,
    On,
    /// Asked to stop, not yet confirmed.
    Stopping,
}

/// What the rules ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Media(MediaAction),
    Emit(Event),
}

/// The share's rules and what they know.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareRules {
    configured: bool,
    auto: bool,
    rule: Option<PresenterRule>,
    /// The box's participant id (its id in the room once joined).
    local_id: String,
    pub local: Local,
    /// `stream-enabled` was said for the box's share (and `stream-disabled` not yet).
    shown: bool,
    /// The grabber's signal as last reported.
    signal: bool,
    /// Remote participants sharing, in the order they started.
    remotes: Vec<String>,
    /// Who presents.
    pub presenter: Option<String>,
}

impl ShareRules {
    pub fn from_config(config: &Config, local_id: String) -> ShareRules {
        let s = &config.media.share;
        ShareRules {
            configured: s.configured(),
            auto: s.auto,
            rule: Some(s.presenter),
            local_id,
            ..ShareRules::default()
        }
    }

    /// Takes a new configuration, keeping what is running.
    pub fn reconfigure(&mut self, config: &Config) {
        let s = &config.media.share;
        self.configured = s.configured();
        self.auto = s.auto;
        self.rule = Some(s.presenter);
    }

    fn first_wins(&self) -> bool {
        self.rule == Some(PresenterRule::FirstWins)
    }

    /// Whether the box's share runs or will (for a toggle).
    pub fn target_on(&self) -> bool {
        matches!(self.local, Local::Starting | Local::On)
    }

    /// `start-share`: the effects, or why not.
    pub fn start(&mut self) -> Result<Vec<Out>, (ErrorCode, String)> {
        if !self.configured {
            return Err((
                ErrorCode::Unavailable,
                "no share source is configured ([media.share] source)".into(),
            ));
        }
        if self.target_on() {
            return Ok(Vec::new());
        }
        if let (true, Some(p)) = (self.first_wins(), self.remotes.last()) {
            return Err((
                ErrorCode::InvalidState,
                format!("{p} is presenting (media.share.presenter = \"first-wins\")"),
            ));
        }
        self.local = Local::Starting;
        Ok(vec![Out::Media(MediaAction::StartShare)])
    }

    /// `stop-share`.
    pub fn stop(&mut self) -> Vec<Out> {
        if !self.target_on() {
            return Vec::new();
        }
        self.local = Local::Stopping;
        vec![Out::Media(MediaAction::StopShare)]
    }

    /// The engine started the share.
    pub fn started(&mut self) -> Vec<Out> {
        if self.local == Local::On {
            return Vec::new();
        }
        if self.local == Local::Stopping {
            // Stopped meanwhile: the engine's stop is on its way.
            return Vec::new();
        }
        self.local = Local::On;
        self.shown = true;
        let mut out = vec![Out::Emit(Event::stream(
            true,
            self.local_id.clone(),
            StreamKind::Share,
            LOCAL_SHARE_STREAM.into(),
        ))];
        out.extend(self.set_presenter(Some(self.local_id.clone())));
        out
    }

    /// The engine stopped the share, on request or because its source failed.
    pub fn stopped(&mut self) -> Vec<Out> {
        self.local = Local::Off;
        let mut out = Vec::new();
        if std::mem::take(&mut self.shown) {
            out.push(Out::Emit(Event::stream(
                false,
                self.local_id.clone(),
                StreamKind::Share,
                LOCAL_SHARE_STREAM.into(),
            )));
        }
        if self.presenter.as_deref() == Some(self.local_id.as_str()) {
            out.extend(self.set_presenter(self.remotes.last().cloned()));
        }
        out
    }

    /// The grabber's signal came (true) or went (false).
    pub fn signal(&mut self, on: bool) -> Vec<Out> {
        let changed = self.signal != on;
        self.signal = on;
        if !self.auto || !changed {
            return Vec::new();
        }
        if on {
            match self.start() {
                Ok(out) => out,
                Err(_) => match self.remotes.last() {
                    Some(p) => vec![Out::Emit(Event::ShareRefused {
                        participant_id: p.clone(),
                        outcome: "refused".into(),
                    })],
                    None => Vec::new(),
                },
            }
        } else {
            self.stop()
        }
    }

    /// A remote participant started (true) or stopped (false) sharing.
    pub fn remote(&mut self, participant_id: &str, sharing: bool) -> Vec<Out> {
        let mut out = Vec::new();
        if sharing {
            if self.remotes.iter().any(|p| p == participant_id) {
                return out;
            }
            self.remotes.push(participant_id.to_string());
            if self.target_on() {
                if self.first_wins() {
                    // The box keeps presenting; the remote's share is not the presenter.
                    return out;
                }
                out.extend(self.stop());
                out.push(Out::Emit(Event::ShareRefused {
                    participant_id: participant_id.to_string(),
                    outcome: "stopped".into(),
                }));
            }
            out.extend(self.set_presenter(Some(participant_id.to_string())));
        } else {
            let before = self.remotes.len();
            self.remotes.retain(|p| p != participant_id);
            if before == self.remotes.len() {
                return out;
            }
            if self.presenter.as_deref() == Some(participant_id) {
                let next = if self.local == Local::On {
                    Some(self.local_id.clone())
                } else {
                    self.remotes.last().cloned()
                };
                out.extend(self.set_presenter(next));
            }
        }
        out
    }

    /// Every remote share ended with the room (left, or the connection dropped).
    pub fn room_gone(&mut self) -> Vec<Out> {
        let remotes = std::mem::take(&mut self.remotes);
        if remotes.iter().any(|p| self.presenter.as_deref() == Some(p)) {
            let next = (self.local == Local::On).then(|| self.local_id.clone());
            return self.set_presenter(next);
        }
        Vec::new()
    }

    fn set_presenter(&mut self, p: Option<String>) -> Vec<Out> {
        if self.presenter == p {
            return Vec::new();
        }
        self.presenter = p;
        vec![self.presenter_event()]
    }

    fn presenter_event(&self) -> Out {
        Out::Emit(Event::PresenterChanged {
            participant_id: self.presenter.clone(),
        })
    }
}

impl StateMachine {
    /// Carries out what the rules asked, and shows where the share and the presenter are.
    pub(super) fn share_out(&mut self, out: Vec<Out>) -> Vec<Effect> {
        self.state.presenter = self.share.presenter.clone();
        self.state.media.share = match (self.share.configured, self.share.local) {
            (false, _) => "none",
            (true, Local::Off) => "off",
            (true, Local::Starting) => "starting",
            (true, Local::On) => "on",
            (true, Local::Stopping) => "stopping",
        }
        .into();
        out.into_iter()
            .map(|o| match o {
                Out::Media(a) => Effect::Media(a),
                Out::Emit(e) => Effect::Emit(e),
            })
            .collect()
    }

    /// `start-share`, `stop-share` and `toggle-share`.
    pub(super) fn share_command(&mut self, on: Option<bool>) -> Step {
        let on = on.unwrap_or(!self.share.target_on());
        let out = if on {
            match self.share.start() {
                Ok(out) => out,
                Err((code, message)) => return Step::err(code, message),
            }
        } else {
            self.share.stop()
        };
        let fx = self.share_out(out);
        Step::ok(fx)
    }

    /// What the engine said of the share.
    pub(super) fn share_notice(&mut self, n: crate::media::ShareNotice) -> Vec<Effect> {
        use crate::media::ShareNotice;
        // The room's publication follows what the engine confirmed.
        let room = match &n {
            ShareNotice::Started => Some(true),
            ShareNotice::Stopped | ShareNotice::Failed(_) => Some(false),
            ShareNotice::Signal(_) => None,
        };
        let out = match n {
            ShareNotice::Started => self.share.started(),
            ShareNotice::Stopped => self.share.stopped(),
            ShareNotice::Failed(e) => {
                self.state.media.last_error = Some(format!("share: {e}"));
                self.share.stopped()
            }
            ShareNotice::Signal(on) => self.share.signal(on),
        };
        let mut fx = self.share_out(out);
        if let (Some(on), true) = (room, self.setup.room_backend) {
            fx.push(Effect::Room(crate::room::RoomAction::SetShare(on)));
        }
        fx
    }

    /// A remote participant's share started or stopped, or the room went (`None`).
    pub(super) fn remote_share(&mut self, change: Option<(&str, bool)>) -> Vec<Effect> {
        let out = match change {
            Some((id, sharing)) => self.share.remote(id, sharing),
            None => self.share.room_gone(),
        };
        self.share_out(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShareSource;

    fn rules(auto: bool, rule: PresenterRule) -> ShareRules {
        let mut c = Config::default();
        c.media.share.source = ShareSource::Test;
        c.media.share.auto = auto;
        c.media.share.presenter = rule;
        ShareRules::from_config(&c, "box".into())
    }

    fn presenters(out: &[Out]) -> Vec<Option<String>> {
        out.iter()
            .filter_map(|o| match o {
                Out::Emit(Event::PresenterChanged { participant_id }) => {
                    Some(participant_id.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn asks(out: &[Out], a: MediaAction) -> bool {
        out.contains(&Out::Media(a))
    }

    #[test]
    fn without_a_source_start_is_unavailable() {
        let mut r = ShareRules::from_config(&Config::default(), "box".into());
        assert_eq!(r.start().unwrap_err().0, ErrorCode::Unavailable);
        assert_eq!(r.local, Local::Off);
    }

    #[test]
    fn the_share_shows_only_once_the_engine_confirms() {
        let mut r = rules(false, PresenterRule::LastWins);
        let out = r.start().unwrap();
        assert!(asks(&out, MediaAction::StartShare));
        assert!(presenters(&out).is_empty(), "not presenting before it runs");
        assert!(r.start().unwrap().is_empty(), "a second start asks nothing");
        let out = r.started();
        assert!(out.contains(&Out::Emit(Event::StreamEnabled {
            participant_id: "box".into(),
            kind: StreamKind::Share,
            stream_id: LOCAL_SHARE_STREAM.into(),
        })));
        assert_eq!(presenters(&out), [Some("box".into())]);
        let out = r.stop();
        assert!(asks(&out, MediaAction::StopShare));
        let out = r.stopped();
        assert!(matches!(
            &out[0],
            Out::Emit(Event::StreamDisabled {
                kind: StreamKind::Share,
                ..
            })
        ));
        assert_eq!(presenters(&out), [None]);
        assert!(r.stop().is_empty(), "stopping a stopped share asks nothing");
    }

    #[test]
    fn a_failed_start_leaves_nothing_on() {
        let mut r = rules(false, PresenterRule::LastWins);
        r.start().unwrap();
        let out = r.stopped();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(r.local, Local::Off);
        assert!(!r.target_on());
    }

    #[test]
    fn last_wins_a_remote_share_stops_the_boxs() {
        let mut r = rules(false, PresenterRule::LastWins);
        r.start().unwrap();
        r.started();
        let out = r.remote("alice", true);
        assert!(asks(&out, MediaAction::StopShare));
        assert!(out.contains(&Out::Emit(Event::ShareRefused {
            participant_id: "alice".into(),
            outcome: "stopped".into(),
        })));
        assert_eq!(presenters(&out), [Some("alice".into())]);
        // Our stop confirms: alice stays presenter, no second change.
        let out = r.stopped();
        assert!(presenters(&out).is_empty(), "{out:?}");
        // The box may take over again.
        assert!(asks(&r.start().unwrap(), MediaAction::StartShare));
        assert_eq!(presenters(&r.started()), [Some("box".into())]);
        // alice stops: the box still presents, nothing changes.
        assert!(presenters(&r.remote("alice", false)).is_empty());
    }

    #[test]
    fn first_wins_refuses_the_box_and_keeps_it_against_remotes() {
        let mut r = rules(false, PresenterRule::FirstWins);
        assert_eq!(presenters(&r.remote("alice", true)), [Some("alice".into())]);
        let (code, msg) = r.start().unwrap_err();
        assert_eq!(code, ErrorCode::InvalidState);
        assert!(msg.contains("alice"), "{msg}");
        assert_eq!(presenters(&r.remote("alice", false)), [None]);
        r.start().unwrap();
        r.started();
        let out = r.remote("bob", true);
        assert!(out.is_empty(), "the box keeps presenting: {out:?}");
        assert_eq!(r.presenter.as_deref(), Some("box"));
        // The box stops: bob, still sharing, presents.
        r.stop();
        assert_eq!(presenters(&r.stopped()), [Some("bob".into())]);
    }

    #[test]
    fn auto_follows_the_signal_and_a_manual_stop_holds_until_it_returns() {
        let mut r = rules(true, PresenterRule::LastWins);
        assert!(asks(&r.signal(true), MediaAction::StartShare));
        r.started();
        assert!(
            r.signal(true).is_empty(),
            "the same signal twice is no change"
        );
        assert!(asks(&r.signal(false), MediaAction::StopShare));
        r.stopped();
        assert!(asks(&r.signal(true), MediaAction::StartShare));
        r.started();
        r.stop();
        r.stopped();
        assert_eq!(
            r.local,
            Local::Off,
            "stopped by hand while the signal stays"
        );
        assert!(r.signal(false).is_empty());
        assert!(asks(&r.signal(true), MediaAction::StartShare));
    }

    #[test]
    fn auto_refused_by_first_wins_says_so() {
        let mut r = rules(true, PresenterRule::FirstWins);
        r.remote("alice", true);
        let out = r.signal(true);
        assert_eq!(
            out,
            [Out::Emit(Event::ShareRefused {
                participant_id: "alice".into(),
                outcome: "refused".into(),
            })]
        );
        assert_eq!(r.local, Local::Off);
    }

    #[test]
    fn without_auto_the_signal_starts_nothing() {
        let mut r = rules(false, PresenterRule::LastWins);
        assert!(r.signal(true).is_empty());
        assert!(r.signal(false).is_empty());
    }

    #[test]
    fn leaving_the_room_ends_remote_presenters() {
        let mut r = rules(false, PresenterRule::LastWins);
        r.remote("alice", true);
        assert_eq!(presenters(&r.room_gone()), [None]);
        r.start().unwrap();
        r.started();
        r.remote("bob", true);
        r.stopped();
        assert_eq!(r.presenter.as_deref(), Some("bob"));
        assert_eq!(presenters(&r.room_gone()), [None]);
    }

    #[test]
    fn a_remote_share_in_the_room_stops_the_boxs_and_moves_the_presenter() {
        use crate::media::{MediaNotice, ShareNotice};
        use crate::model::{Mode, Participant};
        use crate::room::RoomNotice;
        let mut c = Config::default();
        c.media.share.source = ShareSource::Test;
        let mut m = StateMachine::new(&c, "box".into());
        m.command(&crate::command::Command::StartShare, 0);
        m.media_notice(MediaNotice::Share(ShareNotice::Started));
        assert_eq!(m.state().presenter.as_deref(), Some("box"));
        m.room_notice(RoomNotice::ParticipantJoined(Participant {
            participant_id: "alice".into(),
            display_name: "Alice".into(),
            local: false,
            mode: Mode::SendAndReceive,
            metadata: Default::default(),
            mic_on: true,
            webcam_on: true,
            streams: Default::default(),
        }));
        let fx = m.room_notice(RoomNotice::Stream {
            participant_id: "alice".into(),
            kind: StreamKind::Share,
            enabled: true,
        });
        assert!(
            fx.contains(&Effect::Media(MediaAction::StopShare)),
            "{fx:?}"
        );
        assert!(fx.contains(&Effect::Emit(Event::PresenterChanged {
            participant_id: Some("alice".into())
        })));
        assert_eq!(m.state().presenter.as_deref(), Some("alice"));
        assert!(
            m.state().participants["alice"].webcam_on,
            "a share is not the camera"
        );
        let fx = m.room_notice(RoomNotice::ParticipantLeft("alice".into()));
        assert!(fx.contains(&Effect::Emit(Event::PresenterChanged {
            participant_id: None
        })));
    }
}

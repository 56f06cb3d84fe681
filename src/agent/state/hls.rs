//! The HLS half of the state machine: `start-hls` and `stop-hls`, and what the HLS consumer
//! reports. The state shows STARTED, with the playback URL, once the first playlist exists.

use super::{Effect, StateMachine, Step};
use crate::command::ErrorCode;
use crate::config::Config;
use crate::event::Event;
use crate::media::hls::{HlsSpec, PLAYLIST};
use crate::media::{ConsumerEvent, ConsumerId, ConsumerSpec, MediaAction};
use crate::model::ServiceState;
use serde::{Deserialize, Serialize};

/// HLS served by the box.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HlsStatus {
    pub state: ServiceState,
    /// Where players fetch it, while it runs.
    pub playback_url: Option<String>,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// What it carries (or will, once started).
    pub source: crate::model::OutputSource,
}

/// `[hls]` as the machine uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct HlsSetup {
    /// What the HLS consumer is started with.
    pub(super) spec: Option<HlsSpec>,
    pub(super) autostart: bool,
}

impl HlsSetup {
    pub(super) fn from_config(config: &Config) -> HlsSetup {
        HlsSetup {
            spec: Some(HlsSpec {
                dir: config.hls_dir(),
                segment: config.hls.segment,
                part: config.hls.part,
                playlist_length: config.hls.playlist_length,
                source: config.hls.source,
            }),
            autostart: config.hls.autostart,
        }
    }
}

impl StateMachine {
    fn hls_url(&self) -> Option<String> {
        self.setup
            .http_base
            .as_ref()
            .map(|b| format!("{b}/hls/{PLAYLIST}"))
    }

    pub(super) fn start_hls(&mut self) -> Step {
        if !self.setup.media.has_video {
            return Step::err(ErrorCode::Unavailable, "there is no video source to serve");
        }
        if self.setup.http_base.is_none() {
            return Step::err(
                ErrorCode::Unavailable,
                "HLS needs the HTTP server, and [http] is off",
            );
        }
        if self.state.hls.state.is_active() {
            return Step::err(ErrorCode::InvalidState, "HLS is already on");
        }
        Step::ok(self.hls_effects())
    }

    /// Effects that start HLS (also at start-up with `[hls] autostart`).
    pub(super) fn hls_effects(&mut self) -> Vec<Effect> {
        let Some(spec) = self.setup.hls.spec.clone() else {
            return Vec::new();
        };
        self.state.hls = HlsStatus {
            state: ServiceState::Starting,
            playback_url: None,
            last_error: None,
            source: spec.source,
        };
        vec![
            Effect::Emit(Event::HlsStateChanged {
                state: ServiceState::Starting,
                playback_url: None,
                reason: None,
            }),
            Effect::Media(MediaAction::Attach {
                id: ConsumerId::Hls,
                spec: ConsumerSpec::Hls(spec),
            }),
        ]
    }

    pub(super) fn stop_hls(&mut self) -> Step {
        if !self.state.hls.state.is_active() {
            return Step::err(ErrorCode::InvalidState, "HLS is not on");
        }
        self.state.hls.state = ServiceState::Stopping;
        Step::ok(vec![
            Effect::Emit(Event::HlsStateChanged {
                state: ServiceState::Stopping,
                playback_url: None,
                reason: None,
            }),
            Effect::Media(MediaAction::Detach {
                id: ConsumerId::Hls,
            }),
        ])
    }

    /// What the HLS consumer reported.
    pub(super) fn hls_notice(&mut self, event: ConsumerEvent) -> Vec<Effect> {
        let (state, reason) = match event {
            ConsumerEvent::Started => (ServiceState::Started, None),
            ConsumerEvent::Finished => (ServiceState::Stopped, None),
            ConsumerEvent::Failed(e) | ConsumerEvent::Retrying { error: e, .. } => {
                (ServiceState::Failed, Some(e.to_string()))
            }
            ConsumerEvent::FileClosed { .. } => return Vec::new(),
        };
        if self.state.hls.state == state {
            return Vec::new();
        }
        let playback_url = (state == ServiceState::Started)
            .then(|| self.hls_url())
            .flatten();
        self.state.hls = HlsStatus {
            state,
            playback_url: playback_url.clone(),
            last_error: reason.clone(),
            source: self.state.hls.source,
        };
        vec![Effect::Emit(Event::HlsStateChanged {
            state,
            playback_url,
            reason,
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn hls_shows_its_url_once_the_first_playlist_exists() {
        let mut s = state();
        assert_eq!(
            s.start_hls().reply.unwrap_err().code,
            ErrorCode::Unavailable
        );
        s.set_http_base(Some("http://127.0.0.1:8480".into()));
        let step = s.start_hls();
        assert!(step.reply.is_ok());
        assert_eq!(s.state().hls.state, ServiceState::Starting);
        assert_eq!(
            s.start_hls().reply.unwrap_err().code,
            ErrorCode::InvalidState
        );
        let fx = s.hls_notice(ConsumerEvent::Started);
        assert_eq!(
            fx,
            vec![Effect::Emit(Event::HlsStateChanged {
                state: ServiceState::Started,
                playback_url: Some("http://127.0.0.1:8480/hls/index.m3u8".into()),
                reason: None,
            })]
        );
        assert!(s.stop_hls().reply.is_ok());
        s.hls_notice(ConsumerEvent::Finished);
        assert_eq!(s.state().hls.state, ServiceState::Stopped);
        assert_eq!(s.state().hls.playback_url, None);
    }
}

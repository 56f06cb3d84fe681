//! The fleet link in the state: whether the box reaches its broker, since when, and the last
//! error in words. The fleet client reports each change ([`FleetLink`]); a box that cannot
//! reach its broker is unhealthy and says why, instead of `health ok`.

use super::{Effect, StateMachine};
use crate::config::Config;
use serde::{Deserialize, Serialize};

/// The lifecycle of the connection to the fleet's broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FleetLinkState {
    /// Started, or reconfigured; no answer from the broker yet.
    Connecting,
    /// The broker accepted the box.
    Connected,
    /// The last attempt failed, or the link dropped; retrying with backoff.
    Disconnected,
}

/// The fleet link, as `get-state` and `roombox status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetStatus {
    /// The broker URL.
    pub broker: String,
    /// Connected or not.
    pub state: FleetLinkState,
    /// When `state` began, ms since the epoch.
    pub since_ms: u64,
    /// The last connection error in words (kept after a reconnect, so a flapping link shows
    /// what went wrong last).
    pub last_error: Option<String>,
    /// What to do about `last_error`, when known.
    pub fix: Option<String>,
}

/// What the fleet client reports about its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetLink {
    /// Connecting to `broker` (at start-up and after a reconfiguration).
    Connecting {
        /// The broker URL.
        broker: String,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// The broker accepted the box.
    Connected {
        /// Which broker (with failover brokers, the one in use).
        broker: String,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// An attempt failed or the link dropped. Reported when the reason changes, not on every
    /// retry.
    Down {
        /// What is wrong.
        error: String,
        /// How to fix it, when known.
        fix: Option<String>,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// The fleet client stopped.
    Off,
}

/// `[fleet]` as the machine uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct FleetSetup {
    /// A broker is configured: link reports are taken in.
    pub(super) enabled: bool,
}

impl FleetSetup {
    pub(super) fn from_config(config: &Config) -> FleetSetup {
        FleetSetup {
            enabled: config.fleet.enabled(),
        }
    }
}

impl StateMachine {
    /// Takes `[fleet]`; turning it off clears the link.
    pub(super) fn configure_fleet(&mut self, config: &Config) {
        self.setup.fleet = FleetSetup::from_config(config);
        if !self.setup.fleet.enabled {
            self.state.fleet = None;
        }
    }

    /// Takes in a report from the fleet client. Ignored while `[fleet]` is off, so a report
    /// from a client being stopped cannot bring back a link that is no longer configured.
    pub fn fleet_notice(&mut self, link: FleetLink) -> Vec<Effect> {
        if !self.setup.fleet.enabled {
            self.state.fleet = None;
            return Vec::new();
        }
        match link {
            FleetLink::Connecting { broker, at_ms } => {
                let (last_error, fix) = match self.state.fleet.take() {
                    Some(f) if f.broker == broker => (f.last_error, f.fix),
                    _ => (None, None),
                };
                self.state.fleet = Some(FleetStatus {
                    broker,
                    state: FleetLinkState::Connecting,
                    since_ms: at_ms,
                    last_error,
                    fix,
                });
            }
            FleetLink::Connected { broker, at_ms } => {
                if let Some(f) = &mut self.state.fleet {
                    f.broker = broker;
                    f.state = FleetLinkState::Connected;
                    f.since_ms = at_ms;
                }
            }
            FleetLink::Down { error, fix, at_ms } => {
                if let Some(f) = &mut self.state.fleet {
                    if f.state != FleetLinkState::Disconnected {
                        f.since_ms = at_ms;
                    }
                    f.state = FleetLinkState::Disconnected;
                    f.last_error = Some(error);
                    f.fix = fix;
                }
            }
            FleetLink::Off => self.state.fleet = None,
        }
        self.refresh_health();
        Vec::new()
    }

    /// The health problem the fleet link adds, if any.
    pub(super) fn fleet_problem(&self) -> Option<String> {
        let f = self.state.fleet.as_ref()?;
        (f.state == FleetLinkState::Disconnected).then(|| {
            format!(
                "fleet: cannot reach {}: {}",
                f.broker,
                f.last_error.as_deref().unwrap_or("unknown error")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn state(fleet: bool) -> StateMachine {
        let mut c = Config::default();
        if fleet {
            c.fleet.broker = "mqtts://b:8883".into();
        }
        let mut s = StateMachine::new(&c, "box".into());
        // Health here is about the fleet alone.
        s.state_mut().media.state = crate::event::MediaState::Playing;
        s.refresh_health();
        s
    }

    #[test]
    fn a_refused_link_is_unhealthy_with_its_reason_until_it_connects() {
        let mut s = state(true);
        s.fleet_notice(FleetLink::Connecting {
            broker: "mqtts://b:8883".into(),
            at_ms: 1,
        });
        assert!(s.state().health.ok, "connecting is not a problem yet");
        s.fleet_notice(FleetLink::Down {
            error: "certificate is version 1".into(),
            fix: Some("re-issue".into()),
            at_ms: 2,
        });
        s.fleet_notice(FleetLink::Down {
            error: "still version 1".into(),
            fix: None,
            at_ms: 5,
        });
        let f = s.state().fleet.clone().unwrap();
        assert_eq!(f.state, FleetLinkState::Disconnected);
        assert_eq!(
            f.since_ms, 2,
            "since the link went down, not the latest retry"
        );
        assert!(!s.state().health.ok);
        assert!(s.state().health.problems[0].contains("still version 1"));
        assert!(
            s.state().summary().ends_with(" | fleet DISCONNECTED"),
            "{}",
            s.state().summary()
        );
        s.fleet_notice(FleetLink::Connected {
            broker: "mqtt://127.0.0.1:1883".into(),
            at_ms: 9,
        });
        assert!(s.state().health.ok);
        let f = s.state().fleet.clone().unwrap();
        assert_eq!((f.state, f.since_ms), (FleetLinkState::Connected, 9));
        assert_eq!(f.last_error.as_deref(), Some("still version 1"));
    }

    #[test]
    fn without_a_fleet_there_is_no_link_and_late_reports_are_ignored() {
        let mut s = state(false);
        s.fleet_notice(FleetLink::Down {
            error: "x".into(),
            fix: None,
            at_ms: 1,
        });
        assert!(s.state().fleet.is_none() && s.state().health.ok);
        let mut s = state(true);
        s.fleet_notice(FleetLink::Connecting {
            broker: "b".into(),
            at_ms: 1,
        });
        s.configure(&Config::default());
        assert!(
            s.state().fleet.is_none(),
            "a reload that turns the fleet off clears it"
        );
    }
}

//! The livestream half of the state machine: RTMP outputs started and stopped by command, and the
//! fallback that streams on its own while the room is unreachable.
//!
//! Each output is a media consumer under [`ConsumerId::Rtmp`] and its name. Its state is what
//! the engine last reported: STARTED once the ingest accepted the stream, FAILED (with the
//! reason, retrying) when it lost it. Stream keys never enter this state: outputs show their URL
//! as `rtmp://host/app/****`.
//!
//! `start-livestream` is checked here, then its hosts are resolved by the agent loop
//! ([`Effect::ResolveHosts`]): a host that does not resolve is an error reply before anything
//! starts, not an output that retries for ever.

use super::{Effect, StateMachine, Step, Token};
use crate::command::{CommandError, ErrorCode, LivestreamOutput};
use crate::config::{FallbackReturn, LivestreamConfig};
use crate::event::Event;
use crate::media::rtmp::RtmpSpec;
use crate::media::{ConsumerEvent, ConsumerId, ConsumerSpec, MediaAction};
use crate::model::ServiceState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

mod fallback;
pub use fallback::FallbackStatus;

/// The RTMP simulcast, for `get-state` and `roombox status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LivestreamStatus {
    /// Overall: STARTED while any output streams, STARTING while one connects, FAILED when
    /// every output has failed, STOPPED with none.
    pub state: ServiceState,
    /// Every output by name.
    pub outputs: BTreeMap<String, OutputStatus>,
    pub fallback: FallbackStatus,
}

/// One RTMP output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputStatus {
    /// The URL with the key shown as `****`.
    pub url: String,
    /// Its lifecycle.
    pub state: ServiceState,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// Times the ingest was lost and the output rebuilt.
    pub retries: u32,
    /// True for the fallback's output.
    pub fallback: bool,
    /// What it carries.
    #[serde(default)]
    pub source: crate::model::OutputSource,
}

/// The `[livestream]` settings the state keeps: outputs resolved (stream key files read) by the
/// agent, which does the I/O.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LivestreamSetup {
    /// Configured outputs by name: the spec, or why it cannot be used (a missing key file).
    pub outputs: Vec<(String, Result<RtmpSpec, String>)>,
    /// The fallback's output name, how long the room must be lost first, and what happens
    /// once it is back.
    pub fallback: Option<(String, Duration, FallbackReturn)>,
    /// Backoff of every output.
    pub reconnect: crate::config::BackoffConfig,
}

impl LivestreamSetup {
    /// The setup for `config`, reading stream key files with `read_key`.
    pub fn resolve(
        config: &LivestreamConfig,
        read_key: impl Fn(&std::path::Path) -> std::io::Result<String>,
    ) -> LivestreamSetup {
        let outputs = config
            .outputs
            .iter()
            .map(|o| {
                let key = if o.stream_key_file.as_os_str().is_empty() {
                    Ok(o.stream_key.clone())
                } else {
                    read_key(&o.stream_key_file)
                        .map(crate::media::rtmp::StreamKey::new)
                        .map_err(|e| {
                            format!(
                                "output `{}`: cannot read stream_key_file {}: {e}",
                                o.name,
                                o.stream_key_file.display()
                            )
                        })
                };
                let spec = key.map(|key| RtmpSpec {
                    name: o.name.clone(),
                    url: o.url.clone(),
                    key,
                    reconnect: config.reconnect.clone(),
                    source: o.source,
                });
                (o.name.clone(), spec)
            })
            .collect();
        let f = &config.fallback;
        LivestreamSetup {
            outputs,
            fallback: (!f.output.is_empty()).then(|| (f.output.clone(), f.after, f.on_return)),
            reconnect: config.reconnect.clone(),
        }
    }
}

/// What the fallback and `start-livestream` wait on.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct LivestreamPending {
    /// Since when the room the box is meant to be in has been unreachable (ms).
    pub(super) room_lost_since_ms: Option<u64>,
    /// The outage for which a fallback that cannot start was already reported.
    pub(super) fallback_error_sent_for: Option<u64>,
    /// `start-livestream`s whose hosts are being resolved, with the outputs they start.
    pub(super) resolving: BTreeMap<Token, Vec<RtmpSpec>>,
}

/// An RTMP output whose host did not resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct HostUnresolved {
    /// Its place in [`Effect::ResolveHosts`]'s URLs.
    pub index: usize,
    /// Why, in words.
    pub error: String,
}

impl StateMachine {
    /// `start-livestream`: checked now, started once the agent loop has resolved the hosts.
    pub(super) fn request_livestream(&mut self, outputs: &[LivestreamOutput]) -> Step {
        let specs = match self.livestream_specs(outputs) {
            Ok(s) => s,
            Err(e) => return Step::refuse(e),
        };
        let token = self.token();
        let urls = specs.iter().map(|s| s.url.clone()).collect();
        self.pending.livestream.resolving.insert(token, specs);
        Step::later(token, vec![Effect::ResolveHosts { token, urls }])
    }

    /// The hosts of a `start-livestream` were resolved, or one was not.
    pub(super) fn hosts_resolved(
        &mut self,
        token: Token,
        result: Result<(), HostUnresolved>,
    ) -> Step {
        let Some(specs) = self.pending.livestream.resolving.remove(&token) else {
            return Step::err(
                ErrorCode::Internal,
                "no start-livestream waits for these hosts",
            );
        };
        if let Err(e) = result {
            let output = specs.get(e.index).map(|s| s.redacted()).unwrap_or_default();
            return Step::err(
                ErrorCode::InvalidArgument,
                format!("outputs: {output}: {}", e.error),
            );
        }
        if self.state.stopping {
            return Step::err(ErrorCode::InvalidState, "the agent is stopping");
        }
        // Another start may have taken a name while the hosts were resolved.
        if let Err(e) = self.names_free(&specs) {
            return Step::refuse(e);
        }
        self.start_livestream(specs)
    }

    /// The specs a `start-livestream` would use: the outputs given, or the configured ones.
    /// Refused (changing nothing) when one is unusable or a name is already streaming.
    fn livestream_specs(
        &self,
        outputs: &[LivestreamOutput],
    ) -> Result<Vec<RtmpSpec>, CommandError> {
        let specs: Vec<RtmpSpec> = if outputs.is_empty() {
            let configured: Vec<_> = self
                .setup
                .livestream
                .outputs
                .iter()
                .filter(|(name, _)| {
                    self.setup
                        .livestream
                        .fallback
                        .as_ref()
                        .is_none_or(|(f, _, _)| f != name)
                })
                .collect();
            if configured.is_empty() {
                return Err(CommandError::new(
                    ErrorCode::InvalidArgument,
                    "outputs: none given and none configured in [[livestream.outputs]]",
                ));
            }
            configured
                .into_iter()
                .map(|(_, spec)| {
                    spec.clone()
                        .map_err(|e| CommandError::new(ErrorCode::InvalidArgument, e))
                })
                .collect::<Result<_, _>>()?
        } else {
            outputs
                .iter()
                .enumerate()
                .map(|(i, o)| RtmpSpec {
                    name: o
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("output-{}", i + 1)),
                    url: o.url.trim_end_matches('/').to_string(),
                    key: o.stream_key.clone(),
                    reconnect: self.setup.livestream.reconnect.clone(),
                    source: Default::default(),
                })
                .collect()
        };
        self.names_free(&specs)?;
        Ok(specs)
    }

    fn names_free(&self, specs: &[RtmpSpec]) -> Result<(), CommandError> {
        for s in specs {
            if self
                .state
                .livestream
                .outputs
                .get(&s.name)
                .is_some_and(|o| o.state != ServiceState::Failed)
            {
                return Err(CommandError::new(
                    ErrorCode::InvalidState,
                    format!("output `{}` is already streaming", s.name),
                ));
            }
        }
        Ok(())
    }

    /// Starts RTMP outputs (already checked by [`StateMachine::livestream_specs`]).
    fn start_livestream(&mut self, specs: Vec<RtmpSpec>) -> Step {
        if !self.setup.media.has_video {
            return Step::err(ErrorCode::Unavailable, "there is no video source to stream");
        }
        let mut fx = Vec::new();
        for spec in specs {
            fx.extend(self.start_output(spec, false, None));
        }
        Step::ok(fx)
    }

    fn start_output(
        &mut self,
        spec: RtmpSpec,
        fallback: bool,
        reason: Option<String>,
    ) -> Vec<Effect> {
        let name = spec.name.clone();
        let url = spec.redacted();
        self.state.livestream.outputs.insert(
            name.clone(),
            OutputStatus {
                url: url.clone(),
                state: ServiceState::Starting,
                last_error: None,
                retries: 0,
                fallback,
                source: spec.source,
            },
        );
        self.refresh_livestream();
        vec![
            Effect::Emit(Event::LivestreamStateChanged {
                state: ServiceState::Starting,
                output: Some(name.clone()),
                url: Some(url),
                reason,
            }),
            Effect::Media(MediaAction::Attach {
                id: ConsumerId::Rtmp(name.clone()),
                spec: ConsumerSpec::Rtmp(spec),
            }),
        ]
    }

    /// `stop-livestream`: every output, or the one named.
    pub(super) fn stop_livestream(&mut self, name: Option<&str>) -> Step {
        let names: Vec<String> = match name {
            Some(n) if self.state.livestream.outputs.contains_key(n) => vec![n.to_string()],
            Some(n) => {
                return Step::err(ErrorCode::InvalidArgument, format!("no output named `{n}`"))
            }
            None => self.state.livestream.outputs.keys().cloned().collect(),
        };
        if names.is_empty() {
            return Step::err(ErrorCode::InvalidState, "no livestream output is running");
        }
        let mut fx = Vec::new();
        for n in names {
            fx.extend(self.stop_output(&n, None));
        }
        Step::ok(fx)
    }

    fn stop_output(&mut self, name: &str, reason: Option<String>) -> Vec<Effect> {
        let Some(o) = self.state.livestream.outputs.get_mut(name) else {
            return Vec::new();
        };
        if o.fallback {
            self.state.livestream.fallback.active = false;
            if reason.is_some() {
                self.state.livestream.fallback.reason = reason.clone();
            }
        }
        if o.state == ServiceState::Stopping {
            return Vec::new();
        }
        o.state = ServiceState::Stopping;
        let url = o.url.clone();
        self.refresh_livestream();
        vec![
            Effect::Emit(Event::LivestreamStateChanged {
                state: ServiceState::Stopping,
                output: Some(name.to_string()),
                url: Some(url),
                reason,
            }),
            Effect::Media(MediaAction::Detach {
                id: ConsumerId::Rtmp(name.to_string()),
            }),
        ]
    }

    /// What an RTMP output's consumer reported.
    pub(super) fn livestream_notice(&mut self, name: &str, event: ConsumerEvent) -> Vec<Effect> {
        let Some(o) = self.state.livestream.outputs.get_mut(name) else {
            return Vec::new();
        };
        let (state, reason) = match event {
            ConsumerEvent::Started => {
                o.last_error = None;
                (ServiceState::Started, None)
            }
            ConsumerEvent::Retrying { error, retry_in } => {
                o.retries += 1;
                let reason = format!(
                    "{error}; retrying in {}",
                    humantime::format_duration(Duration::from_millis(retry_in.as_millis() as u64))
                );
                o.last_error = Some(error.to_string());
                (ServiceState::Failed, Some(reason))
            }
            ConsumerEvent::Failed(error) => {
                o.last_error = Some(error.to_string());
                (ServiceState::Failed, Some(error.to_string()))
            }
            ConsumerEvent::Finished => {
                let o = self.state.livestream.outputs.remove(name);
                if o.as_ref().is_some_and(|o| o.fallback) {
                    self.state.livestream.fallback.active = false;
                }
                self.refresh_livestream();
                return vec![Effect::Emit(Event::LivestreamStateChanged {
                    state: ServiceState::Stopped,
                    output: Some(name.to_string()),
                    url: o.map(|o| o.url),
                    reason: None,
                })];
            }
            ConsumerEvent::FileClosed { .. } => return Vec::new(),
        };
        if o.state == ServiceState::Stopping {
            // A report that crossed the stop: the output is going away.
            return Vec::new();
        }
        o.state = state;
        let url = o.url.clone();
        self.refresh_livestream();
        vec![Effect::Emit(Event::LivestreamStateChanged {
            state,
            output: Some(name.to_string()),
            url: Some(url),
            reason,
        })]
    }

    fn refresh_livestream(&mut self) {
        let states: Vec<ServiceState> = self
            .state
            .livestream
            .outputs
            .values()
            .map(|o| o.state)
            .collect();
        self.state.livestream.state = if states.is_empty() {
            ServiceState::Stopped
        } else if states.contains(&ServiceState::Started) {
            ServiceState::Started
        } else if states.contains(&ServiceState::Starting) {
            ServiceState::Starting
        } else if states.contains(&ServiceState::Stopping) {
            ServiceState::Stopping
        } else {
            ServiceState::Failed
        };
        self.state.livestream.fallback.output = self
            .setup
            .livestream
            .fallback
            .as_ref()
            .map(|(n, _, _)| n.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::{IoNotice, Reply};
    use super::*;
    use crate::command::Command;
    use crate::media::rtmp::StreamKey;
    use crate::media::MediaError;

    fn out(name: &str) -> LivestreamOutput {
        LivestreamOutput {
            name: Some(name.into()),
            url: "rtmp://127.0.0.1:1935/live".into(),
            stream_key: StreamKey::new("sekrit"),
        }
    }

    /// `start-livestream` for `outputs`, whose hosts resolve (or not, with `result`).
    fn start(
        s: &mut StateMachine,
        outputs: Vec<LivestreamOutput>,
        result: Result<(), HostUnresolved>,
    ) -> Step {
        let step = s.command(&Command::StartLivestream { outputs }, 0);
        let Reply::Later(token) = step.reply else {
            return step;
        };
        assert!(matches!(step.effects.as_slice(),
            [Effect::ResolveHosts { token: t, urls }] if *t == token && !urls.is_empty()));
        s.io_notice(IoNotice::HostsResolved { token, result })
    }

    #[test]
    fn outputs_follow_what_the_engine_reports_and_never_show_the_key() {
        let mut s = state();
        let step = start(&mut s, vec![out("a"), out("b")], Ok(()));
        assert!(step.reply.is_ok());
        assert_eq!(s.state().livestream.state, ServiceState::Starting);
        assert!(step.effects.iter().any(|e| matches!(e,
            Effect::Media(MediaAction::Attach { id: ConsumerId::Rtmp(n), .. }) if n == "a")));
        s.livestream_notice("a", ConsumerEvent::Started);
        let fx = s.livestream_notice(
            "b",
            ConsumerEvent::Retrying {
                error: MediaError::Runtime("connection refused".into()),
                retry_in: Duration::from_secs(2),
            },
        );
        assert_eq!(emitted(&fx), ["livestream-state-changed"]);
        assert_eq!(s.state().livestream.state, ServiceState::Started);
        assert_eq!(
            s.state().livestream.outputs["b"].state,
            ServiceState::Failed
        );
        assert_eq!(s.state().livestream.outputs["b"].retries, 1);
        let json = serde_json::to_string(s.state()).unwrap();
        assert!(!json.contains("sekrit"), "{json}");
        assert!(json.contains("rtmp://127.0.0.1:1935/live/****"), "{json}");
        // A name in use is refused at once and changes nothing.
        let before = s.clone();
        let again = s.command(
            &Command::StartLivestream {
                outputs: vec![out("a")],
            },
            0,
        );
        assert_eq!(again.reply.unwrap_err().code, ErrorCode::InvalidState);
        assert_eq!(s, before);
        let step = s.stop_livestream(None);
        assert_eq!(step.effects.len(), 4);
        s.livestream_notice("a", ConsumerEvent::Finished);
        s.livestream_notice("b", ConsumerEvent::Finished);
        assert_eq!(s.state().livestream.state, ServiceState::Stopped);
        assert!(s.state().livestream.outputs.is_empty());
    }

    #[test]
    fn a_host_that_does_not_resolve_is_refused_before_anything_starts() {
        let mut s = state();
        let before = s.state().clone();
        let step = start(
            &mut s,
            vec![out("a"), out("b")],
            Err(HostUnresolved {
                index: 1,
                error: "cannot resolve host `nowhere`".into(),
            }),
        );
        let e = step.reply.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(
            e.message,
            "outputs: rtmp://127.0.0.1:1935/live/****: cannot resolve host `nowhere`"
        );
        assert!(step.effects.is_empty());
        assert_eq!(s.state(), &before);
        assert!(s.pending.livestream.resolving.is_empty());
    }

    #[test]
    fn a_name_taken_while_its_hosts_resolved_is_refused() {
        let mut s = state();
        let first = s.command(
            &Command::StartLivestream {
                outputs: vec![out("a")],
            },
            0,
        );
        let second = s.command(
            &Command::StartLivestream {
                outputs: vec![out("a")],
            },
            0,
        );
        let (Reply::Later(t1), Reply::Later(t2)) = (first.reply, second.reply) else {
            panic!("both wait for their hosts")
        };
        assert_ne!(t1, t2);
        let ok = s.io_notice(IoNotice::HostsResolved {
            token: t1,
            result: Ok(()),
        });
        assert!(ok.reply.is_ok());
        let late = s.io_notice(IoNotice::HostsResolved {
            token: t2,
            result: Ok(()),
        });
        assert_eq!(late.reply.unwrap_err().code, ErrorCode::InvalidState);
    }

    #[test]
    fn no_outputs_and_none_configured_is_a_clear_error() {
        let mut s = state();
        let e = s
            .command(&Command::StartLivestream { outputs: vec![] }, 0)
            .reply
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("none configured"), "{}", e.message);
    }
}

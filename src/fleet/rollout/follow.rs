//! The box's side of a staged rollout: it reads its groups' retained records, decides whether
//! it is in, waits its turn, and starts the update, once per rollout id.
//!
//! [`Follower`] is the decision without I/O but its small memory file: the worker in
//! `fleet/mod.rs` feeds it the records (with the time and the running version) and its due
//! timers, and carries out what it returns ([`Out`]): publish a `rollout-state-changed` event, or
//! run the `update` command on the agent. What the box remembers per rollout id (the newest
//! record it took, and whether it started) is in `<state_dir>/fleet/rollouts.json`, so a box that
//! rolled back, or restarted into the new version, never starts the same rollout again, and an
//! older record replayed on the topic is not taken.

use super::{bucket, parse, selected, start_delay_ms, Phase, Record};
use crate::command::UpdateManifest;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Rollout ids remembered at once (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 64;
/// The memory file under the fleet directory.
pub const FILE: &str = "rollouts.json";

/// Where the box stands in a rollout, as its `rollout-state-changed` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BoxState {
    /// Its bucket is above the percent.
    NotSelected,
    /// Selected; it starts after `startInMs`.
    Scheduled,
    /// It ran the `update` command and the agent accepted it (progress follows as
    /// `update-state-changed`), now or in an earlier stage.
    Started,
    /// The rollout was stopped before this box's turn: it does not start.
    Held,
    /// It already runs the version.
    UpToDate,
    /// The agent refused the `update` command (the reason says why).
    Refused,
}

/// What the worker carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Publish this event (JSON) on the box's event stream.
    Event(String),
    /// Run the `update` command; report its answer with [`answer_event`].
    Start {
        rollout_id: String,
        manifest: UpdateManifest,
        force: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seen {
    /// The newest record taken.
    issued_ms: u64,
    /// The update was started (or the box already ran its version).
    started: bool,
    /// When this box last took a record of it (for forgetting the oldest).
    at_ms: u64,
}

/// The box's rollout memory and timers.
#[derive(Debug)]
pub struct Follower {
    device: String,
    /// The memory file; none in unit tests.
    path: Option<PathBuf>,
    seen: BTreeMap<String, Seen>,
    /// The last record taken per group, as received (a re-delivery of it is ignored).
    latest: BTreeMap<String, Record>,
    /// Selected boxes waiting their turn: (due ms, group, rollout id).
    timers: Vec<(u64, String, String)>,
}

/// One `rollout-state-changed` event.
fn event(r: &Record, device: &str, state: BoxState, extra: serde_json::Value) -> Out {
    let mut v = serde_json::json!({
        "event": "rollout-state-changed",
        "rolloutId": r.rollout_id,
        "group": r.group,
        "version": r.manifest.version,
        "percent": r.percent,
        "bucket": bucket(device, &r.rollout_id),
        "state": state,
    });
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    Out::Event(v.to_string())
}

/// A refused record, as an `error` event (code `rollout`); nothing else changes.
fn refused(topic_group: &str, why: String) -> Out {
    Out::Event(
        serde_json::json!({
            "event": "error",
            "code": "rollout",
            "message": format!("the rollout record of group {topic_group} was refused: {why}"),
        })
        .to_string(),
    )
}

/// The event for the agent's answer to a rollout's `update` command.
pub fn answer_event(
    device: &str,
    record: &Record,
    answer: &Result<serde_json::Value, crate::command::CommandError>,
) -> String {
    let out = match answer {
        Ok(_) => event(record, device, BoxState::Started, serde_json::json!({})),
        Err(e) => event(
            record,
            device,
            BoxState::Refused,
            serde_json::json!({ "reason": e.to_string() }),
        ),
    };
    match out {
        Out::Event(s) => s,
        Out::Start { .. } => String::new(),
    }
}

impl Follower {
    /// The follower of `device`, remembering in `path` (none: in memory only). An unreadable
    /// or torn file is started afresh, with a warning.
    pub fn open(device: &str, path: Option<PathBuf>) -> Follower {
        let seen = path
            .as_ref()
            .and_then(|p| match std::fs::read(p) {
                Ok(b) => serde_json::from_slice(&b)
                    .map_err(|e| {
                        tracing::warn!(
                            "rollout: {} is unreadable ({e}); starting afresh",
                            p.display()
                        )
                    })
                    .ok(),
                Err(_) => None,
            })
            .unwrap_or_default();
        Follower {
            device: device.to_string(),
            path,
            seen,
            latest: BTreeMap::new(),
            timers: Vec::new(),
        }
    }

    /// The record a group last took, for reporting the answer to its `update` command.
    pub fn record(&self, rollout_id: &str) -> Option<&Record> {
        self.latest.values().find(|r| r.rollout_id == rollout_id)
    }

    fn save(&mut self) {
        while self.seen.len() > MAX_REMEMBERED {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.at_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.seen.remove(&k);
            }
        }
        let Some(path) = &self.path else {
            return;
        };
        let bytes = serde_json::to_vec(&self.seen).unwrap_or_default();
        if let Err(e) = crate::update::install::write_atomic(path, &bytes) {
            tracing::warn!("rollout: cannot write {}: {e}", path.display());
        }
    }

    /// A record arrived on the topic of `group` at `now_ms`, while the box runs `running`.
    /// `key` is the fleet key when records must be signed.
    pub fn on_record(
        &mut self,
        group: &str,
        payload: &[u8],
        key: Option<&VerifyingKey>,
        running: &str,
        now_ms: u64,
    ) -> Vec<Out> {
        if payload.is_empty() {
            // The record was cleared: boxes still waiting their turn do not start.
            self.latest.remove(group);
            return self.cancel_group(group);
        }
        let r = match parse(payload).and_then(|r| {
            if r.group != group {
                return Err(format!(
                    "it is for group {} but came on group {group}'s topic",
                    r.group
                ));
            }
            r.verify(key)?;
            Ok(r)
        }) {
            Ok(r) => r,
            Err(why) => return vec![refused(group, why)],
        };
        if self.latest.get(group) == Some(&r) {
            return Vec::new();
        }
        let seen = self.seen.get(&r.rollout_id).cloned().unwrap_or_default();
        if r.issued_ms < seen.issued_ms {
            return vec![refused(
                group,
                format!(
                    "it is older than the record of rollout {} this box already took",
                    r.rollout_id
                ),
            )];
        }
        self.latest.insert(group.to_string(), r.clone());
        let entry = self.seen.entry(r.rollout_id.clone()).or_default();
        entry.issued_ms = r.issued_ms;
        entry.at_ms = now_ms;
        let started = entry.started;
        let id = r.rollout_id.clone();
        let mut out = Vec::new();
        if started {
            out.push(event(
                &r,
                &self.device,
                BoxState::Started,
                serde_json::json!({}),
            ));
        } else if r.state == Phase::Stopped {
            self.timers.retain(|t| t.2 != id);
            out.push(event(
                &r,
                &self.device,
                BoxState::Held,
                serde_json::json!({}),
            ));
        } else if r.manifest.version == running && !r.force {
            self.timers.retain(|t| t.2 != id);
            if let Some(s) = self.seen.get_mut(&id) {
                s.started = true;
            }
            out.push(event(
                &r,
                &self.device,
                BoxState::UpToDate,
                serde_json::json!({}),
            ));
        } else if !selected(&self.device, &id, r.percent) {
            self.timers.retain(|t| t.2 != id);
            out.push(event(
                &r,
                &self.device,
                BoxState::NotSelected,
                serde_json::json!({}),
            ));
        } else {
            let delay = start_delay_ms(bucket(&self.device, &id), r.percent, r.spread_ms);
            self.timers.retain(|t| t.2 != id);
            if delay == 0 {
                out.extend(self.start(&id));
            } else {
                self.timers.push((now_ms + delay, group.to_string(), id));
                out.push(event(
                    &r,
                    &self.device,
                    BoxState::Scheduled,
                    serde_json::json!({ "startInMs": delay }),
                ));
            }
        }
        self.save();
        out
    }

    /// Marks the rollout started and asks for its `update` command.
    fn start(&mut self, rollout_id: &str) -> Vec<Out> {
        let Some(r) = self.record(rollout_id).cloned() else {
            return Vec::new();
        };
        if let Some(s) = self.seen.get_mut(rollout_id) {
            s.started = true;
        }
        self.save();
        vec![Out::Start {
            rollout_id: r.rollout_id.clone(),
            manifest: r.manifest.clone(),
            force: r.force,
        }]
    }

    /// A cleared record: its waiting boxes are held.
    fn cancel_group(&mut self, group: &str) -> Vec<Out> {
        self.timers.retain(|t| t.1 != group);
        Vec::new()
    }

    /// When the next waiting box's turn comes, ms since the epoch.
    pub fn next_due(&self) -> Option<u64> {
        self.timers.iter().map(|t| t.0).min()
    }

    /// The turns that came by `now_ms`: each starts if its group's record still says so.
    pub fn due(&mut self, now_ms: u64) -> Vec<Out> {
        let (ready, waiting): (Vec<_>, Vec<_>) = self.timers.drain(..).partition(|t| t.0 <= now_ms);
        self.timers = waiting;
        let mut out = Vec::new();
        for (_, group, id) in ready {
            let active = self.latest.get(&group).is_some_and(|r| {
                r.rollout_id == id
                    && r.state == Phase::Active
                    && selected(&self.device, &id, r.percent)
            });
            let started = self.seen.get(&id).is_some_and(|s| s.started);
            if active && !started {
                out.extend(self.start(&id));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;

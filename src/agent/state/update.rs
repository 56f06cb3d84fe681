//! Software updates in the state: the `update` command's checks, the download's progress, the
//! rule that keeps an update out of a meeting, the hand-over to the root installer, and the new
//! version's proof of health after the restart.
//!
//! The rule ([`install_gate`]): a verified package waits while the room is busy (a call, a
//! recording, a live output: RTMP or HLS) unless a maintenance window is open or the command
//! said `force`. It is looked at again on every tick, so an update installs within a tick of
//! the room going idle or a window opening.
//!
//! After the restart the root installer leaves a trial note; the new agent proves health
//! (media PLAYING, fleet CONNECTED when a broker is set, back in the room it was in or its
//! auto-join room) and says so with [`UpdateAction::ProveHealthy`]; the installer commits, or
//! puts the previous package back when the proof does not come within the deadline.

use super::{Effect, StateMachine, Step};
use crate::command::{ErrorCode, UpdateManifest};
use crate::config::{Config, MaintenanceWindow};
use crate::event::{Event, MediaState, UpdatePhase};
use crate::model::MeetingState;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How long the root installer has to take a request before the update is called failed.
pub const INSTALL_TIMEOUT_MS: u64 = 120_000;

/// The update as `get-state`, `roombox status` and the fleet show it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStatus {
    /// Where it stands.
    pub state: UpdatePhase,
    /// The version being (or last) installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Download progress while DOWNLOADING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// A failure, a rollback, or what the update waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When `state` began, ms since the epoch.
    #[serde(default)]
    pub since_ms: u64,
}

/// What the machine asks of the update I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAction {
    /// Download (resuming) and verify; answered by [`UpdateNotice::Progress`],
    /// [`UpdateNotice::Verifying`] and [`UpdateNotice::Fetched`].
    Fetch(UpdateManifest),
    /// Hand the verified package to the root installer; answered by
    /// [`UpdateNotice::Requested`]. `room` is the room to be back in after the restart.
    Install {
        manifest: UpdateManifest,
        package: PathBuf,
        room: Option<String>,
    },
    /// Take back a request the installer never took.
    Withdraw,
    /// While INSTALLING: has the installer taken the request, or refused it? Answered by
    /// [`UpdateNotice::Taken`] or [`UpdateNotice::Resumed`] with its outcome.
    Poll,
    /// Tell the installer the new version is healthy (it commits).
    ProveHealthy { version: String },
}

/// What the update I/O reports.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateNotice {
    /// Bytes downloaded so far.
    Progress { done: u64, total: u64 },
    /// All bytes are here; hashing.
    Verifying,
    /// The verified package, or why there is none.
    Fetched(Result<PathBuf, String>),
    /// The request is with the installer, or could not be written.
    Requested(Result<(), String>),
    /// The installer took the request (it is installing).
    Taken,
    /// At start-up: what the installer left. A trial in progress (this agent is the new
    /// version and must prove health), or the outcome of one (committed or rolled back).
    Resumed(Resumed),
}

/// What the root installer left for the agent that starts after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    /// The version on trial, when this agent must prove health.
    #[serde(default)]
    pub trial: Option<String>,
    /// The room the agent was in when the update was asked to install.
    #[serde(default)]
    pub room: Option<String>,
    /// An outcome not reported yet: HEALTHY or ROLLED_BACK, the version and why.
    #[serde(default)]
    pub outcome: Option<(UpdatePhase, String, Option<String>)>,
}

/// `[update]` and the fleet key, as the machine uses them.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct UpdateSetup {
    key: Option<VerifyingKey>,
    allow_unsigned: bool,
    max_bytes: u64,
    windows: Vec<MaintenanceWindow>,
    tz: Option<chrono_tz::Tz>,
    health_deadline_ms: u64,
}

impl UpdateSetup {
    pub(super) fn from_config(c: &Config) -> UpdateSetup {
        let zone = if c.update.timezone.is_empty() {
            &c.calendar.timezone
        } else {
            &c.update.timezone
        };
        UpdateSetup {
            key: crate::config::parse_public_key(&c.fleet.signing.public_key).ok(),
            allow_unsigned: c.update.allow_unsigned,
            max_bytes: c.update.max_bytes,
            windows: c.update.windows(),
            tz: zone.parse().ok(),
            health_deadline_ms: c.update.health_deadline.as_millis() as u64,
        }
    }
}

/// What the machine keeps between steps.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct UpdatePending {
    manifest: Option<UpdateManifest>,
    force: bool,
    package: Option<PathBuf>,
    /// When the request went to the installer.
    requested_ms: Option<u64>,
    /// The trial this agent must prove, with the room to be back in and the deadline.
    trial: Option<(String, Option<String>, u64)>,
}

/// What keeps an update waiting: the room's activity, or nothing.
pub fn room_busy(s: &super::AgentState) -> Option<&'static str> {
    if s.room.is_some() || s.meeting_state != MeetingState::Closed {
        Some("the room is in a call")
    } else if s.recording.state.is_active() {
        Some("the room is recording")
    } else if s.livestream.state.is_active() || s.hls.state.is_active() {
        Some("the room has a live output")
    } else {
        None
    }
}

/// The rule: install now, or wait (and why). `force` and an open window override a busy room.
pub fn install_gate(
    busy: Option<&'static str>,
    in_window: bool,
    force: bool,
) -> Result<(), &'static str> {
    match busy {
        Some(why) if !in_window && !force => Err(why),
        _ => Ok(()),
    }
}

/// The minute after local midnight in `tz` (the system's zone when none).
fn local_minute(now_ms: u64, tz: Option<chrono_tz::Tz>) -> u32 {
    use chrono::{TimeZone, Timelike};
    let ms = now_ms as i64;
    let (h, m) = match tz {
        Some(tz) => match tz.timestamp_millis_opt(ms).single() {
            Some(t) => (t.hour(), t.minute()),
            None => (0, 0),
        },
        None => match chrono::Local.timestamp_millis_opt(ms).single() {
            Some(t) => (t.hour(), t.minute()),
            None => (0, 0),
        },
    };
    h * 60 + m
}

impl StateMachine {
    pub(super) fn configure_update(&mut self, config: &Config) {
        self.setup.update = UpdateSetup::from_config(config);
    }

    fn update_to(&mut self, state: UpdatePhase, reason: Option<String>, now_ms: u64) -> Effect {
        let u = &mut self.state.update;
        u.state = state;
        u.reason = reason.clone();
        u.percent = (state == UpdatePhase::Downloading).then_some(u.percent.unwrap_or(0));
        u.since_ms = now_ms;
        Effect::Emit(Event::UpdateStateChanged {
            state,
            version: u.version.clone().unwrap_or_default(),
            percent: u.percent,
            reason,
        })
    }

    /// The `update` command.
    pub(super) fn update_command(
        &mut self,
        manifest: &UpdateManifest,
        force: bool,
        now_ms: u64,
    ) -> Step {
        let s = &self.setup.update;
        let trust = match crate::update::manifest::check(
            manifest,
            s.key.as_ref(),
            s.allow_unsigned,
            s.max_bytes,
        ) {
            Ok(t) => t,
            Err(e) => return Step::refuse(e),
        };
        let u = &self.state.update;
        if u.state.in_progress() {
            let same = self.pending.update.manifest.as_ref() == Some(manifest)
                || self.pending.update.trial.is_some();
            if same && u.state == UpdatePhase::Waiting && force {
                self.pending.update.force = true;
                return Step::ok(self.update_gate(now_ms));
            }
            return Step::err(
                ErrorCode::InvalidState,
                format!(
                    "an update to {} is {:?}; wait for it to finish",
                    u.version.as_deref().unwrap_or("?"),
                    u.state
                ),
            );
        }
        if manifest.version == self.state.version && !force {
            return Step::err(
                ErrorCode::InvalidState,
                format!(
                    "{} is already running; add force to install it again",
                    manifest.version
                ),
            );
        }
        self.pending.update = UpdatePending {
            manifest: Some(manifest.clone()),
            force,
            ..Default::default()
        };
        self.state.update.version = Some(manifest.version.clone());
        self.state.update.percent = Some(0);
        let fx = vec![
            self.update_to(UpdatePhase::Downloading, None, now_ms),
            Effect::Update(UpdateAction::Fetch(manifest.clone())),
        ];
        Step::reply(
            Ok(serde_json::json!({
                "accepted": true,
                "version": manifest.version,
                "signed": trust == crate::update::manifest::Trust::Signed,
            })),
            fx,
        )
    }

    /// What the update I/O reported, at `now_ms`.
    pub(super) fn update_notice(&mut self, n: UpdateNotice, now_ms: u64) -> Vec<Effect> {
        let phase = self.state.update.state;
        match n {
            UpdateNotice::Progress { done, total } if phase == UpdatePhase::Downloading => {
                let pct = (done.saturating_mul(100) / total.max(1)).min(100) as u8;
                if self.state.update.percent == Some(pct) {
                    return Vec::new();
                }
                self.state.update.percent = Some(pct);
                vec![self.update_to(UpdatePhase::Downloading, None, now_ms)]
            }
            UpdateNotice::Verifying if phase == UpdatePhase::Downloading => {
                vec![self.update_to(UpdatePhase::Verifying, None, now_ms)]
            }
            UpdateNotice::Fetched(Ok(path)) if phase.in_progress() => {
                self.pending.update.package = Some(path);
                self.state.update.state = UpdatePhase::Waiting;
                let mut fx = self.update_gate(now_ms);
                if self.state.update.state == UpdatePhase::Waiting && fx.is_empty() {
                    // Announced even when the wait ends at once, so the steps read in order.
                    fx.push(self.update_to(UpdatePhase::Waiting, None, now_ms));
                }
                fx
            }
            UpdateNotice::Fetched(Err(why)) | UpdateNotice::Requested(Err(why))
                if phase.in_progress() =>
            {
                self.pending.update = UpdatePending::default();
                vec![self.update_to(UpdatePhase::Failed, Some(why), now_ms)]
            }
            UpdateNotice::Requested(Ok(())) => Vec::new(),
            UpdateNotice::Taken => {
                self.pending.update.requested_ms = None;
                Vec::new()
            }
            UpdateNotice::Resumed(r) => self.update_resumed(r, now_ms),
            _ => Vec::new(),
        }
    }

    /// At start-up: a trial to prove, or an outcome to report.
    fn update_resumed(&mut self, r: Resumed, now_ms: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if let Some((state, version, reason)) = r.outcome {
            self.pending.update = UpdatePending::default();
            self.state.update.version = Some(version);
            fx.push(self.update_to(state, reason, now_ms));
        }
        if let Some(version) = r.trial {
            let deadline = now_ms + self.setup.update.health_deadline_ms;
            self.pending.update.trial = Some((version.clone(), r.room.clone(), deadline));
            self.state.update.version = Some(version);
            fx.push(self.update_to(UpdatePhase::Restarting, None, now_ms));
            if let Some(room) = r.room.filter(|_| self.setup.room_backend) {
                fx.extend(self.join(Some(room), None, None, None, None, None));
            }
            fx.extend(self.update_proof(now_ms));
        }
        fx
    }

    /// Installs a waiting update when the rule allows it; otherwise says what it waits for.
    fn update_gate(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.state.update.state != UpdatePhase::Waiting || self.state.stopping {
            return Vec::new();
        }
        let s = &self.setup.update;
        let minute = local_minute(now_ms, s.tz);
        let in_window = s.windows.iter().any(|w| w.contains(minute));
        let busy = room_busy(&self.state);
        match install_gate(busy, in_window, self.pending.update.force) {
            Err(why) => {
                if self.state.update.reason.as_deref() == Some(why) {
                    return Vec::new();
                }
                vec![self.update_to(UpdatePhase::Waiting, Some(why.to_string()), now_ms)]
            }
            Ok(()) => {
                let (Some(manifest), Some(package)) = (
                    self.pending.update.manifest.clone(),
                    self.pending.update.package.clone(),
                ) else {
                    return Vec::new();
                };
                self.pending.update.requested_ms = Some(now_ms);
                let room = self.state.room.as_ref().map(|r| r.room_id.clone());
                // The request is on disk before anyone hears INSTALLING.
                let install = Effect::Update(UpdateAction::Install {
                    manifest,
                    package,
                    room,
                });
                vec![
                    install,
                    self.update_to(UpdatePhase::Installing, None, now_ms),
                ]
            }
        }
    }

    /// The new version's proof of health: once it holds, the installer is told.
    fn update_proof(&mut self, now_ms: u64) -> Vec<Effect> {
        let Some((version, room, deadline)) = self.pending.update.trial.clone() else {
            return Vec::new();
        };
        let s = &self.state;
        let media = s.media.state == MediaState::Playing;
        let fleet = !self.setup.fleet.enabled
            || s.fleet
                .as_ref()
                .is_some_and(|f| f.state == super::FleetLinkState::Connected);
        let want_room = room.or_else(|| {
            (self.setup.room.auto_join && self.setup.room_backend)
                .then(|| self.setup.room.room_id.clone())
        });
        let in_room = match want_room {
            None => true,
            Some(id) => {
                s.meeting_state == MeetingState::Connected
                    && s.room.as_ref().is_some_and(|r| r.room_id == id)
            }
        };
        if media && fleet && in_room {
            self.pending.update.trial = None;
            return vec![
                self.update_to(UpdatePhase::Healthy, None, now_ms),
                Effect::Update(UpdateAction::ProveHealthy { version }),
            ];
        }
        if now_ms > deadline && self.state.update.reason.is_none() {
            let mut missing = Vec::new();
            if !media {
                missing.push("media is not PLAYING");
            }
            if !fleet {
                missing.push("the fleet is not CONNECTED");
            }
            if !in_room {
                missing.push("not back in its room");
            }
            // The installer rolls back; until it does, the state says why.
            self.state.update.reason = Some(format!("no proof of health: {}", missing.join(", ")));
        }
        Vec::new()
    }

    /// On every tick: a waiting update looks at the room again, a trial at the proof, and a
    /// request no installer took fails.
    pub(super) fn update_tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut fx = self.update_gate(now_ms);
        fx.extend(self.update_proof(now_ms));
        if self.state.update.state == UpdatePhase::Installing && !self.state.stopping {
            fx.push(Effect::Update(UpdateAction::Poll));
        }
        if self.state.update.state == UpdatePhase::Installing
            && !self.state.stopping
            && self
                .pending
                .update
                .requested_ms
                .is_some_and(|t| now_ms >= t + INSTALL_TIMEOUT_MS)
        {
            fx.retain(|e| *e != Effect::Update(UpdateAction::Poll));
            self.pending.update = UpdatePending::default();
            fx.push(self.update_to(
                UpdatePhase::Failed,
                Some("no installer took the request within 2 minutes; is roombox-update.path enabled?".into()),
                now_ms,
            ));
            fx.push(Effect::Update(UpdateAction::Withdraw));
        }
        fx
    }

    /// The agent stops while the installer has the package: it is the restart into it.
    pub(super) fn update_drain(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.state.update.state == UpdatePhase::Installing {
            vec![self.update_to(UpdatePhase::Restarting, None, now_ms)]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;

//! A simulated box for fleet tests, demos and benchmarks (feature `test-util`, never in the
//! product): the real agent and the real fleet client, with the confirming
//! [`SimMedia`](crate::media::sim::SimMedia) in place of the media engine, and, for updates,
//! [`SimBox::simulate_installer`] in place of the root installer (`roombox update-apply`).

use super::FleetHandle;
use crate::agent::{Agent, AgentHandle};
use crate::config::Config;
use crate::event::UpdatePhase;
use crate::media::sim::{MediaLog, SimMedia};
use crate::sync::lock;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running simulated box.
pub struct SimBox {
    pub agent: AgentHandle,
    /// The fleet client, when the config enables it.
    pub fleet: Option<FleetHandle>,
    /// What the media stand-in was asked for.
    pub media_log: MediaLog,
    agent_task: JoinHandle<anyhow::Result<()>>,
    installer: Option<JoinHandle<()>>,
}

/// Events a simulated box keeps behind its slowest output (its fleet link).
const SIM_EVENT_BUFFER: usize = 64;

impl SimBox {
    /// Starts an agent for `config` (re-read from `config_path` on reload) and, when a broker
    /// is configured, its fleet client, keeping state under `state_dir`.
    pub async fn start(
        config: &Config,
        config_path: Option<PathBuf>,
        state_dir: &Path,
    ) -> anyhow::Result<SimBox> {
        Self::start_with_buffer(config, config_path, state_dir, SIM_EVENT_BUFFER).await
    }

    /// As [`SimBox::start`], keeping `event_buffer` events behind its outputs (the product
    /// keeps 1024; benches compare).
    pub async fn start_with_buffer(
        config: &Config,
        config_path: Option<PathBuf>,
        state_dir: &Path,
        event_buffer: usize,
    ) -> anyhow::Result<SimBox> {
        let (tx, rx) = mpsc::unbounded_channel();
        let media = SimMedia::confirming(config, tx);
        let media_log = media.log();
        // Its fleet link is its only output: 64 events behind it is plenty, and a box of a
        // thousand-box simulation keeps 140 KiB less than with the product's 1024.
        let (agent, task) = Agent::with_event_buffer(
            config,
            config_path.clone(),
            Box::new(media),
            rx,
            event_buffer,
        );
        let agent_task = tokio::spawn(task.run(None));
        let fleet = if config.fleet.enabled() {
            Some(
                super::spawn(
                    &config.fleet,
                    config.device_id(),
                    agent.clone(),
                    state_dir,
                    config_path,
                )
                .await?,
            )
        } else {
            None
        };
        Ok(SimBox {
            agent,
            fleet,
            media_log,
            agent_task,
            installer: None,
        })
    }

    /// How many times the media stand-in was asked for `name` (e.g. `RequestKeyframe`).
    pub fn media_count(&self, name: &str) -> usize {
        lock(&self.media_log).iter().filter(|a| *a == name).count()
    }

    /// Starts the fleet client again (after [`SimBox::kill_fleet`]).
    pub async fn start_fleet(
        &mut self,
        config: &Config,
        config_path: Option<PathBuf>,
        state_dir: &Path,
    ) -> anyhow::Result<()> {
        self.fleet = Some(
            super::spawn(
                &config.fleet,
                config.device_id(),
                self.agent.clone(),
                state_dir,
                config_path,
            )
            .await?,
        );
        Ok(())
    }

    /// Stands in for the root installer: it takes the agent's install requests from
    /// `<state_dir>/update/` as `roombox update-apply` does, waits `install`, and answers as the
    /// installer does after the restart: HEALTHY, or
    /// ROLLED_BACK with a reason when `healthy` says no for the version (a bad package). Nothing is installed and the agent does not restart, so its
    /// `version` stays the same; the download and its checks before are the real ones.
    pub fn simulate_installer(
        &mut self,
        state_dir: &Path,
        install: Duration,
        healthy: impl Fn(&str) -> bool + Send + 'static,
    ) {
        let dir = state_dir.join(crate::update::DIR);
        self.installer = Some(tokio::spawn(async move {
            use crate::update::install::{
                read_json, write_json, Outcome, Request, OUTCOME, REQUEST,
            };
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Some(req) = read_json::<Request>(&dir.join(REQUEST)) else {
                    continue;
                };
                let _ = std::fs::remove_file(dir.join(REQUEST));
                tokio::time::sleep(install).await;
                let healthy = healthy(&req.manifest.version);
                let outcome = Outcome {
                    state: if healthy {
                        UpdatePhase::Healthy
                    } else {
                        UpdatePhase::RolledBack
                    },
                    version: req.manifest.version.clone(),
                    reason: (!healthy).then(|| {
                        "no proof of health within update.health_deadline (simulated installer: a bad package); the previous version is back".to_string()
                    }),
                };
                if let Err(e) = write_json(&dir.join(OUTCOME), &outcome) {
                    tracing::error!("simulated installer: cannot write the outcome: {e}");
                }
            }
        }));
    }

    /// Stops the fleet client as a crash would (no offline status; the last will fires).
    pub fn kill_fleet(&mut self) {
        self.fleet = None;
    }

    /// Stops the fleet client cleanly, then the agent.
    pub async fn shutdown(mut self) {
        if let Some(f) = self.fleet.take() {
            f.shutdown().await;
        }
        let _ = self.agent.send(crate::command::Command::Restart).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.agent_task).await;
    }
}

impl Drop for SimBox {
    fn drop(&mut self) {
        self.agent_task.abort();
        if let Some(i) = &self.installer {
            i.abort();
        }
    }
}

//! A simulated box for fleet tests, demos and benchmarks: the real agent and the real fleet
//! client, with a media engine stand-in that confirms every action at once (as the real engine
//! does with sources `none`), and a log of the actions it was asked for.

use super::FleetHandle;
use crate::agent::{Agent, AgentHandle};
use crate::config::Config;
use crate::event::MediaState;
use crate::media::{MediaAction, MediaControl, MediaNotice};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The names of the media actions asked for, in order.
pub type MediaLog = Arc<Mutex<Vec<String>>>;

/// A media engine stand-in that reports every action as done.
///
/// Like the real engine, it fails (an error, then RESTARTING) while the configured V4L2 camera
/// does not exist, so a configuration that breaks capture makes the agent unhealthy.
pub struct ConfirmingMedia {
    notices: mpsc::UnboundedSender<MediaNotice>,
    log: MediaLog,
    camera: Option<PathBuf>,
}

impl ConfirmingMedia {
    /// A stand-in reporting to `notices` and logging to `log`.
    pub fn new(
        config: &Config,
        notices: mpsc::UnboundedSender<MediaNotice>,
        log: MediaLog,
    ) -> ConfirmingMedia {
        ConfirmingMedia {
            notices,
            log,
            camera: camera_of(config),
        }
    }

    fn started(&self) -> Vec<MediaNotice> {
        match &self.camera {
            Some(dev) if !dev.exists() => vec![
                MediaNotice::Error(crate::media::MediaError::Io {
                    path: dev.display().to_string(),
                    message: "no such device".into(),
                }),
                MediaNotice::State {
                    state: MediaState::Restarting,
                    encoder: None,
                },
            ],
            _ => vec![MediaNotice::State {
                state: MediaState::Playing,
                encoder: None,
            }],
        }
    }
}

fn camera_of(config: &Config) -> Option<PathBuf> {
    (config.media.video.source == crate::config::VideoSource::V4l2)
        .then(|| PathBuf::from(&config.media.video.device))
}

fn action_name(a: &MediaAction) -> String {
    let debug = format!("{a:?}");
    match a {
        MediaAction::SetMicMuted(_)
        | MediaAction::SetCameraEnabled(_)
        | MediaAction::SetBitrate(_) => debug,
        _ => debug
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

impl MediaControl for ConfirmingMedia {
    fn apply(&mut self, action: MediaAction) {
        if let Ok(mut log) = self.log.lock() {
            log.push(action_name(&action));
        }
        let notice = match action {
            MediaAction::Start | MediaAction::Restart => {
                for n in self.started() {
                    let _ = self.notices.send(n);
                }
                None
            }
            MediaAction::Reconfigure(config) => {
                let camera = camera_of(&config);
                if camera != self.camera {
                    self.camera = camera;
                    for n in self.started() {
                        let _ = self.notices.send(n);
                    }
                }
                None
            }
            MediaAction::Stop => Some(MediaNotice::State {
                state: MediaState::Stopped,
                encoder: None,
            }),
            MediaAction::Attach { id, .. } => Some(MediaNotice::Consumer {
                id,
                event: crate::media::ConsumerEvent::Started,
            }),
            MediaAction::Detach { id } => Some(MediaNotice::Consumer {
                id,
                event: crate::media::ConsumerEvent::Finished,
            }),
            MediaAction::SetMicMuted(m) => Some(MediaNotice::MicMuted(m)),
            MediaAction::SetCameraEnabled(on) => Some(MediaNotice::CameraEnabled(on)),
            MediaAction::SetBitrate(kbps) => Some(MediaNotice::Stats {
                fps: 0.0,
                bitrate_kbps: kbps,
                encoded_kbps: 0,
                encode_usage: 0.0,
            }),
            MediaAction::RequestKeyframe => None,
        };
        if let Some(n) = notice {
            let _ = self.notices.send(n);
        }
    }
}

/// A running simulated box.
pub struct SimBox {
    /// The agent.
    pub agent: AgentHandle,
    /// The fleet client, when the config enables it.
    pub fleet: Option<FleetHandle>,
    /// What the media stand-in was asked for.
    pub media_log: MediaLog,
    agent_task: JoinHandle<anyhow::Result<()>>,
}

impl SimBox {
    /// Starts an agent for `config` (re-read from `config_path` on reload) and, when a broker
    /// is configured, its fleet client, keeping state under `state_dir`.
    pub async fn start(
        config: &Config,
        config_path: Option<PathBuf>,
        state_dir: &Path,
    ) -> anyhow::Result<SimBox> {
        let (tx, rx) = mpsc::unbounded_channel();
        let media_log = MediaLog::default();
        let media = ConfirmingMedia::new(config, tx, media_log.clone());
        let (agent, task) = Agent::new(config, config_path.clone(), Box::new(media), rx);
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
        })
    }

    /// How many times the media stand-in was asked for `name` (e.g. `RequestKeyframe`).
    pub fn media_count(&self, name: &str) -> usize {
        self.media_log
            .lock()
            .map(|l| l.iter().filter(|a| *a == name).count())
            .unwrap_or(0)
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
    }
}

//! The update I/O the machine asks for ([`UpdateAction`]): the resumed download and its checks
//! off the loop, the request to the root installer, and what that installer left at start-up.

use super::io::Done;
use super::state::{IoNotice, Resumed, UpdateAction, UpdateNotice};
use crate::config::Config;
use crate::update::{download, install};
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// The update directory of a configuration.
pub(super) fn dir(config: &Config) -> PathBuf {
    config.state_dir().join(crate::update::DIR)
}

fn tell(tx: &UnboundedSender<Done>, n: UpdateNotice) {
    let _ = tx.send(Done::Notice(IoNotice::Update(n)));
}

/// Carries out one action.
pub(super) fn act(action: UpdateAction, config: &Config, tx: UnboundedSender<Done>) {
    let dir = dir(config);
    match action {
        UpdateAction::Fetch(manifest) => {
            let f = download::Fetch {
                manifest,
                dir,
                reserve_bytes: config.update.reserve_bytes,
                stall_timeout: config.update.stall_timeout,
            };
            tokio::spawn(async move {
                let progress = tx.clone();
                let r = download::fetch(&f, move |p| match p {
                    download::Progress::Downloading { done, total } => {
                        tell(&progress, UpdateNotice::Progress { done, total })
                    }
                    download::Progress::Verifying => tell(&progress, UpdateNotice::Verifying),
                })
                .await;
                tell(&tx, UpdateNotice::Fetched(r));
            });
        }
        UpdateAction::Install {
            manifest,
            package,
            room,
        } => {
            let req = install::Request {
                manifest,
                package,
                room,
            };
            let r = install::write_json(&dir.join(install::REQUEST), &req)
                .map_err(|e| format!("cannot write the install request in {}: {e}", dir.display()));
            tell(&tx, UpdateNotice::Requested(r));
        }
        UpdateAction::Poll => {
            if let Some(o) = install::take_outcome(&dir) {
                tell(
                    &tx,
                    UpdateNotice::Resumed(Resumed {
                        outcome: Some((o.state, o.version, o.reason)),
                        ..Resumed::default()
                    }),
                );
            } else if !dir.join(install::REQUEST).exists() {
                tell(&tx, UpdateNotice::Taken);
            }
        }
        UpdateAction::Withdraw => {
            let _ = std::fs::remove_file(dir.join(install::REQUEST));
        }
        UpdateAction::ProveHealthy { version } => {
            if let Err(e) = install::write_atomic(&dir.join(install::HEALTHY), version.as_bytes()) {
                tracing::error!("update: cannot write the proof of health: {e}");
            }
        }
    }
}

/// What the installer left, for the machine at start-up; none when there is nothing.
pub(super) fn resumed(config: &Config) -> Option<IoNotice> {
    let (trial, outcome) = install::resume(&dir(config));
    if trial.is_none() && outcome.is_none() {
        return None;
    }
    Some(IoNotice::Update(UpdateNotice::Resumed(Resumed {
        room: trial.as_ref().and_then(|t| t.room.clone()),
        trial: trial.map(|t| t.version),
        outcome: outcome.map(|o| (o.state, o.version, o.reason)),
    })))
}

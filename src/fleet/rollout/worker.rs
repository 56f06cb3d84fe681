//! The fleet worker's side of a rollout: a record that arrived on a group's rollout topic goes
//! to the [`Follower`](super::follow::Follower), and what it asks for is carried out here.

use super::follow::{answer_event, Out};
use crate::command::Command;
use crate::fleet::Worker;
use crate::model::now_ms;
use tokio::sync::mpsc;

impl Worker {
    /// A publication on a rollout topic of this box's groups goes to the follower (true);
    /// anything else is not a rollout's (false).
    pub(in crate::fleet) fn rollout_record(
        &mut self,
        p: &rumqttc::v5::mqttbytes::v5::Publish,
        running: &str,
        answers: &mpsc::UnboundedSender<String>,
    ) -> bool {
        let topic = String::from_utf8_lossy(&p.topic);
        let Some(group) = super::group_of(&self.config.prefix, &topic)
            .filter(|g| self.config.groups.iter().any(|x| x == g))
        else {
            return false;
        };
        let key = crate::config::parse_public_key(&self.config.signing.public_key).ok();
        let outs = self
            .rollout
            .on_record(group, &p.payload, key.as_ref(), running, now_ms());
        self.rollout_outs(outs, answers);
        true
    }

    /// Carries out what the rollout follower asked: an event, or the `update` command (whose
    /// answer comes back on `answers` as an event).
    pub(in crate::fleet) fn rollout_outs(
        &mut self,
        outs: Vec<Out>,
        answers: &mpsc::UnboundedSender<String>,
    ) {
        for o in outs {
            match o {
                Out::Event(json) => {
                    let m = self.session.event(json);
                    self.send_reliable(m);
                }
                Out::Start {
                    rollout_id,
                    manifest,
                    force,
                } => {
                    let Some(record) = self.rollout.record(&rollout_id).cloned() else {
                        continue;
                    };
                    tracing::info!(rollout = %rollout_id, version = %manifest.version, "fleet: this box is in the rollout; updating");
                    let (agent, tx, device) =
                        (self.agent.clone(), answers.clone(), self.device_id.clone());
                    tokio::spawn(async move {
                        let r = agent.send(Command::Update { manifest, force }).await;
                        let _ = tx.send(answer_event(&device, &record, &r));
                    });
                }
            }
        }
    }
}

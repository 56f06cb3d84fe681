//! Whom the box receives: the room's other participants as the server reports them, which of
//! them the box subscribes to, and when a subscription is dropped or made afresh.

use super::{notice, Action, SessionState, Sub};
use crate::model::{Mode, Participant, StreamKind};
use crate::room::signaller::{RemotePublisher, RoomError};
use crate::room::RoomNotice;
use std::collections::BTreeMap;
use std::time::Instant;

impl SessionState {
    /// A remote participant's display name, as the room reports it.
    pub fn participant_name(&self, participant: &str) -> Option<String> {
        let p = self.link.as_ref()?.remotes.get(participant)?;
        Some(p.display_name.clone()).filter(|n| !n.is_empty())
    }

    /// The participant a subscription receives.
    pub fn subscriber_of(&self, subscription_id: &str) -> Option<&str> {
        let link = self.link.as_ref()?;
        link.subs
            .iter()
            .find(|(_, s)| s.id == subscription_id)
            .map(|(p, _)| p.as_str())
    }

    /// A participant entered the room, not publishing yet: list it, once.
    pub(super) fn participant_entered(
        &mut self,
        participant_id: String,
        display_name: String,
    ) -> Vec<Action> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let std::collections::btree_map::Entry::Vacant(slot) =
            link.remotes.entry(participant_id.clone())
        else {
            return Vec::new();
        };
        let p = slot.insert(RemotePublisher {
            participant_id,
            display_name,
            audio: false,
            video: false,
            data: false,
            share: false,
        });
        vec![notice(RoomNotice::ParticipantJoined(participant(p)))]
    }

    /// The server offers a running subscription anew: answer it on its connection.
    pub(super) fn reoffered(&mut self, subscription_id: String, offer: String) -> Vec<Action> {
        match self.subscriber_of(&subscription_id) {
            Some(who) => vec![Action::Reanswer {
                participant: who.to_string(),
                subscription_id,
                offer,
            }],
            None => {
                tracing::debug!(subscription = %subscription_id, "room: offer for a gone subscription");
                Vec::new()
            }
        }
    }

    /// A participant publishes (anew, or changed what): list it, report its streams' changes,
    /// and subscribe when it sends anything and the box receives.
    pub(super) fn remote_published(&mut self, p: RemotePublisher) -> Vec<Action> {
        let mode = self.want.as_ref().map(|w| w.mode).unwrap_or_default();
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let id = p.participant_id.clone();
        let mut out = Vec::new();
        let share_changed = link.remotes.get(&id).is_some_and(|o| o.share != p.share);
        match link.remotes.insert(id.clone(), p.clone()) {
            // Without a roster, a participant is listed once its subscription stands.
            None if !link.roster => {
                link.unlisted.insert(id.clone());
            }
            None => {
                out.push(notice(RoomNotice::ParticipantJoined(participant(&p))));
                // Joined while sharing: the presenter rules hear of it at once.
                if p.share {
                    out.push(notice(RoomNotice::Stream {
                        participant_id: id.clone(),
                        kind: StreamKind::Share,
                        enabled: true,
                    }));
                }
            }
            Some(old) => {
                for (kind, was, is) in [
                    (StreamKind::Audio, old.audio, p.audio),
                    (StreamKind::Video, old.video, p.video),
                    (StreamKind::Share, old.share, p.share),
                ] {
                    if was != is {
                        out.push(notice(RoomNotice::Stream {
                            participant_id: id.clone(),
                            kind,
                            enabled: is,
                        }));
                    }
                }
            }
        }
        if mode == Mode::SignallingOnly {
            return out;
        }
        match link.subs.get(&id) {
            // A share that starts or stops: subscribed again, so the screen gets (or drops)
            // the share's video, named as a share in the new offer.
            Some(sub) if (p.video && !sub.video) || share_changed => {
                tracing::debug!(participant = %id, share = p.share, "room: camera on or share changed; subscribing again");
                if let Some(sub) = link.subs.remove(&id) {
                    out.push(Action::Unsubscribe(sub.id));
                }
                out.push(Action::StopPlayback(id.clone()));
                out.push(Action::Subscribe {
                    participant: id,
                    again: false,
                });
            }
            Some(_) => {}
            None if p.audio || p.video || p.data => out.push(Action::Subscribe {
                participant: id,
                again: false,
            }),
            None => {}
        }
        out
    }

    /// A subscription was made: remember it, with whether it carries the participant's video,
    /// and list the participant if the server keeps no roster.
    pub fn subscribed(&mut self, participant: &str, subscription_id: String) -> Vec<Action> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let video = link.remotes.get(participant).is_some_and(|p| p.video);
        link.subs.insert(
            participant.to_string(),
            Sub {
                id: subscription_id,
                video,
            },
        );
        link.resubscribe.remove(participant);
        match link.remotes.get(participant) {
            Some(p) if link.unlisted.remove(participant) => {
                vec![notice(RoomNotice::ParticipantJoined(self::participant(p)))]
            }
            _ => Vec::new(),
        }
    }

    /// Subscribing to `participant` failed (`again`: it replaced a failed one). The agent hears
    /// why; a fault that may pass (a server error, a source not live yet) is tried again after
    /// the participant's own backoff, while the participant is in the room.
    pub fn subscribe_failed(
        &mut self,
        participant: &str,
        again: bool,
        e: &RoomError,
        now: Instant,
    ) -> Vec<Action> {
        let what = if again { "resubscribe" } else { "subscribe to" };
        let mut out = vec![notice(RoomNotice::Error(format!(
            "{what} {participant}: {e}"
        )))];
        let transient = matches!(e, RoomError::Transport(_) | RoomError::Protocol(_));
        let jitter = (self.jitter)();
        let base = self.backoff.clone();
        let Some(link) = self.link.as_mut() else {
            return out;
        };
        if transient
            && link.remotes.contains_key(participant)
            && !link.subs.contains_key(participant)
        {
            let (backoff, due) = link
                .resubscribe
                .entry(participant.to_string())
                .or_insert_with(|| {
                    let mut b = base;
                    b.reset();
                    (b, now)
                });
            *due = now + backoff.next_with(jitter);
            tracing::info!(%participant, retry_in = ?(*due - now), "room: subscribing again later");
        } else if !link.roster && link.remotes.remove(participant).is_some() {
            // Not retried: forget it, as a roster would when it leaves.
            link.unlisted.remove(participant);
            link.resubscribe.remove(participant);
        }
        out.push(Action::StopPlayback(participant.to_string()));
        out
    }

    /// The subscriptions whose retry time came.
    pub(super) fn resubscribe_due(&mut self, now: Instant) -> Vec<Action> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (who, (_, due)) in link.resubscribe.iter_mut() {
            if *due <= now {
                // Not again until this attempt reports (a failure sets a new time).
                *due = now + std::time::Duration::from_secs(24 * 3600);
                out.push(Action::Subscribe {
                    participant: who.clone(),
                    again: true,
                });
            }
        }
        out
    }

    /// A participant stopped publishing (`left` false: it stays listed, its streams off) or
    /// left the room.
    pub(super) fn drop_remote(&mut self, id: &str, left: bool) -> Vec<Action> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(sub) = link.subs.remove(id) {
            out.push(Action::Unsubscribe(sub.id));
        }
        link.resubscribe.remove(id);
        out.push(Action::StopPlayback(id.to_string()));
        if left {
            if link.remotes.remove(id).is_some() && !link.unlisted.remove(id) {
                out.push(notice(RoomNotice::ParticipantLeft(id.to_string())));
            }
        } else if let Some(p) = link.remotes.get_mut(id) {
            let (a, v, sh) = (p.audio, p.video, p.share);
            p.audio = false;
            p.video = false;
            p.share = false;
            for (kind, was) in [
                (StreamKind::Audio, a),
                (StreamKind::Video, v),
                (StreamKind::Share, sh),
            ] {
                if was {
                    out.push(notice(RoomNotice::Stream {
                        participant_id: id.to_string(),
                        kind,
                        enabled: false,
                    }));
                }
            }
        }
        out
    }

    /// A subscription's connection failed: replace it, if its participant is still listed.
    pub fn subscription_failed(&mut self, subscription_id: &str, now: Instant) -> Vec<Action> {
        let Some(who) = self.subscriber_of(subscription_id).map(str::to_string) else {
            return Vec::new();
        };
        tracing::warn!(participant = %who, "room: subscription failed; resubscribing");
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(sub) = link.subs.remove(&who) {
            out.push(Action::Unsubscribe(sub.id));
        }
        if !link.roster {
            // Its stream stopped flowing: unlisted until a new subscription stands, which is
            // tried after the participant's backoff (the source may be gone for a while).
            out.push(Action::StopPlayback(who.clone()));
            if link.remotes.contains_key(&who) && link.unlisted.insert(who.clone()) {
                out.push(notice(RoomNotice::ParticipantLeft(who.clone())));
            }
            out.extend(self.subscribe_failed(
                &who,
                true,
                &RoomError::Transport("its connection failed".into()),
                now,
            ));
            return out;
        }
        if link.remotes.contains_key(&who) {
            out.push(Action::Subscribe {
                participant: who,
                again: true,
            });
        }
        out
    }

    /// Answering a subscription's new offer failed: subscribe afresh.
    pub fn reanswer_failed(&mut self, participant: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(sub) = self.link.as_mut().and_then(|l| l.subs.remove(participant)) {
            out.push(Action::Unsubscribe(sub.id));
        }
        out.push(Action::Subscribe {
            participant: participant.to_string(),
            again: true,
        });
        out
    }
}

/// A remote publisher as the agent lists it.
fn participant(p: &RemotePublisher) -> Participant {
    let mut streams = BTreeMap::new();
    for (kind, on) in [(StreamKind::Audio, p.audio), (StreamKind::Video, p.video)] {
        if !on {
            continue;
        }
        let (suffix, codec) = if kind == StreamKind::Audio {
            ("audio", "opus")
        } else {
            ("video", "H264")
        };
        let id = format!("{}-{suffix}", p.participant_id);
        streams.insert(
            id.clone(),
            crate::model::Stream {
                id,
                kind,
                codec: codec.into(),
                paused: false,
            },
        );
    }
    Participant {
        participant_id: p.participant_id.clone(),
        display_name: p.display_name.clone(),
        local: false,
        mode: if p.audio || p.video {
            Mode::SendAndReceive
        } else {
            Mode::ReceiveOnly
        },
        metadata: Default::default(),
        mic_on: p.audio,
        webcam_on: p.video,
        streams,
    }
}

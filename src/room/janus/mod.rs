//! The Janus VideoRoom backend: sessions, handles, transactions and keepalives over Janus's
//! WebSocket API ([`client`]) and the VideoRoom requests on top ([`Janus`]). The tests' launcher
//! for a local Janus is `tests/support/janus.rs`; the demo's is `scripts/janus-demo.sh`.
//!
//! The box joins as a publisher on one handle and subscribes to each remote publisher on a
//! handle of its own (one PeerConnection per remote participant). Chat travels on the
//! VideoRoom's data channels.
//!
//! Imported by `room::spawn`, which picks the backend; the tests' own Janus peers reuse
//! [`proto`]'s id helpers.

pub mod client;
pub mod proto;

use super::signaller::{
    Joined, PublishKinds, RemotePublisher, RoomError, SignalEvent, Signaller, Subscription,
};
use super::JoinRequest;
use crate::config::RoomConfig;
use client::{Client, ClientError, ClientEvent};
use proto::{id_string, id_value, Incoming, Jsep};
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::sync::mpsc;

const PLUGIN: &str = "janus.plugin.videoroom";
/// The description of the box's content share in the room's `publishers` lists, after the
/// concept model's stream kind.
pub const SHARE_DESCRIPTION: &str = "share";
/// Janus VideoRoom's "no such room" error code.
const NO_SUCH_ROOM: i64 = 426;

impl From<ClientError> for RoomError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { .. } => RoomError::Refused(e.to_string()),
            ClientError::Unexpected { .. } => RoomError::Protocol(e.to_string()),
            _ => RoomError::Transport(e.to_string()),
        }
    }
}

/// The connection state of one join.
struct Conn {
    client: Client,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    publisher: u64,
    private_id: Option<u64>,
    /// Subscription id → handle.
    subscriptions: HashMap<String, u64>,
    /// Handle → subscribed participant, for hangups.
    handles: HashMap<u64, String>,
}

/// A Janus VideoRoom backend.
pub struct Janus {
    config: RoomConfig,
    room: String,
    conn: Option<Conn>,
    next_sub: u64,
}

impl Janus {
    /// A backend for the configured server; connects on [`Signaller::join`].
    pub fn new(config: RoomConfig) -> Janus {
        Janus {
            room: config.room_id.clone(),
            config,
            conn: None,
            next_sub: 1,
        }
    }

    fn conn(&mut self) -> Result<&mut Conn, RoomError> {
        self.conn
            .as_mut()
            .ok_or_else(|| RoomError::Transport("not connected".into()))
    }

    fn with_secret(&self, mut body: Value) -> Value {
        if !self.config.secret.is_empty() {
            body["secret"] = json!(self.config.secret);
        }
        body
    }

    async fn ensure_room(&self, client: &Client, handle: u64) -> Result<(), RoomError> {
        let exists = client
            .request(
                handle,
                json!({"request": "exists", "room": id_value(&self.room)}),
            )
            .await?;
        if exists.get("exists").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        if !self.config.create_room {
            return Err(RoomError::Refused(format!(
                "room {} does not exist and room.create_room is off",
                self.room
            )));
        }
        let mut body = json!({
            "request": "create",
            "room": id_value(&self.room),
            "description": format!("roombox {}", self.room),
            "publishers": self.config.max_publishers,
            "audiocodec": "opus",
            "videocodec": "h264",
            "h264_profile": "42e01f",
            "audiolevel_event": true,
            "audio_active_packets": 50,
            "audio_level_average": 40,
            "notify_joining": true,
            "fir_freq": 10,
            "bitrate": 0,
        });
        if !self.config.secret.is_empty() {
            body["secret"] = json!(self.config.secret);
        }
        if !self.config.pin.is_empty() {
            body["pin"] = json!(self.config.pin);
        }
        if !self.config.record_dir.as_os_str().is_empty() {
            body["rec_dir"] = json!(self.config.record_dir.display().to_string());
        }
        match client.request(handle, body).await {
            Ok(_) => Ok(()),
            // Someone else created it in between.
            Err(ClientError::Refused { code: 427, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn translate(&mut self, m: Incoming) -> Option<SignalEvent> {
        let conn = self.conn.as_mut()?;
        match m {
            Incoming::Event {
                sender,
                data,
                jsep: Some(jsep),
                ..
            } if sender != conn.publisher && jsep.kind == "offer" => {
                reoffer(&conn.handles, sender, &data, jsep)
            }
            Incoming::Event { sender, data, .. } => {
                translate_event(sender == conn.publisher, &data, &self.room)
            }
            Incoming::Hangup { sender, reason } => {
                let what = if sender == conn.publisher {
                    "publisher".to_string()
                } else {
                    conn.handles.get(&sender)?.clone()
                };
                Some(SignalEvent::MediaDown { what, reason })
            }
            Incoming::Detached { sender } if sender == conn.publisher => {
                Some(SignalEvent::Disconnected {
                    reason: "the publisher handle was detached".into(),
                })
            }
            _ => None,
        }
    }
}

/// An offer Janus sends on a subscription handle by itself: Janus 1.x re-offers a
/// subscription (`"videoroom": "updated"`) when the streams it carries change.
fn reoffer(
    handles: &HashMap<u64, String>,
    sender: u64,
    data: &Value,
    jsep: Jsep,
) -> Option<SignalEvent> {
    let Some(id) = handles.get(&sender) else {
        tracing::debug!(sender, event = %data, "janus: offer on an unknown handle");
        return None;
    };
    tracing::info!(subscription = %id, event = %data, "janus: subscription re-offered");
    Some(SignalEvent::SubscriptionOffer {
        subscription_id: id.clone(),
        offer: jsep.sdp,
    })
}

/// Turns one VideoRoom event into what the session understands (`None`: nothing to act on).
fn translate_event(on_publisher: bool, data: &Value, room: &str) -> Option<SignalEvent> {
    let vr = data.get("videoroom").and_then(Value::as_str).unwrap_or("");
    match vr {
        "destroyed" => {
            return Some(SignalEvent::RoomClosed {
                reason: "ended".into(),
            })
        }
        "talking" | "stopped-talking" => {
            let id = data.get("id").and_then(id_string)?;
            return Some(SignalEvent::Talking {
                participant_id: id,
                talking: vr == "talking",
            });
        }
        _ => {}
    }
    if !on_publisher {
        return None;
    }
    if let Some(j) = data.get("joining") {
        let id = j.get("id").and_then(id_string)?;
        return Some(SignalEvent::ParticipantJoined {
            participant_id: id,
            display_name: j
                .get("display")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    if let Some(p) = proto::publishers(data).into_iter().next() {
        return Some(SignalEvent::Published(remote(p)));
    }
    if let Some(u) = data.get("unpublished") {
        if u.as_str() == Some("ok") {
            return None; // our own unpublish
        }
        return Some(SignalEvent::Unpublished {
            participant_id: id_string(u)?,
        });
    }
    if let Some(l) = data.get("leaving").or_else(|| data.get("kicked")) {
        if l.as_str() == Some("ok") {
            return Some(SignalEvent::RoomClosed {
                reason: "kicked".into(),
            });
        }
        return Some(SignalEvent::ParticipantLeft {
            participant_id: id_string(l)?,
        });
    }
    if data.get("error_code").is_some() {
        tracing::warn!(room, event = %data, "janus: plugin error event");
    }
    None
}

fn remote(p: proto::Publisher) -> RemotePublisher {
    RemotePublisher {
        participant_id: p.id,
        display_name: p.display,
        audio: p.audio,
        video: p.video,
        data: p.data,
        share: p.share,
    }
}

#[async_trait::async_trait]
impl Signaller for Janus {
    fn name(&self) -> &'static str {
        "janus"
    }

    async fn join(&mut self, req: &JoinRequest) -> Result<Joined, RoomError> {
        if let Some(old) = self.conn.take() {
            let _ = old.client.destroy().await;
        }
        self.room = req.room_id.clone();
        let (client, events) = Client::connect(&self.config.url).await?;
        let publisher = client.attach(PLUGIN).await?;
        self.ensure_room(&client, publisher).await?;
        let mut body = json!({
            "request": "join",
            "ptype": "publisher",
            "room": id_value(&self.room),
            "display": req.display_name,
        });
        if !self.config.pin.is_empty() {
            body["pin"] = json!(self.config.pin);
        }
        let (data, _) = match client.message(publisher, body, None).await {
            Err(ClientError::Refused { code, reason, .. }) if code == NO_SUCH_ROOM => {
                return Err(RoomError::Refused(format!("room {}: {reason}", self.room)))
            }
            other => other?,
        };
        if data.get("videoroom").and_then(Value::as_str) != Some("joined") {
            return Err(RoomError::Protocol(format!("join answered with {data}")));
        }
        let participant_id = data
            .get("id")
            .and_then(id_string)
            .ok_or_else(|| RoomError::Protocol(format!("joined without an id: {data}")))?;
        let joined = Joined {
            room_id: self.room.clone(),
            session_id: Some(client.session_id.to_string()),
            participant_id,
            publishers: proto::publishers(&data).into_iter().map(remote).collect(),
            roster: true,
        };
        self.conn = Some(Conn {
            private_id: data.get("private_id").and_then(Value::as_u64),
            client,
            events,
            publisher,
            subscriptions: HashMap::new(),
            handles: HashMap::new(),
        });
        Ok(joined)
    }

    async fn publish(&mut self, offer: &str, kinds: PublishKinds) -> Result<String, RoomError> {
        let conn = self.conn()?;
        let jsep = Jsep {
            kind: "offer".into(),
            sdp: offer.to_string(),
        };
        let body = json!({"request": "publish", "audio": kinds.audio, "video": kinds.video, "data": kinds.data});
        let (data, answer) = conn
            .client
            .message(conn.publisher, body, Some(&jsep))
            .await?;
        match answer {
            Some(a) if a.kind == "answer" => Ok(a.sdp),
            _ => Err(RoomError::Protocol(format!(
                "publish was answered without an SDP answer: {data}"
            ))),
        }
    }

    async fn renegotiate(&mut self, offer: &str, kinds: PublishKinds) -> Result<String, RoomError> {
        // What Janus's own clients do: `configure` with the new offer. Janus marks the streams
        // the offer turns inactive `"disabled": true` in the `publishers` event the others get.
        // The share's media section is described "share" (Janus 1.1 multistream), so the
        // others can tell it from the camera.
        let mut body = json!({"request": "configure"});
        if let Some(mid) = &kinds.share {
            body["descriptions"] = json!([{"mid": mid, "description": SHARE_DESCRIPTION}]);
        }
        let conn = self.conn()?;
        let jsep = Jsep {
            kind: "offer".into(),
            sdp: offer.to_string(),
        };
        let (data, answer) = conn
            .client
            .message(conn.publisher, body, Some(&jsep))
            .await?;
        match answer {
            Some(a) if a.kind == "answer" => Ok(a.sdp),
            _ => Err(RoomError::Protocol(format!(
                "configure was answered without an SDP answer: {data}"
            ))),
        }
    }

    async fn unpublish(&mut self) -> Result<(), RoomError> {
        let conn = self.conn()?;
        conn.client
            .message(conn.publisher, json!({"request": "unpublish"}), None)
            .await?;
        Ok(())
    }

    async fn subscribe(&mut self, participant_id: &str) -> Result<Subscription, RoomError> {
        let room = id_value(&self.room);
        let pin = self.config.pin.clone();
        let sub_id = format!("sub{}", self.next_sub);
        self.next_sub += 1;
        let conn = self.conn()?;
        let handle = conn.client.attach(PLUGIN).await?;
        let mut body = json!({
            "request": "join",
            "ptype": "subscriber",
            "room": room,
            "streams": [{"feed": id_value(participant_id)}],
        });
        if let Some(p) = conn.private_id {
            body["private_id"] = json!(p);
        }
        if !pin.is_empty() {
            body["pin"] = json!(pin);
        }
        let result = conn.client.message(handle, body, None).await;
        let (data, offer) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = conn.client.detach(handle).await;
                return Err(e.into());
            }
        };
        let Some(offer) = offer.filter(|j| j.kind == "offer") else {
            let _ = conn.client.detach(handle).await;
            return Err(RoomError::Protocol(format!(
                "subscription to {participant_id} came without an offer: {data}"
            )));
        };
        conn.subscriptions.insert(sub_id.clone(), handle);
        conn.handles.insert(handle, sub_id.clone());
        let share_tracks = proto::share_tracks(&data, &offer.sdp);
        Ok(Subscription {
            id: sub_id,
            offer: offer.sdp,
            share_tracks,
        })
    }

    async fn accept(&mut self, subscription_id: &str, answer: &str) -> Result<(), RoomError> {
        let conn = self.conn()?;
        let handle = *conn
            .subscriptions
            .get(subscription_id)
            .ok_or_else(|| RoomError::Protocol(format!("no subscription {subscription_id}")))?;
        let jsep = Jsep {
            kind: "answer".into(),
            sdp: answer.to_string(),
        };
        conn.client
            .message(handle, json!({"request": "start"}), Some(&jsep))
            .await?;
        Ok(())
    }

    async fn unsubscribe(&mut self, subscription_id: &str) -> Result<(), RoomError> {
        let conn = self.conn()?;
        if let Some(handle) = conn.subscriptions.remove(subscription_id) {
            conn.handles.remove(&handle);
            conn.client.detach(handle).await?;
        }
        Ok(())
    }

    async fn leave(&mut self) -> Result<(), RoomError> {
        if let Some(conn) = self.conn.take() {
            let _ = conn
                .client
                .message(conn.publisher, json!({"request": "leave"}), None)
                .await;
            conn.client.destroy().await?;
        }
        Ok(())
    }

    async fn end_for_all(&mut self) -> Result<(), RoomError> {
        let body = self.with_secret(json!({"request": "destroy", "room": id_value(&self.room)}));
        let conn = self.conn()?;
        conn.client.request(conn.publisher, body).await?;
        Ok(())
    }

    async fn set_recording(&mut self, on: bool) -> Result<(), RoomError> {
        let body = self.with_secret(json!({
            "request": "enable_recording",
            "room": id_value(&self.room),
            "record": on,
        }));
        let conn = self.conn()?;
        conn.client.request(conn.publisher, body).await?;
        Ok(())
    }

    async fn next_event(&mut self) -> Option<SignalEvent> {
        loop {
            let conn = self.conn.as_mut()?;
            match conn.events.recv().await {
                None => {
                    self.conn = None;
                    return Some(SignalEvent::Disconnected {
                        reason: "the signalling task ended".into(),
                    });
                }
                Some(ClientEvent::Closed(reason)) => {
                    self.conn = None;
                    return Some(SignalEvent::Disconnected { reason });
                }
                Some(ClientEvent::Message(m)) => {
                    if let Some(ev) = self.translate(m) {
                        return Some(ev);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn videoroom_events_translate() {
        let ev = |v: Value| translate_event(true, &v, "1");
        assert_eq!(
            ev(json!({"videoroom":"event","leaving":5})),
            Some(SignalEvent::ParticipantLeft {
                participant_id: "5".into()
            })
        );
        assert_eq!(
            ev(json!({"videoroom":"event","unpublished":5})),
            Some(SignalEvent::Unpublished {
                participant_id: "5".into()
            })
        );
        assert_eq!(
            ev(json!({"videoroom":"talking","id":5,"audio-level-dBov-avg":-20})),
            Some(SignalEvent::Talking {
                participant_id: "5".into(),
                talking: true
            })
        );
        assert_eq!(
            ev(json!({"videoroom":"destroyed","room":1})),
            Some(SignalEvent::RoomClosed {
                reason: "ended".into()
            })
        );
        assert!(matches!(
            ev(json!({"videoroom":"event","publishers":[{"id":7,"display":"B","streams":[{"type":"video","codec":"h264"}]}]})),
            Some(SignalEvent::Published(p)) if p.participant_id == "7" && p.video && !p.audio
        ));
        // A camera turned off (Janus 1.1.2 after a renegotiation): the stream is listed,
        // disabled and without a codec.
        assert!(matches!(
            ev(json!({"videoroom":"event","room":1,"publishers":[{"id":7,"display":"B","streams":[
                {"type":"video","mid":"0","disabled":true},
                {"type":"audio","mid":"1","codec":"opus"}]}]})),
            Some(SignalEvent::Published(p)) if p.participant_id == "7" && !p.video && p.audio
        ));
        // Malformed or irrelevant: nothing, and no panic.
        assert_eq!(ev(json!({"videoroom":"event","leaving":{"x":1}})), None);
        assert_eq!(ev(json!({"videoroom":"talking"})), None);
        assert_eq!(ev(json!({"videoroom":"event","publishers":"x"})), None);
        assert_eq!(ev(json!({})), None);
        // A subscription re-offered: answered by the session; unknown handles are ignored.
        let handles = HashMap::from([(11u64, "sub1".to_string())]);
        let offer = Jsep {
            kind: "offer".into(),
            sdp: "v=0".into(),
        };
        assert_eq!(
            reoffer(&handles, 11, &json!({"videoroom":"updated"}), offer.clone()),
            Some(SignalEvent::SubscriptionOffer {
                subscription_id: "sub1".into(),
                offer: "v=0".into()
            })
        );
        assert_eq!(reoffer(&handles, 12, &json!({}), offer), None);
        // Publisher list events on a subscriber handle are not about the room.
        assert_eq!(
            translate_event(false, &json!({"videoroom":"event","leaving":5}), "1"),
            None
        );
    }
}

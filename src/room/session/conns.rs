//! The connections of one stay in a room, owned by the session task: the publisher, one
//! connection per subscription, and the playback pipeline. Who is who (which participant a
//! subscription receives, what is published) lives in the state.

use super::super::peer::Publisher;
use super::super::playback::Playback;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::PeerConnection;

pub(super) struct SubConn {
    pub pc: Arc<dyn PeerConnection>,
    /// The participant's chat and track readers, stopped with the subscription.
    pub tasks: Vec<JoinHandle<()>>,
    /// The ids of the tracks that carry the participant's content share.
    pub share_tracks: Vec<String>,
}

/// The connections of one stay in a room; who is who lives in the state.
#[derive(Default)]
pub(super) struct Conns {
    pub publisher: Option<Publisher>,
    pub feedback_task: Option<JoinHandle<()>>,
    /// Reads the share track's RTCP (keyframe requests, receiver reports).
    pub share_task: Option<JoinHandle<()>>,
    /// Subscription id → its connection.
    pub subs: HashMap<String, SubConn>,
    pub playback: Option<Playback>,
}

impl Conns {
    /// Closes the publisher, every subscription and the playback.
    pub async fn close(mut self) {
        for t in [self.feedback_task.take(), self.share_task.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
        if let Some(p) = self.publisher.take() {
            tracing::debug!("room: closing the publisher");
            let _ = p.pc.close().await;
        }
        for (id, sub) in self.subs.drain() {
            tracing::debug!(subscription = %id, "room: closing a subscription");
            sub.close().await;
        }
        tracing::debug!("room: connections closed");
        if let Some(p) = self.playback.take() {
            // Stopping a pipeline blocks; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
    }
}

impl SubConn {
    /// Stops the subscription's readers and closes its connection.
    pub async fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.pc.close().await;
    }
}

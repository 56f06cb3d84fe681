//! One WebSocket connection to Janus and one Janus session on it: requests matched to replies by
//! transaction, keepalives, and a stream of everything else (plugin events, hangups).
//!
//! The connection runs in its own task. [`Client`] is the handle; when the task ends (the socket
//! closed, Janus died, the session timed out) every pending request fails and
//! [`ClientEvent::Closed`] is the last event.

use super::proto::{self, Incoming, Jsep};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Janus expires a session after 60 s without traffic; keepalives go well inside that.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// How long a request may wait for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest text frame accepted from the server.
const MAX_FRAME: usize = 1 << 20;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Could not reach the server.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The connection is gone.
    #[error("the signalling connection closed")]
    Closed,
    /// No reply in time.
    #[error("no reply to `{0}` within the timeout")]
    Timeout(String),
    /// Janus refused the request.
    #[error("janus refused `{request}`: {code} {reason}")]
    Refused {
        /// What was asked.
        request: String,
        /// Janus's or the plugin's error code.
        code: i64,
        reason: String,
    },
    /// The reply was not what the request expects.
    #[error("unexpected reply to `{request}`: {detail}")]
    Unexpected {
        /// What was asked.
        request: String,
        /// What was wrong.
        detail: String,
    },
}

/// What the connection reports besides replies.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A message not answering a pending request (plugin events, webrtcup, hangup, media).
    Message(Incoming),
    /// The connection or session ended; nothing follows.
    Closed(String),
}

/// A reply a pending request waits for.
#[derive(Debug)]
enum Reply {
    Success(Value),
    Event(Value, Option<Jsep>),
    Error(i64, String),
}

struct Pending {
    /// Waits for the plugin event rather than `ack` (asynchronous plugin requests).
    wants_event: bool,
    tx: oneshot::Sender<Reply>,
}

type PendingMap = Arc<Mutex<HashMap<String, Pending>>>;

/// A Janus session over one WebSocket.
#[derive(Clone)]
pub struct Client {
    out: mpsc::UnboundedSender<String>,
    pending: PendingMap,
    next: Arc<AtomicU64>,
    /// The session id Janus gave.
    pub session_id: u64,
}

impl Client {
    /// Connects to `url` (subprotocol `janus-protocol`), creates a session and starts the
    /// connection task. Events not answering a request arrive on the returned receiver.
    pub async fn connect(
        url: &str,
    ) -> Result<(Client, mpsc::UnboundedReceiver<ClientEvent>), ClientError> {
        let cerr = |reason: String| ClientError::Connect {
            url: url.to_string(),
            reason,
        };
        let mut req = url.into_client_request().map_err(|e| cerr(e.to_string()))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let connect = tokio_tungstenite::connect_async(req);
        let (ws, _) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
            .await
            .map_err(|_| cerr("timed out".into()))?
            .map_err(|e| cerr(e.to_string()))?;
        let (out, out_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let pending: PendingMap = Arc::default();
        let mut client = Client {
            out,
            pending: pending.clone(),
            next: Arc::new(AtomicU64::new(1)),
            session_id: 0,
        };
        let keepalive_client = client.clone();
        tokio::spawn(run(ws, out_rx, pending, ev_tx, keepalive_client));
        let data = client.core(json!({"janus": "create"}), "create").await?;
        client.session_id =
            data.get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| ClientError::Unexpected {
                    request: "create".into(),
                    detail: format!("no session id in {data}"),
                })?;
        client
            .out
            .send(format!("session:{}", client.session_id))
            .map_err(|_| ClientError::Closed)?;
        Ok((client, ev_rx))
    }

    fn transaction(&self) -> String {
        format!("rb{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    async fn send(
        &self,
        mut msg: Value,
        wants_event: bool,
        what: &str,
    ) -> Result<Reply, ClientError> {
        let t = self.transaction();
        msg["transaction"] = json!(t);
        if self.session_id != 0 {
            msg["session_id"] = json!(self.session_id);
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| ClientError::Closed)?
            .insert(t.clone(), Pending { wants_event, tx });
        if self.out.send(msg.to_string()).is_err() {
            self.forget(&t);
            return Err(ClientError::Closed);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.forget(&t);
                Err(ClientError::Timeout(what.to_string()))
            }
        }
    }

    fn forget(&self, t: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(t);
        }
    }

    /// A core request (`create`, `attach`, `detach`, `destroy`) answered by `success`.
    async fn core(&self, msg: Value, what: &str) -> Result<Value, ClientError> {
        match self.send(msg, false, what).await? {
            Reply::Success(v) => Ok(v),
            Reply::Error(code, reason) => Err(ClientError::Refused {
                request: what.into(),
                code,
                reason,
            }),
            Reply::Event(v, _) => Err(ClientError::Unexpected {
                request: what.into(),
                detail: format!("an event: {v}"),
            }),
        }
    }

    /// Attaches a plugin; returns the handle id.
    pub async fn attach(&self, plugin: &str) -> Result<u64, ClientError> {
        let data = self
            .core(json!({"janus": "attach", "plugin": plugin}), "attach")
            .await?;
        data.get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| ClientError::Unexpected {
                request: "attach".into(),
                detail: format!("no handle id in {data}"),
            })
    }

    /// Detaches a handle.
    pub async fn detach(&self, handle: u64) -> Result<(), ClientError> {
        self.core(json!({"janus": "detach", "handle_id": handle}), "detach")
            .await
            .map(|_| ())
    }

    /// Destroys the session (best effort; the connection stays open).
    pub async fn destroy(&self) -> Result<(), ClientError> {
        self.core(json!({"janus": "destroy"}), "destroy")
            .await
            .map(|_| ())
    }

    /// A synchronous plugin request (`exists`, `create`, `destroy`, `enable_recording`, ...):
    /// returns the plugin's data, or the plugin's error as [`ClientError::Refused`].
    pub async fn request(&self, handle: u64, body: Value) -> Result<Value, ClientError> {
        let what = body
            .get("request")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_string();
        let data = self
            .core(
                json!({"janus": "message", "handle_id": handle, "body": body}),
                &what,
            )
            .await?;
        plugin_result(&what, data)
    }

    /// An asynchronous plugin request (`join`, `publish`, `start`, `leave`, ...): waits for the
    /// plugin event answering it and returns its data and session description.
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<&Jsep>,
    ) -> Result<(Value, Option<Jsep>), ClientError> {
        let what = body
            .get("request")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_string();
        let mut msg = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j.to_json();
        }
        match self.send(msg, true, &what).await? {
            Reply::Event(data, jsep) => Ok((plugin_result(&what, data)?, jsep)),
            Reply::Success(data) => Ok((plugin_result(&what, data)?, None)),
            Reply::Error(code, reason) => Err(ClientError::Refused {
                request: what,
                code,
                reason,
            }),
        }
    }

    /// Sends one trickled ICE candidate (`{"candidate", "sdpMLineIndex"}`, or
    /// `{"completed": true}`) for a handle.
    pub async fn trickle(&self, handle: u64, candidate: Value) -> Result<(), ClientError> {
        self.core(
            json!({"janus": "trickle", "handle_id": handle, "candidate": candidate}),
            "trickle",
        )
        .await
        .map(|_| ())
    }

    /// True while the connection task runs.
    pub fn is_open(&self) -> bool {
        !self.out.is_closed()
    }
}

/// Turns a plugin's `{"error_code":..,"error":..}` into an error.
fn plugin_result(what: &str, data: Value) -> Result<Value, ClientError> {
    if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
        return Err(ClientError::Refused {
            request: what.into(),
            code,
            reason: data
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(data)
}

async fn run<S>(
    ws: S,
    mut out_rx: mpsc::UnboundedReceiver<String>,
    pending: PendingMap,
    events: mpsc::UnboundedSender<ClientEvent>,
    client: Client,
) where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures::Sink<Message>
        + Unpin,
{
    // The client clone is for keepalives only; drop its sender so the task ends once every
    // real handle is gone.
    let keepalive_out = client.out.clone();
    drop(client);
    let (mut sink, mut stream) = ws.split();
    let mut session_id: Option<u64> = None;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ka = 0u64;
    let reason = loop {
        tokio::select! {
            msg = out_rx.recv() => match msg {
                None => break "closed by the client".to_string(),
                Some(text) => {
                    if let Some(sid) = text.strip_prefix("session:") {
                        session_id = sid.parse().ok();
                        continue;
                    }
                    if sink.send(Message::text(text)).await.is_err() {
                        break "send failed".to_string();
                    }
                }
            },
            frame = stream.next() => match frame {
                None => break "the server closed the connection".to_string(),
                Some(Err(e)) => break format!("socket error: {e}"),
                Some(Ok(Message::Text(text))) => {
                    if text.len() > MAX_FRAME {
                        tracing::warn!(bytes = text.len(), "janus: oversized frame ignored");
                        continue;
                    }
                    match proto::parse(&text) {
                        Ok(Incoming::Timeout) => break "the janus session timed out".to_string(),
                        Ok(m) => dispatch(m, &pending, &events),
                        Err(e) => {
                            let head: String = text.chars().take(200).collect();
                            tracing::warn!(error = %e, frame = %head, "janus: malformed message ignored");
                        }
                    }
                }
                Some(Ok(Message::Close(_))) => break "the server closed the connection".to_string(),
                Some(Ok(_)) => {}
            },
            _ = keepalive.tick() => {
                if let Some(sid) = session_id {
                    ka += 1;
                    let msg = json!({"janus": "keepalive", "session_id": sid, "transaction": format!("ka{ka}")});
                    if sink.send(Message::text(msg.to_string())).await.is_err() {
                        break "keepalive failed".to_string();
                    }
                }
            }
        }
    };
    drop(keepalive_out);
    tracing::info!(%reason, "janus: connection ended");
    if let Ok(mut p) = pending.lock() {
        p.clear(); // dropping the senders fails every waiting request with Closed
    }
    let _ = events.send(ClientEvent::Closed(reason));
}

fn dispatch(m: Incoming, pending: &PendingMap, events: &mpsc::UnboundedSender<ClientEvent>) {
    let Ok(mut p) = pending.lock() else { return };
    match m {
        Incoming::Success { transaction, data } => {
            if let Some(w) = p.remove(&transaction) {
                let _ = w.tx.send(Reply::Success(data));
            }
        }
        Incoming::Error {
            transaction: Some(t),
            code,
            reason,
        } if p.contains_key(&t) => {
            if let Some(w) = p.remove(&t) {
                let _ = w.tx.send(Reply::Error(code, reason));
            }
        }
        Incoming::Ack { transaction } => {
            // An ack completes requests that expect no event (keepalive acks match nothing).
            if p.get(&transaction).is_some_and(|w| !w.wants_event) {
                if let Some(w) = p.remove(&transaction) {
                    let _ = w.tx.send(Reply::Success(Value::Null));
                }
            }
        }
        Incoming::Event {
            transaction: Some(ref t),
            ..
        } if p.contains_key(t) => {
            if let Incoming::Event {
                transaction: Some(t),
                data,
                jsep,
                ..
            } = m
            {
                if let Some(w) = p.remove(&t) {
                    let _ = w.tx.send(Reply::Event(data, jsep));
                }
            }
        }
        other => {
            drop(p);
            let _ = events.send(ClientEvent::Message(other));
        }
    }
}

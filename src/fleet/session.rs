//! The fleet session, without I/O: requests in, decisions and messages out.
//!
//! Like rumqttc's own `state.rs`, this part knows nothing of sockets or clocks: the event loop in
//! [`super::spawn`] feeds it what arrives (with the time) and carries out what it returns. It
//! decodes commands, checks signatures, answers re-delivered commands from a cache, and builds
//! every message the box publishes.
//!
//! Imported by the fleet client (`fleet/mod.rs`) and its tests (`session/tests.rs`) only.

use super::dedupe::Answered;
use super::signing::{Checked, Verifier};
use super::topic::Topics;
use crate::api::ReplyLine;
use crate::command::{Command, CommandError, ErrorCode, MAX_COMMAND_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The user property carrying a command's id.
pub const PROP_ID: &str = "id";
/// The fleet-level command that replaces the fleet drop-in configuration.
pub const SET_CONFIG: &str = "set-config";
/// Most command ids remembered at once.
const MAX_IDS: usize = 20_000;

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    /// JSON payload.
    pub payload: String,
    pub retain: bool,
    /// QoS 1 (else QoS 0).
    pub qos1: bool,
    /// MQTT v5 correlation data.
    #[serde(default, with = "b64_opt")]
    pub correlation: Option<Vec<u8>>,
    /// MQTT v5 user properties.
    #[serde(default)]
    pub user: Vec<(String, String)>,
}

mod b64_opt {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// A publication received on a command topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Topic it arrived on.
    pub topic: String,
    pub payload: Vec<u8>,
    /// MQTT v5 response topic.
    pub response_topic: Option<String>,
    /// MQTT v5 correlation data.
    pub correlation: Option<Vec<u8>>,
    /// MQTT v5 user properties.
    pub user: Vec<(String, String)>,
    /// The broker re-delivered it (DUP).
    pub dup: bool,
}

/// What a command asks the box to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// An agent command.
    Agent(Command),
    /// Replace the fleet drop-in configuration with this TOML text.
    SetConfig(String),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Publish this reply; nothing is carried out.
    Reply(Message),
    /// Carry out `work`, then give its outcome to [`Session::done`] with `ticket`.
    Run {
        /// Names this run.
        ticket: u64,
        /// What to do.
        work: Work,
    },
    /// The same command id is being carried out; its reply will answer this request too.
    Wait,
    /// Not a command topic of this box.
    Ignore,
}

#[derive(Debug, Clone)]
struct ReplyTo {
    topic: String,
    correlation: Option<Vec<u8>>,
}

#[derive(Debug)]
enum Seen {
    Running(Vec<ReplyTo>),
    Done { line: ReplyLine, at_ms: u64 },
}

#[derive(Debug)]
struct Ticket {
    id: Option<String>,
    name: String,
    reply_to: ReplyTo,
}

/// The pure session.
#[derive(Debug)]
pub struct Session {
    topics: Topics,
    verifier: Option<Verifier>,
    dedupe_ms: u64,
    seen: HashMap<String, Seen>,
    /// Ids in the order they finished, for expiry.
    finished: VecDeque<(u64, String)>,
    tickets: HashMap<u64, Ticket>,
    next_ticket: u64,
    /// Finished since the last [`Session::take_answered`], for the on-disk journal.
    fresh: Vec<Answered>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetConfigArgs {
    toml: String,
}

impl Session {
    /// A session for `topics`; `verifier` when commands must be signed.
    pub fn new(topics: Topics, verifier: Option<Verifier>, dedupe_window: Duration) -> Session {
        Session {
            topics,
            verifier,
            dedupe_ms: dedupe_window.as_millis() as u64,
            seen: HashMap::new(),
            finished: VecDeque::new(),
            tickets: HashMap::new(),
            next_ticket: 1,
            fresh: Vec::new(),
        }
    }

    /// Takes in a new configuration (topics, signature checks, window) and keeps every id
    /// already answered or running, so a reload cannot make a command act twice.
    pub fn reconfigure(
        &mut self,
        topics: Topics,
        verifier: Option<Verifier>,
        dedupe_window: Duration,
    ) {
        self.topics = topics;
        self.verifier = verifier;
        self.dedupe_ms = dedupe_window.as_millis() as u64;
    }

    /// Remembers commands answered before a restart (oldest first), as if they had just been
    /// answered here.
    pub fn remember(&mut self, answered: Vec<Answered>) {
        for a in answered {
            self.seen.insert(
                a.id.clone(),
                Seen::Done {
                    line: a.reply,
                    at_ms: a.at_ms,
                },
            );
            self.finished.push_back((a.at_ms, a.id));
        }
    }

    /// The commands answered since the last call, to append to the journal before their
    /// replies go out.
    pub fn take_answered(&mut self) -> Vec<Answered> {
        std::mem::take(&mut self.fresh)
    }

    /// Every id still remembered, oldest first (to rewrite the journal).
    pub fn answered(&self) -> Vec<Answered> {
        self.finished
            .iter()
            .filter_map(|(at, id)| match self.seen.get(id) {
                Some(Seen::Done { line, at_ms }) if at_ms == at => Some(Answered {
                    id: id.clone(),
                    at_ms: *at,
                    reply: line.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// How many ids are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Decides what to do with one request received at `now_ms`.
    pub fn request(&mut self, req: Request, now_ms: u64) -> Decision {
        let Some((_target, name)) = self.topics.parse_command(&req.topic) else {
            return Decision::Ignore;
        };
        let name = name.to_string();
        self.expire(now_ms);
        let mut reply_to = ReplyTo {
            topic: self.topics.reply(),
            correlation: req.correlation.clone(),
        };
        let id = req
            .user
            .iter()
            .find(|(k, _)| k == PROP_ID)
            .map(|(_, v)| v.clone());
        let device = self.topics.device().to_string();
        let refuse = |reply_to: &ReplyTo, e: CommandError| {
            let line: ReplyLine = Err(e).into();
            Decision::Reply(message_for(
                &device,
                reply_to,
                &name,
                id.as_deref(),
                &line,
                false,
            ))
        };
        match req.response_topic.as_deref() {
            Some(t) if !valid_publish_topic(t) => {
                return refuse(
                    &reply_to,
                    CommandError::new(
                        ErrorCode::InvalidArgument,
                        "the response topic is not a valid topic to publish to",
                    ),
                )
            }
            Some(t) => reply_to.topic = t.to_string(),
            None => {}
        }
        if req.payload.len() > MAX_COMMAND_BYTES {
            return refuse(
                &reply_to,
                CommandError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "payload is {} bytes; the limit is {MAX_COMMAND_BYTES}",
                        req.payload.len()
                    ),
                ),
            );
        }
        if let Some(id) = &id {
            if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
                return refuse(
                    &reply_to,
                    CommandError::new(
                        ErrorCode::InvalidArgument,
                        "the id user property must be 1 to 128 printable ASCII characters",
                    ),
                );
            }
        }
        if let Some(v) = &mut self.verifier {
            match v.check(
                &req.topic,
                id.as_deref().unwrap_or(""),
                &req.payload,
                &req.user,
                now_ms,
            ) {
                Err(e) => return refuse(&reply_to, e),
                Ok(Checked::Fresh) => {}
                Ok(Checked::SeenNonce) => {
                    // A valid signature seen before: the broker's own re-delivery (DUP) of a
                    // command with an id is answered from the cache; anything else is a replay.
                    let cached = id.as_ref().is_some_and(|i| self.seen.contains_key(i));
                    if !(req.dup && cached) {
                        return refuse(
                            &reply_to,
                            CommandError::new(
                                ErrorCode::Unauthorized,
                                "replayed nonce: this signed command was already received",
                            ),
                        );
                    }
                }
            }
        }
        if let Some(id) = &id {
            match self.seen.get_mut(id) {
                Some(Seen::Done { line, .. }) => {
                    let line = line.clone();
                    return Decision::Reply(message_for(
                        self.topics.device(),
                        &reply_to,
                        &name,
                        Some(id),
                        &line,
                        true,
                    ));
                }
                Some(Seen::Running(waiters)) => {
                    waiters.push(reply_to);
                    return Decision::Wait;
                }
                None => {}
            }
        }
        let work = if name == SET_CONFIG {
            decode_set_config(&req.payload)
        } else {
            Command::from_parts(&name, &req.payload).map(Work::Agent)
        };
        let work = match work {
            Ok(w) => w,
            Err(e) => {
                let line: ReplyLine = Err(e).into();
                if let Some(id) = &id {
                    self.finish(id, line.clone(), now_ms);
                }
                return Decision::Reply(message_for(
                    self.topics.device(),
                    &reply_to,
                    &name,
                    id.as_deref(),
                    &line,
                    false,
                ));
            }
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(id) = &id {
            if self.seen.len() >= MAX_IDS {
                return refuse(
                    &reply_to,
                    CommandError::new(ErrorCode::InvalidState, "too many commands in flight"),
                );
            }
            self.seen.insert(id.clone(), Seen::Running(Vec::new()));
        }
        self.tickets.insert(ticket, Ticket { id, name, reply_to });
        Decision::Run { ticket, work }
    }

    /// The outcome of a run: the replies to publish (the request's and any that waited on it).
    pub fn done(
        &mut self,
        ticket: u64,
        result: Result<serde_json::Value, CommandError>,
        now_ms: u64,
    ) -> Vec<Message> {
        let Some(t) = self.tickets.remove(&ticket) else {
            return Vec::new();
        };
        let line: ReplyLine = result.into();
        let mut out = vec![message_for(
            self.topics.device(),
            &t.reply_to,
            &t.name,
            t.id.as_deref(),
            &line,
            false,
        )];
        if let Some(id) = &t.id {
            if let Some(Seen::Running(waiters)) = self.seen.remove(id) {
                for w in waiters {
                    out.push(message_for(
                        self.topics.device(),
                        &w,
                        &t.name,
                        Some(id),
                        &line,
                        true,
                    ));
                }
            }
            self.finish(id, line, now_ms);
        }
        out
    }

    fn finish(&mut self, id: &str, line: ReplyLine, now_ms: u64) {
        self.fresh.push(Answered {
            id: id.to_string(),
            at_ms: now_ms,
            reply: line.clone(),
        });
        self.seen.insert(
            id.to_string(),
            Seen::Done {
                line,
                at_ms: now_ms,
            },
        );
        self.finished.push_back((now_ms, id.to_string()));
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.finished.front() {
            if at.saturating_add(self.dedupe_ms) > now_ms && self.finished.len() < MAX_IDS {
                break;
            }
            let Some((at, id)) = self.finished.pop_front() else {
                break;
            };
            if matches!(self.seen.get(&id), Some(Seen::Done { at_ms, .. }) if *at_ms == at) {
                self.seen.remove(&id);
            }
        }
    }

    /// The retained status published on every connect.
    pub fn birth(&self, now_ms: u64) -> Message {
        self.status("online", now_ms)
    }

    /// The retained status a clean stop publishes (the last will says the same without a time).
    pub fn status(&self, status: &str, now_ms: u64) -> Message {
        Message {
            topic: self.topics.status(),
            payload: serde_json::json!({
                "status": status,
                "deviceId": self.topics.device(),
                "version": env!("CARGO_PKG_VERSION"),
                "timeMs": now_ms,
            })
            .to_string(),
            retain: true,
            qos1: true,
            correlation: None,
            user: Vec::new(),
        }
    }

    /// The last will's payload.
    pub fn will_payload(&self) -> String {
        will_payload(self.topics.device())
    }

    /// The retained state message.
    pub fn state(&self, state_json: String) -> Message {
        Message {
            topic: self.topics.state(),
            payload: state_json,
            retain: true,
            qos1: true,
            correlation: None,
            user: Vec::new(),
        }
    }

    /// An event message.
    pub fn event(&self, event_json: String) -> Message {
        Message {
            topic: self.topics.events(),
            payload: event_json,
            retain: false,
            qos1: true,
            correlation: None,
            user: Vec::new(),
        }
    }

    /// A telemetry message (QoS 0: the next sample replaces a lost one).
    pub fn telemetry(&self, json: String) -> Message {
        Message {
            topic: self.topics.telemetry(),
            payload: json,
            retain: false,
            qos1: false,
            correlation: None,
            user: Vec::new(),
        }
    }
}

/// The last will's payload for `device`: what the broker publishes when the box vanishes.
pub fn will_payload(device: &str) -> String {
    serde_json::json!({
        "status": "offline",
        "deviceId": device,
        "reason": "connection lost",
    })
    .to_string()
}

fn message_for(
    device: &str,
    to: &ReplyTo,
    name: &str,
    id: Option<&str>,
    line: &ReplyLine,
    cached: bool,
) -> Message {
    let mut user = vec![
        ("device".to_string(), device.to_string()),
        ("command".to_string(), name.to_string()),
    ];
    if let Some(id) = id {
        user.push((PROP_ID.to_string(), id.to_string()));
    }
    if cached {
        user.push(("cached".to_string(), "true".to_string()));
    }
    Message {
        topic: to.topic.clone(),
        payload: serde_json::to_string(line).unwrap_or_default(),
        retain: false,
        qos1: true,
        correlation: to.correlation.clone(),
        user,
    }
}

fn decode_set_config(payload: &[u8]) -> Result<Work, CommandError> {
    let args: SetConfigArgs = serde_json::from_slice::<serde_json::Value>(payload)
        .map_err(|e| CommandError::new(ErrorCode::BadJson, format!("not JSON: {e}")))
        .and_then(|v| {
            if !v.is_object() {
                return Err(CommandError::new(
                    ErrorCode::BadJson,
                    "the payload must be a JSON object",
                ));
            }
            serde_json::from_value(v).map_err(|e| {
                CommandError::new(ErrorCode::InvalidArgument, format!("set-config: {e}"))
            })
        })?;
    Ok(Work::SetConfig(args.toml))
}

/// True for a topic a reply may be published to (no wildcards, no empty topic).
pub fn valid_publish_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 1024
        && !t.contains(['+', '#', '\0'])
        && !t.chars().any(|c| c.is_control())
}

/// Limits how often the retained state goes out: at most once per interval, and the latest
/// state after a burst of changes.
#[derive(Debug, Clone)]
pub struct Throttle {
    min_ms: u64,
    last: Option<u64>,
    dirty: bool,
}

impl Throttle {
    /// At most one publication per `min`.
    pub fn new(min: Duration) -> Throttle {
        Throttle {
            min_ms: min.as_millis() as u64,
            last: None,
            dirty: false,
        }
    }

    /// Something changed.
    pub fn mark(&mut self) {
        self.dirty = true;
    }

    /// When the next publication may go out, if one is owed.
    pub fn due(&self, now_ms: u64) -> Option<u64> {
        if !self.dirty {
            return None;
        }
        Some(match self.last {
            Some(l) => now_ms.max(l + self.min_ms),
            None => now_ms,
        })
    }

    /// A publication went out at `now_ms`.
    pub fn fired(&mut self, now_ms: u64) {
        self.dirty = false;
        self.last = Some(now_ms);
    }
}

#[cfg(test)]
mod tests;

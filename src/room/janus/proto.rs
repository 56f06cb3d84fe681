//! The Janus WebSocket API's messages, parsed defensively: anything malformed becomes a
//! [`ProtoError`] naming what was wrong, never a panic.

use serde_json::{json, Value};

/// A session description carried beside a Janus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jsep {
    /// `offer` or `answer`.
    pub kind: String,
    pub sdp: String,
}

impl Jsep {
    /// As Janus wants it.
    pub fn to_json(&self) -> Value {
        json!({"type": self.kind, "sdp": self.sdp})
    }

    fn parse(v: &Value) -> Result<Jsep, ProtoError> {
        let kind = str_field(v, "type")?;
        let sdp = str_field(v, "sdp")?;
        if kind != "offer" && kind != "answer" {
            return Err(ProtoError(format!(
                "jsep type `{kind}` is not offer or answer"
            )));
        }
        Ok(Jsep {
            kind: kind.to_string(),
            sdp: sdp.to_string(),
        })
    }
}

/// Why an incoming message was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtoError(pub String);

/// One message from Janus.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request succeeded: `data` (create, attach) or `plugindata` (synchronous plugin request).
    Success {
        /// The request's transaction.
        transaction: String,
        /// `data` for core requests, the plugin's `data` for plugin requests.
        data: Value,
    },
    /// A request failed at the core.
    Error {
        /// The request's transaction, when given.
        transaction: Option<String>,
        /// Janus's error code.
        code: i64,
        reason: String,
    },
    /// An asynchronous request was accepted; its outcome follows as an event.
    Ack {
        /// The request's transaction.
        transaction: String,
    },
    /// A plugin event, possibly answering an asynchronous request.
    Event {
        /// The request it answers, if any.
        transaction: Option<String>,
        /// The handle it concerns.
        sender: u64,
        /// The plugin's `data`.
        data: Value,
        /// A session description, when the event carries one.
        jsep: Option<Jsep>,
    },
    /// The PeerConnection of a handle is up.
    WebrtcUp {
        /// The handle.
        sender: u64,
    },
    /// The PeerConnection of a handle went down.
    Hangup {
        /// The handle.
        sender: u64,
        reason: String,
    },
    /// Janus started or stopped receiving a kind of media on a handle.
    Media {
        /// The handle.
        sender: u64,
        /// `audio` or `video`.
        kind: String,
        /// Whether media arrives.
        receiving: bool,
    },
    /// Janus sees losses on a handle.
    SlowLink {
        /// The handle.
        sender: u64,
        /// Whether the losses are on what Janus receives (uplink) or sends.
        uplink: bool,
    },
    /// A handle was detached.
    Detached {
        /// The handle.
        sender: u64,
    },
    /// The session expired.
    Timeout,
    /// Something well-formed the client does not act on (`trickle`, `server_info`, ...).
    Other {
        /// The `janus` field.
        kind: String,
    },
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, ProtoError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ProtoError(format!("`{name}` is missing or not a string")))
}

fn u64_field(v: &Value, name: &str) -> Result<u64, ProtoError> {
    v.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| ProtoError(format!("`{name}` is missing or not an unsigned integer")))
}

fn transaction(v: &Value) -> Option<String> {
    v.get("transaction")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Parses one text frame from Janus.
pub fn parse(text: &str) -> Result<Incoming, ProtoError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ProtoError(format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ProtoError("not a JSON object".into()));
    }
    let kind = str_field(&v, "janus")?;
    Ok(match kind {
        "success" => {
            let transaction = transaction(&v)
                .ok_or_else(|| ProtoError("success without a transaction".into()))?;
            let data = if let Some(pd) = v.get("plugindata") {
                pd.get("data")
                    .cloned()
                    .ok_or_else(|| ProtoError("plugindata without data".into()))?
            } else {
                v.get("data").cloned().unwrap_or(Value::Null)
            };
            Incoming::Success { transaction, data }
        }
        "error" => {
            let err = v
                .get("error")
                .ok_or_else(|| ProtoError("error without an `error` object".into()))?;
            Incoming::Error {
                transaction: transaction(&v),
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                reason: err
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
            }
        }
        "ack" => Incoming::Ack {
            transaction: transaction(&v)
                .ok_or_else(|| ProtoError("ack without a transaction".into()))?,
        },
        "event" => {
            let sender = u64_field(&v, "sender")?;
            let data = v
                .get("plugindata")
                .and_then(|p| p.get("data"))
                .cloned()
                .ok_or_else(|| ProtoError("event without plugindata.data".into()))?;
            if !data.is_object() {
                return Err(ProtoError("event plugindata.data is not an object".into()));
            }
            let jsep = match v.get("jsep") {
                Some(j) => Some(Jsep::parse(j)?),
                None => None,
            };
            Incoming::Event {
                transaction: transaction(&v),
                sender,
                data,
                jsep,
            }
        }
        "webrtcup" => Incoming::WebrtcUp {
            sender: u64_field(&v, "sender")?,
        },
        "hangup" => Incoming::Hangup {
            sender: u64_field(&v, "sender")?,
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        },
        "media" => Incoming::Media {
            sender: u64_field(&v, "sender")?,
            kind: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            receiving: v
                .get("receiving")
                .and_then(Value::as_bool)
                .ok_or_else(|| ProtoError("media without `receiving`".into()))?,
        },
        "slowlink" => Incoming::SlowLink {
            sender: u64_field(&v, "sender")?,
            uplink: v.get("uplink").and_then(Value::as_bool).unwrap_or(false),
        },
        "detached" => Incoming::Detached {
            sender: u64_field(&v, "sender")?,
        },
        "timeout" => Incoming::Timeout,
        other => Incoming::Other {
            kind: other.to_string(),
        },
    })
}

/// A remote publisher listed in a VideoRoom `joined` or `event` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Its feed id (the participant id).
    pub id: String,
    /// Its display name.
    pub display: String,
    /// Whether it publishes audio.
    pub audio: bool,
    /// Whether it publishes video.
    pub video: bool,
    /// Whether it publishes data (chat).
    pub data: bool,
    /// Whether it publishes a content share: an enabled video stream described as a share
    /// (`share`, as roombox names it, or a `screen` description as other clients use).
    pub share: bool,
    /// Codec names by kind, as Janus reports them.
    pub codecs: Vec<(String, String)>,
}

/// Reads an id Janus may send as a number or (with `string_ids`) a string.
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Writes a room or feed id as Janus expects it: a number when it is one, else a string.
pub fn id_value(id: &str) -> Value {
    match id.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(id),
    }
}

/// Whether a stream's description names a content share: `share`, as roombox names it, or one
/// with `screen` in it, as other clients do.
fn describes_share(d: Option<&str>) -> bool {
    d.map(str::to_ascii_lowercase)
        .is_some_and(|d| d == "share" || d.contains("screen"))
}

/// The track ids of the shares in a subscription: the mids Janus's `streams` list describes as
/// a share (`feed_description`), looked up in its offer's `a=mid` / `a=msid` lines.
pub fn share_tracks(data: &Value, sdp: &str) -> Vec<String> {
    let mids: Vec<&str> = data
        .get("streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("video"))
        .filter(|s| describes_share(s.get("feed_description").and_then(Value::as_str)))
        .filter_map(|s| s.get("mid").and_then(Value::as_str))
        .collect();
    let mut out = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let attr = |name: &str| {
            section
                .lines()
                .find_map(|l| l.trim_end().strip_prefix(name).map(str::to_string))
        };
        let (Some(mid), Some(msid)) = (attr("a=mid:"), attr("a=msid:")) else {
            continue;
        };
        if let (true, Some(track)) = (mids.contains(&mid.as_str()), msid.split(' ').nth(1)) {
            out.push(track.to_string());
        }
    }
    out
}

/// Parses the `publishers` array of a VideoRoom message; malformed entries are skipped with a
/// warning.
pub fn publishers(data: &Value) -> Vec<Publisher> {
    let Some(list) = data.get("publishers").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in list {
        let Some(id) = p.get("id").and_then(id_string) else {
            tracing::warn!(entry = %p, "janus: publisher without a usable id; ignored");
            continue;
        };
        let display = p
            .get("display")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut audio = false;
        let mut video = false;
        let mut data_ch = false;
        let mut share = false;
        let mut codecs = Vec::new();
        if let Some(streams) = p.get("streams").and_then(Value::as_array) {
            for s in streams {
                if s.get("disabled").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let t = s.get("type").and_then(Value::as_str).unwrap_or("");
                match t {
                    "audio" => audio = true,
                    "video" => video = true,
                    "data" => data_ch = true,
                    _ => {}
                }
                let described = describes_share(s.get("description").and_then(Value::as_str));
                share |= t == "video" && described;
                if let Some(c) = s.get("codec").and_then(Value::as_str) {
                    codecs.push((t.to_string(), c.to_string()));
                }
            }
        } else {
            audio = p.get("audio_codec").is_some();
            video = p.get("video_codec").is_some();
        }
        out.push(Publisher {
            id,
            display,
            audio,
            video,
            data: data_ch,
            share,
            codecs,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "nope",
            "[]",
            "42",
            "{}",
            r#"{"janus": 5}"#,
            r#"{"janus":"success"}"#,
            r#"{"janus":"event","sender":"x","plugindata":{"data":{}}}"#,
            r#"{"janus":"event","sender":1}"#,
            r#"{"janus":"event","sender":1,"plugindata":{"data":[]}}"#,
            r#"{"janus":"event","sender":1,"plugindata":{"data":{}},"jsep":{"type":"x","sdp":""}}"#,
            r#"{"janus":"event","sender":1,"plugindata":{"data":{}},"jsep":7}"#,
            r#"{"janus":"media","sender":1}"#,
            r#"{"janus":"error"}"#,
            r#"{"janus":"ack"}"#,
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn events_with_jsep_and_publishers_parse() {
        let m = parse(
            r#"{"janus":"event","sender":7,"transaction":"t1","plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"joined","id":9,"publishers":[{"id":3,"display":"Ann","streams":[{"type":"audio","codec":"opus"},{"type":"video","codec":"h264"}]},{"display":"no id"}]}},"jsep":{"type":"answer","sdp":"v=0"}}"#,
        )
        .unwrap();
        let Incoming::Event {
            transaction,
            sender,
            data,
            jsep,
        } = m
        else {
            panic!("not an event")
        };
        assert_eq!(transaction.as_deref(), Some("t1"));
        assert_eq!(sender, 7);
        assert_eq!(jsep.unwrap().kind, "answer");
        let pubs = publishers(&data);
        assert_eq!(pubs.len(), 1);
        assert_eq!(pubs[0].id, "3");
        assert!(pubs[0].audio && pubs[0].video && !pubs[0].data);
    }

    #[test]
    fn a_video_described_as_a_share_is_a_share_while_enabled() {
        let data = json!({"publishers": [
            {"id": 1, "streams": [{"type": "video", "mid": "0"},
                {"type": "video", "mid": "3", "description": "share"}]},
            {"id": 2, "streams": [{"type": "video", "mid": "1", "description": "Screen"}]},
            {"id": 3, "streams": [{"type": "video", "mid": "0"},
                {"type": "video", "mid": "3", "disabled": true}]},
            {"id": 4, "streams": [{"type": "audio", "description": "share"}]},
        ]});
        let shares: Vec<bool> = publishers(&data).iter().map(|p| p.share).collect();
        assert_eq!(shares, [true, true, false, false]);
    }

    #[test]
    fn a_subscriptions_share_is_found_by_its_mid_in_the_offer() {
        let data = json!({"videoroom": "attached", "streams": [
            {"type": "audio", "mid": "0", "feed_description": "share"},
            {"type": "video", "mid": "1"},
            {"type": "video", "mid": "2", "feed_description": "Screen"},
        ]});
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:janus janus0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:janus janus1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:janus janus2\r\n";
        assert_eq!(share_tracks(&data, sdp), vec!["janus2".to_string()]);
        assert!(share_tracks(&json!({}), sdp).is_empty());
        assert!(share_tracks(&data, "garbage").is_empty());
    }

    #[test]
    fn ids_round_trip_as_numbers_or_strings() {
        assert_eq!(id_value("1234"), json!(1234));
        assert_eq!(id_value("lobby"), json!("lobby"));
        assert_eq!(id_string(&json!(5)), Some("5".into()));
        assert_eq!(id_string(&json!("")), None);
        assert_eq!(id_string(&json!(-1)), None);
    }
}

//! The Janus backend against a fake server that interleaves malformed and unexpected frames with
//! valid replies: every bad frame is logged and ignored, nothing panics, and a dropped socket
//! becomes a `Disconnected` event.

mod support;

use futures::{SinkExt, StreamExt};
use roombox::config::RoomConfig;
use roombox::model::Mode;
use roombox::room::janus::Janus;
use roombox::room::signaller::{SignalEvent, Signaller};
use roombox::room::JoinRequest;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

const GARBAGE: &[&str] = &[
    "",
    "not json",
    "[1,2,3]",
    "null",
    r#"{"janus":42}"#,
    r#"{"janus":"success"}"#,
    r#"{"janus":"event","sender":"x"}"#,
    r#"{"janus":"event","sender":9,"plugindata":{"data":"nope"}}"#,
    r#"{"janus":"event","sender":9,"plugindata":{"data":{"videoroom":"event","publishers":[{"display":"no id"},{"id":{"deep":1}}]}}}"#,
    r#"{"janus":"event","sender":9,"plugindata":{"data":{"videoroom":"talking"}}}"#,
    r#"{"janus":"event","sender":2,"transaction":"unknown","plugindata":{"data":{"leaving":[]}},"jsep":{"type":"bogus","sdp":1}}"#,
    r#"{"janus":"hangup"}"#,
    r#"{"janus":"media","sender":2,"type":"audio"}"#,
    r#"{"janus":"ack","transaction":"nobody"}"#,
    r#"{"janus":"error","transaction":"nobody","error":{"code":1,"reason":"x"}}"#,
    r#"{"janus":"something-new","sender":2}"#,
];

/// Serves one client: answers create, attach, exists and join (after garbage each time), then
/// announces a publisher (after garbage) and drops the socket.
async fn fake_janus(listener: TcpListener) {
    let (tcp, _) = listener.accept().await.expect("accept");
    // The callback's error type is tungstenite's own.
    #[allow(clippy::result_large_err)]
    let answer_protocol = |_req: &Request, mut resp: Response| {
        resp.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().expect("header"),
        );
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, answer_protocol)
        .await
        .expect("ws");
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let req: Value = serde_json::from_str(&text).expect("the client sends JSON");
        let t = req["transaction"].clone();
        for g in GARBAGE {
            ws.send(Message::text(g.to_string())).await.expect("send");
        }
        ws.send(Message::Binary(vec![0xff, 0x00].into()))
            .await
            .expect("send");
        let reply = match (req["janus"].as_str(), req["body"]["request"].as_str()) {
            (Some("create"), _) => json!({"janus":"success","transaction":t,"data":{"id":1}}),
            (Some("attach"), _) => json!({"janus":"success","transaction":t,"data":{"id":2}}),
            (Some("keepalive"), _) => json!({"janus":"ack","transaction":t}),
            (Some("message"), Some("exists")) => {
                json!({"janus":"success","transaction":t,"sender":2,
                "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"success","room":7,"exists":true}}})
            }
            (Some("message"), Some("join")) => {
                ws.send(Message::text(
                    json!({"janus":"ack","transaction":t}).to_string(),
                ))
                .await
                .expect("ack");
                json!({"janus":"event","transaction":t,"sender":2,"plugindata":{"plugin":"janus.plugin.videoroom",
                    "data":{"videoroom":"joined","room":7,"id":100,"private_id":5,"publishers":[
                        {"id":"bad id with spaces is still a string id"}, {"nope":true}]}}})
            }
            _ => {
                json!({"janus":"error","transaction":t,"error":{"code":490,"reason":"unexpected"}})
            }
        };
        ws.send(Message::text(reply.to_string()))
            .await
            .expect("reply");
        if req["body"]["request"].as_str() == Some("join") {
            for g in GARBAGE {
                ws.send(Message::text(g.to_string())).await.expect("send");
            }
            let ev = json!({"janus":"event","sender":2,"plugindata":{"plugin":"janus.plugin.videoroom",
                "data":{"videoroom":"event","room":7,"publishers":[{"id":101,"display":"Bea",
                "streams":[{"type":"audio","codec":"opus"},{"type":"video","codec":"h264"}]}]}}});
            ws.send(Message::text(ev.to_string())).await.expect("event");
            tokio::time::sleep(Duration::from_millis(200)).await;
            return; // drop the socket without a close frame
        }
    }
}

#[tokio::test]
async fn malformed_signalling_is_survived() {
    support::init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(fake_janus(listener));
    let config = RoomConfig {
        url: format!("ws://127.0.0.1:{port}"),
        room_id: "7".into(),
        ..RoomConfig::default()
    };
    let mut janus = Janus::new(config);
    let joined = janus
        .join(&JoinRequest {
            room_id: "7".into(),
            display_name: "box".into(),
            metadata: Default::default(),
            mic: true,
            webcam: true,
            mode: Mode::SendAndReceive,
        })
        .await
        .expect("the join succeeds despite the garbage around it");
    assert_eq!(joined.participant_id, "100");
    assert_eq!(joined.session_id.as_deref(), Some("1"));
    let mut published = None;
    let mut disconnected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), janus.next_event()).await {
            Ok(Some(SignalEvent::Published(p))) => published = Some(p),
            Ok(Some(SignalEvent::Disconnected { .. })) => {
                disconnected = true;
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let p = published.expect("the valid publisher event got through");
    assert_eq!(
        (p.participant_id.as_str(), p.display_name.as_str()),
        ("101", "Bea")
    );
    assert!(p.audio && p.video);
    assert!(
        disconnected,
        "a dropped socket must surface as Disconnected"
    );
    assert!(
        janus.next_event().await.is_none(),
        "no connection after the drop"
    );
    server.await.expect("the fake server ran to the end");
}

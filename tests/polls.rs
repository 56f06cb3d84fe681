//! Live polls in a real browser (headless Chromium through playwright-core,
//! `tests/browser/drive.mjs`) against the installed-style binary, bound beyond loopback so the
//! pairing tokens apply: the console opens a poll, two viewers vote from `/watch`, the console
//! shows the counts the box counted, the same viewer's second vote is refused, the viewers'
//! token can neither open nor close a poll, bad polls and votes change nothing, and closing
//! shows the results to viewers and puts them in the chat. Needs `tests/browser/setup.sh`.

mod support;

use roombox::event::Event;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;
use support::agent::{wait_event, AgentProcess, SMALL_MEDIA};
use support::browser::Browser;
use support::http::{request_from, Reply};

const WAIT: Duration = Duration::from_secs(30);
const JSON: (&str, &str) = ("Content-Type", "application/json");
const CSRF: (&str, &str) = ("X-Roombox", "1");

/// `roombox console-token` as the installer runs it.
fn token(agent: &AgentProcess, viewer: bool) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_roombox"));
    cmd.arg("console-token").arg("--config").arg(&agent.config);
    if viewer {
        cmd.arg("--viewer");
    }
    let out = cmd.output().expect("run roombox console-token");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn post(n: u8, host: &str, path: &str, token: &str, body: &str) -> Reply {
    let auth = format!("Bearer {token}");
    let ip = IpAddr::from([127, 0, 0, n]);
    let headers = [JSON, CSRF, ("Authorization", auth.as_str())];
    request_from(Some(ip), "POST", host, path, &headers, body.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_vote_once_each_and_the_console_opens_counts_and_closes() {
    let agent = AgentProcess::start(&format!(
        "[http]\nbind = \"0.0.0.0\"\nport = 0\n{SMALL_MEDIA}\n"
    ));
    let port = agent.http_port();
    let host = format!("127.0.0.1:{port}");
    let base = format!("http://{host}");
    let console = token(&agent, false);
    let viewer = token(&agent, true);
    let mut events = agent.events().await;

    let mut b = Browser::start().await;
    b.open("c", &format!("{base}/?token={console}"), (800, 480))
        .await;
    b.click("c", "#tab-talk").await;
    // A poll the box refuses (one option) leaves the page's form as it was, with the reason.
    b.fill("c", "#poll-question", "Lunch?").await;
    b.fill("c", "#poll-options input:nth-child(1)", "Pizza")
        .await;
    b.click("c", "#poll-open").await;
    b.wait_text("c", "#toast", "options: 1 given").await;
    assert!(agent.state().await["poll"].is_null());
    b.fill("c", "#poll-options input:nth-child(2)", "Sushi")
        .await;
    b.click("c", "#poll-open").await;
    let ev = wait_event(&mut events, WAIT, |e| {
        matches!(e, Event::PollCreated { .. })
    })
    .await;
    let Some(Event::PollCreated { poll }) = ev else {
        panic!("no poll-created: {ev:?}")
    };
    assert_eq!(poll.question, "Lunch?");
    b.wait_text("c", "#poll-q", "Lunch?").await;

    // Two viewers vote from their pages.
    for (page, name, option) in [("w1", "Ana", "Pizza"), ("w2", "Bo", "Sushi")] {
        b.open(page, &format!("{base}/watch?token={viewer}"), (800, 480))
            .await;
        b.wait_text(page, "#poll-q", "Lunch?").await;
        b.fill(page, "#name", name).await;
        b.click(page, &format!("#poll-opts button:has-text('{option}')"))
            .await;
        b.wait_text(page, "#note", "Vote counted").await;
    }
    // The console shows what the box counted.
    for i in 0..2 {
        b.wait_text(
            "c",
            &format!("#poll-counts li[data-option='{i}'] .count"),
            "1",
        )
        .await;
    }
    // The same viewer (by name, whatever the case) on a new page: refused, counts unchanged.
    b.open("w3", &format!("{base}/watch?token={viewer}"), (800, 480))
        .await;
    b.wait_text("w3", "#poll-q", "Lunch?").await;
    b.fill("w3", "#name", "ana").await;
    b.click("w3", "#poll-opts button:has-text('Pizza')").await;
    b.wait_text("w3", "#note", "already voted").await;
    let counts = |s: &serde_json::Value| {
        s["poll"]["options"]
            .as_array()
            .map(|o| o.iter().map(|o| o["votes"].as_u64()).collect::<Vec<_>>())
    };
    assert_eq!(counts(&agent.state().await), Some(vec![Some(1), Some(1)]));

    // The viewers' token can neither open nor close a poll; bad polls and votes are refused
    // with the decoder's or the agent's code; none changes the poll.
    let id = poll.id;
    let close = format!(r#"{{"command":"close-poll","id":{id}}}"#);
    let create = r#"{"command":"create-poll","question":"Mine?","options":["a","b"]}"#;
    for body in [close.as_str(), create] {
        let r = post(9, &host, "/api/command", &viewer, body).await;
        assert_eq!(r.code, 403, "a viewer's {body}: {}", r.text());
    }
    let r = post(9, &host, "/watch/api/vote", &viewer, create).await;
    assert_eq!(r.code, 400, "a command smuggled as a vote: {}", r.text());
    let bad: [(&str, &str, u16, &str); 6] = [
        (
            "/api/command",
            r#"{"command":"create-poll","question":" ","options":["a","b"]}"#,
            400,
            "question",
        ),
        (
            "/api/command",
            r#"{"command":"create-poll","question":"Q","options":["a","b","c","d","e","f","g"]}"#,
            400,
            "7 given",
        ),
        (
            "/api/command",
            r#"{"command":"create-poll","question":"Q","options":["Tea"," tea"]}"#,
            400,
            "twice",
        ),
        (
            "/api/command",
            r#"{"command":"create-poll","question":"Q","options":["x","y"]}"#,
            409,
            "is open",
        ),
        (
            "/watch/api/vote",
            &format!(r#"{{"pollId":{id},"option":2,"name":"Cy"}}"#),
            400,
            "0 to 1",
        ),
        (
            "/watch/api/vote",
            &format!(r#"{{"pollId":{},"option":0,"name":"Cy"}}"#, id + 100),
            400,
            "no poll",
        ),
    ];
    for (n, (path, body, code, why)) in bad.iter().enumerate() {
        let t = if path.starts_with("/watch") {
            &viewer
        } else {
            &console
        };
        let r = post(10 + n as u8, &host, path, t, body).await;
        assert_eq!(r.code, *code, "{body}: {}", r.text());
        assert!(r.text().contains(why), "{body}: {}", r.text());
    }
    let s = agent.state().await;
    assert_eq!(
        (s["poll"]["id"].as_u64(), s["poll"]["open"].as_bool()),
        (Some(id), Some(true))
    );
    assert_eq!(counts(&s), Some(vec![Some(1), Some(1)]));

    // The console closes it: viewers see the results, the chat carries them, no more votes.
    b.click("c", "#poll-close").await;
    b.wait_text("w1", "#h-poll", "Poll results").await;
    b.wait_text("w2", "#feed li", "Poll: Lunch? Pizza 1, Sushi 1")
        .await;
    b.wait_text("c", "#poll-q", "Results: Lunch?").await;
    let late = format!(r#"{{"pollId":{id},"option":0,"name":"Dee"}}"#);
    let r = post(20, &host, "/watch/api/vote", &viewer, &late).await;
    assert_eq!(r.code, 409, "{}", r.text());
    assert!(r.text().contains("closed"), "{}", r.text());
    assert_eq!(counts(&agent.state().await), Some(vec![Some(1), Some(1)]));
    let ev = wait_event(&mut events, WAIT, |e| matches!(e, Event::PollClosed { .. })).await;
    assert!(
        matches!(&ev, Some(Event::PollClosed { poll }) if !poll.open && poll.id == id),
        "{ev:?}"
    );
    for p in ["c", "w1", "w2", "w3"] {
        let log = b.call(json!({"op": "log", "page": p})).await;
        assert!(!log.to_string().contains("pageerror"), "{p}: {log}");
    }
    b.close().await;
}

//! The console's Share control in a real browser (headless Chromium through playwright-core,
//! `tests/browser/drive.mjs`) against the real agent and engine: shown only where a share
//! source is configured, and its click starts and stops the share, shown pressed only once
//! the engine confirmed it. Needs `tests/browser/setup.sh` to have run.

mod support;

use roombox::agent::Agent;
use roombox::config::{AudioSource, Config, ShareSource, VideoSource};
use roombox::event::MediaState;
use roombox::media::engine::Engine;
use serde_json::json;
use std::time::Duration;
use support::browser::Browser;

const WAIT: Duration = Duration::from_secs(30);

async fn start_box(share: ShareSource) -> (roombox::agent::AgentHandle, String, tempfile::TempDir) {
    gstreamer::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.device.state_dir = dir.path().to_path_buf();
    c.device.id = "console-share".into();
    (c.media.video.width, c.media.video.height) = (320, 180);
    c.media.video.source = VideoSource::Test;
    c.media.audio.source = AudioSource::None;
    c.media.share.source = share;
    (c.media.share.width, c.media.share.height) = (640, 360);
    c.http.port = 0;
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let (tx, notices) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::spawn(c.clone(), tx);
    let (agent, task) = Agent::new(&c, None, Box::new(engine), notices);
    let server = roombox::http::bind(&c, agent.clone())
        .await
        .unwrap()
        .expect("http on");
    let url = format!("http://{}/", server.addr);
    tokio::spawn(server.serve());
    tokio::spawn(task.run(None));
    let mut st = agent.state();
    tokio::time::timeout(WAIT, st.wait_for(|s| s.media.state == MediaState::Playing))
        .await
        .expect("media playing")
        .unwrap();
    (agent, url, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_button_starts_and_stops_the_share() {
    let (agent, url, _dir) = start_box(ShareSource::Test).await;
    let mut b = Browser::start().await;
    b.open("c", &url, (800, 480)).await;
    b.wait_attr("c", "#share", "aria-pressed", "false").await;
    for on in [true, false] {
        // Clicking needs the button visible: playwright waits for it.
        b.click("c", "#share").await;
        b.wait_attr("c", "#share", "aria-pressed", &on.to_string())
            .await;
        let want = if on { "on" } else { "off" };
        assert_eq!(
            agent.state().borrow().media.share,
            want,
            "the page showed the share {want} before the box"
        );
    }
    let log = b.call(json!({"op": "log", "page": "c"})).await;
    assert!(
        !log.to_string().contains("pageerror"),
        "the page threw: {log}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_share_source_there_is_no_share_button() {
    let (_agent, url, _dir) = start_box(ShareSource::None).await;
    let mut b = Browser::start().await;
    b.open("c", &url, (800, 480)).await;
    // The page has rendered the box's state once the camera button is enabled.
    let rendered = "document.getElementById('cam').disabled === false";
    let deadline = tokio::time::Instant::now() + WAIT;
    while b
        .call(json!({"op": "eval", "page": "c", "js": rendered}))
        .await["value"]
        != json!(true)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never rendered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hidden = b
        .call(json!({"op": "eval", "page": "c", "js": "document.getElementById('share').hidden"}))
        .await;
    assert_eq!(hidden["value"], json!(true), "{hidden}");
    b.close().await;
}

//! The WHIP and WHEP backend against a server that is not Janus and a WebRTC stack that is not
//! the box's: `support/whip_server.py` on aiortc. The box publishes to it over WHIP (the server
//! decodes the box's video and hears its tone) and watches another publisher over WHEP (the box
//! decodes it). Each test runs in a network namespace of its own (`support::netns`): ICE skips
//! loopback.

mod support;

use roombox::command::Command;
use roombox::config::{Config, RoomBackendKind, WhepSource};
use roombox::event::Event;
use roombox::event::MediaState;
use roombox::model::MeetingState;
use std::path::Path;
use std::time::Duration;
use support::inproc::{join_cmd, InProcBox as Box_};
use support::poll_until as eventually;
use support::whip::WhipServer;

const WAIT: Duration = Duration::from_secs(40);
const TOKEN: &str = "tkn-7f3a9c0e51";

/// A box that publishes to `url` over WHIP with the token in a file, and watches `whep`.
fn whip_config(dir: &Path, url: &str, whep: &[(&str, String)]) -> Config {
    let mut c = support::inproc::room_config("ws://unused", dir, "whip", (320, 180));
    c.room.backend = RoomBackendKind::Whip;
    c.room.url = url.into();
    let token = dir.join("whip.token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token file");
    c.room.token_file = token;
    c.room.chat = false;
    c.room.whep = whep
        .iter()
        .map(|(name, url)| WhepSource {
            name: (*name).into(),
            url: url.clone(),
            token_file: Default::default(),
        })
        .collect();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c
}

fn f64_of(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// Waits until the server has decoded more than 30 frames and an audible tone from `name`.
async fn server_receives(srv: &WhipServer, name: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = srv.stats(name).await;
        if f64_of(&s, "video_frames") > 30.0 && f64_of(&s, "audio_dbfs") > -30.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the WHIP server did not decode the box's video and tone: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_box_publishes_over_whip_and_watches_over_whep() {
    support::netns::isolated_async(test_name!(), || async {
        let tmp = tempfile::tempdir().unwrap();
        let srv = WhipServer::start(tmp.path(), Some(TOKEN), Some("cam"));
        let c = whip_config(
            tmp.path(),
            &srv.url("/whip/box"),
            &[("cam", srv.url("/whep/cam"))],
        );
        let b = Box_::start(&c);
        b.join().await;
        server_receives(&srv, "box").await;
        let s = srv.stats("box").await;
        assert_eq!(
            (s["width"].as_u64(), s["height"].as_u64()),
            (Some(320), Some(180)),
            "{s}"
        );

        // The WHEP source is a participant of its own, and the box decodes and hears it.
        b.lists("whep-cam").await;
        assert_eq!(b.state().participants["whep-cam"].display_name, "cam");
        assert!(
            eventually(WAIT, || b.frames_from("whep-cam") > 30).await,
            "the box decoded no video over WHEP: {:?}",
            b.remote("whep-cam")
        );
        assert!(
            eventually(WAIT, || b
                .remote("whep-cam")
                .audio_dbfs
                .is_some_and(|d| d > -30.0))
            .await,
            "the box heard no tone over WHEP: {:?}",
            b.remote("whep-cam")
        );

        // Every request carried the token; the token is in no state or event.
        assert!(srv
            .log()
            .await
            .iter()
            .filter(|r| r["path"] != "/log"
                && !r["path"].as_str().unwrap_or("").starts_with("/stats")
                && !r["path"].as_str().unwrap_or("").starts_with("/demo"))
            .all(|r| r["auth"] == true));
        let seen = format!(
            "{}{}",
            serde_json::to_string(&b.state()).unwrap(),
            serde_json::to_string(&b.events()).unwrap()
        );
        assert!(
            !seen.contains(TOKEN),
            "the token leaked into the state or events"
        );

        // Camera off stops the video at once, with no renegotiation to fail (WHIP has none):
        // no error event, and the tone goes on.
        let errors_before = b
            .events()
            .iter()
            .filter(|e| matches!(e, Event::Error { .. }))
            .count();
        b.handle
            .send(Command::DisableWebcam)
            .await
            .expect("camera off");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let frozen = f64_of(&srv.stats("box").await, "video_frames");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = srv.stats("box").await;
        assert!(
            f64_of(&s, "video_frames") - frozen < 3.0,
            "video kept coming with the camera off: {frozen} then {s}"
        );
        assert!(f64_of(&s, "audio_dbfs") > -30.0, "the tone stopped: {s}");
        b.handle
            .send(Command::EnableWebcam)
            .await
            .expect("camera on");
        let deadline = tokio::time::Instant::now() + WAIT;
        while f64_of(&srv.stats("box").await, "video_frames") < frozen + 30.0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the video did not come back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            b.events()
                .iter()
                .filter(|e| matches!(e, Event::Error { .. }))
                .count(),
            errors_before,
            "{:?}",
            b.events()
        );

        // Leaving DELETEs both sessions: the server no longer has the box's stream.
        b.handle.send(Command::Leave).await.expect("leave");
        assert!(
            eventually(WAIT, || b.state().meeting_state == MeetingState::Closed
                || b.state().room.is_none())
            .await
        );
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let deletes = srv
                .log()
                .await
                .into_iter()
                .filter(|r| {
                    r["method"] == "DELETE"
                        && r["path"]
                            .as_str()
                            .is_some_and(|p| p.starts_with("/resource/"))
                })
                .count();
            if deletes >= 2 && srv.stats("box").await["publishing"] == false {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "leaving did not DELETE the WHIP and WHEP sessions: {deletes} DELETEs"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(b.saw(|e| matches!(e, Event::ParticipantLeft { participant_id } if participant_id == "whep-cam")));
    });
}

#[test]
fn a_whep_source_is_listed_only_once_it_flows() {
    support::netns::isolated_async(test_name!(), || async {
        let tmp = tempfile::tempdir().unwrap();
        let srv = WhipServer::start(tmp.path(), Some(TOKEN), None);
        let mut c = whip_config(tmp.path(), "", &[("late", srv.url("/whep/late"))]);
        c.room.mode = roombox::model::Mode::ReceiveOnly;
        let b = Box_::start(&c);
        b.join().await;
        // Nothing publishes `late`: the server says 404, and the box keeps asking, with backoff,
        // without listing it.
        assert!(
            eventually(WAIT, || post_count(&srv, "/whep/late") >= 3).await,
            "the box did not ask again for a WHEP source that was not live"
        );
        assert!(!b.state().participants.contains_key("whep-late"));
        assert!(b.saw(|e| matches!(e, Event::Error { message, .. } if message.contains("404") && message.contains("not live"))));
        // It goes live: the box lists it and decodes it.
        srv.demo("late", true).await;
        b.lists("whep-late").await;
        assert!(
            eventually(WAIT, || b.frames_from("whep-late") > 30).await,
            "the box decoded nothing once the source was live: {:?}",
            b.remote("whep-late")
        );
        assert_eq!(b.state().meeting_state, MeetingState::Connected);
    });
}

/// POSTs to `path` so far, asked on a thread of its own (the poll's condition is synchronous).
fn post_count(srv: &WhipServer, path: &str) -> usize {
    let port = srv.port;
    let path = path.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let host = format!("127.0.0.1:{port}");
            let r = support::http::request("GET", &host, "/log", &[]).await;
            let log: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap_or_default();
            log.iter()
                .filter(|r| r["method"] == "POST" && r["path"] == path.as_str())
                .count()
        })
    })
    .join()
    .unwrap_or(0)
}

/// What the box should make of one bad endpoint.
struct Case {
    path: &'static str,
    /// Words the error must carry.
    says: &'static [&'static str],
    /// A refusal: FAILED and no retry. Otherwise DISCONNECTED and retried with backoff.
    refused: bool,
}

#[test]
fn each_bad_endpoint_gets_a_clear_error_and_disturbs_nothing_else() {
    support::netns::isolated_async(test_name!(), || async {
        let tmp = tempfile::tempdir().unwrap();
        let srv = WhipServer::start(tmp.path(), Some(TOKEN), None);
        let cases = [
            Case {
                path: "/status/400",
                says: &["400"],
                refused: true,
            },
            Case {
                path: "/status/401",
                says: &["401", "token_file"],
                refused: true,
            },
            Case {
                path: "/status/403",
                says: &["403", "token_file"],
                refused: true,
            },
            Case {
                path: "/status/404",
                says: &["404", "no such endpoint"],
                refused: true,
            },
            Case {
                path: "/status/503",
                says: &["503"],
                refused: false,
            },
            Case {
                path: "/notsdp",
                says: &["not SDP", "text/html"],
                refused: false,
            },
            Case {
                path: "/badlocation",
                says: &["Location", "not a URL"],
                refused: false,
            },
            Case {
                path: "/hang",
                says: &["no answer in time"],
                refused: false,
            },
        ];
        for case in cases {
            let mut c = whip_config(tmp.path(), &srv.url(case.path), &[]);
            c.room.connect_timeout = Duration::from_secs(2);
            let b = Box_::start(&c);
            assert!(
                eventually(WAIT, || b.state().media.state == MediaState::Playing).await,
                "capture did not start"
            );
            b.handle.send(join_cmd()).await.expect("join accepted");
            let want = if case.refused {
                MeetingState::Failed
            } else {
                MeetingState::Disconnected
            };
            assert!(
                eventually(WAIT, || b.saw(
                    |e| matches!(e, Event::MeetingStateChanged { state } if *state == want)
                ))
                .await,
                "{}: never {want:?}; events {:?}",
                case.path,
                b.events()
            );
            let error = b
                .events()
                .into_iter()
                .find_map(|e| match e {
                    Event::Error { code, message } if code == "room" => Some(message),
                    _ => None,
                })
                .unwrap_or_default();
            for w in case.says {
                assert!(
                    error.contains(w),
                    "{}: the error `{error}` does not say `{w}`",
                    case.path
                );
            }
            assert!(!error.contains(TOKEN), "the token leaked into an error");
            if !case.refused {
                // Retried, with backoff (200 ms, then longer), not in a tight loop.
                assert!(
                    eventually(WAIT, || post_count(&srv, case.path) >= 3).await,
                    "{}: not retried",
                    case.path
                );
                let log = srv.requests("POST", case.path).await;
                let t: Vec<f64> = log.iter().map(|r| f64_of(r, "t")).collect();
                assert!(
                    t.len() < 12,
                    "{}: {} attempts: no backoff",
                    case.path,
                    t.len()
                );
            } else {
                tokio::time::sleep(Duration::from_secs(2)).await;
                assert_eq!(
                    srv.requests("POST", case.path).await.len(),
                    1,
                    "{}: a refusal was retried",
                    case.path
                );
                assert!(
                    b.state().room.is_none(),
                    "{}: still in a room after a refusal",
                    case.path
                );
            }
            // Capture never stopped.
            assert_eq!(b.state().media.state, MediaState::Playing, "{}", case.path);
            b.handle.send(Command::Leave).await.ok();
        }
    });
}

#[test]
fn a_redirect_keeps_the_token() {
    support::netns::isolated_async(test_name!(), || async {
        let tmp = tempfile::tempdir().unwrap();
        let srv = WhipServer::start(tmp.path(), Some(TOKEN), None);
        let c = whip_config(tmp.path(), &srv.url("/redirect/box"), &[]);
        let b = Box_::start(&c);
        b.join().await;
        server_receives(&srv, "box").await;
        let posts = srv.requests("POST", "/whip/box").await;
        assert!(!posts.is_empty() && posts.iter().all(|r| r["auth"] == true));
    });
}

/// Runs `tests/browser/janus_watch.mjs` (Chromium with janus.js) on the publisher shown as
/// `display` in Janus room `room`, returning its lines as they come.
fn janus_watch(
    janus: &str,
    room: u64,
    display: &str,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "the browser test needs playwright-core: run tests/browser/setup.sh"
    );
    let opts = serde_json::json!({"janus": janus, "room": room, "display": display, "frames": 60, "timeoutS": 60});
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("janus_watch.mjs"))
        .arg(opts.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

async fn next_phase(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
        .await
        .expect("janus_watch.mjs said nothing in 90 s")
        .expect("read janus_watch.mjs")
        .expect("janus_watch.mjs ended without a word");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// WHIP into Janus through Debian's simple-whip-server: a person in the room with janus.js in
/// Chromium sees the box's video and hears its tone, and the box's leaving (DELETE) takes it
/// out of the room.
#[test]
fn the_box_publishes_into_a_janus_room_through_simple_whip_server() {
    support::netns::isolated_async(test_name!(), || async {
        let tmp = tempfile::tempdir().unwrap();
        let room = 4343;
        let (_janus, janus_url, swhip) =
            support::whip::janus_room_with_whip(tmp.path(), room, "Meeting room 3", TOKEN).await;

        let c = whip_config(tmp.path(), &swhip.endpoint("box"), &[]);
        let b = Box_::start(&c);
        b.join().await;
        let (mut viewer, mut lines) = janus_watch(&janus_url, room, "Meeting room 3");
        let seen = next_phase(&mut lines).await;
        assert_eq!(seen["phase"], "receiving", "{seen:#}");
        assert_eq!(
            (
                seen["stats"]["width"].as_u64(),
                seen["stats"]["height"].as_u64()
            ),
            (Some(320), Some(180)),
            "{seen:#}"
        );

        b.handle.send(Command::Leave).await.expect("leave");
        let gone = next_phase(&mut lines).await;
        assert_eq!(
            gone["phase"], "left",
            "the box's leaving did not take it out of the Janus room: {gone:#}"
        );
        let _ = viewer.wait().await;
    });
}

/// Benchmark (run by `benches/room.sh`): the join command to meeting-state CONNECTED, the same
/// box and the same Janus room in one run, alternately over Janus's own WebSocket API and over
/// WHIP through simple-whip-server. Prints a markdown section.
#[test]
#[ignore = "benchmark; run benches/room.sh"]
fn bench_whip_join() {
    support::netns::isolated_async(test_name!(), || async {
        let tmp = tempfile::tempdir().unwrap();
        let room = 4343;
        let (_janus, janus_url, swhip) =
            support::whip::janus_room_with_whip(tmp.path(), room, "bench box", TOKEN).await;
        let whip = whip_config(tmp.path(), &swhip.endpoint("box"), &[]);
        let mut janus = support::inproc::room_config(&janus_url, tmp.path(), "4343", (320, 180));
        janus.room.create_room = false;
        janus.room.chat = false;
        let boxes = [("Janus", Box_::start(&janus)), ("WHIP", Box_::start(&whip))];
        let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..8 {
            for (i, (_, b)) in boxes.iter().enumerate() {
                let t0 = std::time::Instant::now();
                b.handle.send(join_cmd()).await.expect("join");
                // Polled every 2 ms: the tests' own poll (50 ms) is too coarse to time it.
                let end = t0 + WAIT;
                while b.state().meeting_state != MeetingState::Connected {
                    assert!(
                        std::time::Instant::now() < end,
                        "{} did not connect",
                        boxes[i].0
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                // The first round of each warms up (the encoder's first keyframe, Janus's
                // first room handle).
                if round > 0 {
                    times[i].push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                b.handle.send(Command::Leave).await.expect("leave");
                assert!(
                    eventually(WAIT, || b.state().room.is_none()
                        || b.state().meeting_state == MeetingState::Closed)
                    .await
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let j = med(&mut times[0]);
        let w = med(&mut times[1]);
        println!("\n## Room join over WHIP beside Janus (issue 20)\n");
        println!(
            "The same 320x180 box joins the same existing Janus room, in a private network \
             namespace, alternately over Janus's WebSocket API and over WHIP through Debian's \
             simple-whip-server (the box gathers ICE, POSTs the whole offer, and the server \
             joins Janus for it). From the join command to meeting-state CONNECTED (ICE and DTLS \
             up), {} joins each after one warm-up:\n",
            times[0].len()
        );
        println!("| | median | min | max | ratio to Janus (median) |\n|---|---|---|---|---|");
        println!(
            "| Janus WebSocket API | {:.0} ms | {:.0} ms | {:.0} ms | 1.00 |",
            j.0, j.1, j.2
        );
        println!(
            "| WHIP (simple-whip-server) | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} |",
            w.0,
            w.1,
            w.2,
            w.0 / j.0
        );
    });
}

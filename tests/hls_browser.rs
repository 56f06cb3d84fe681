//! The box's HLS in a real browser, and its HTTP token beyond loopback: the real `roombox`
//! binary, headless Chromium (Debian's) driven by playwright-core, hls.js from npm. Needs
//! `tests/browser/setup.sh` to have run (scripts/test.sh runs it).

mod support;

use std::time::Duration;
use support::agent::{AgentProcess, SMALL_MEDIA};
use support::browser::{play_for, Played};
use support::http::{get, request, start_hls};

/// A token long enough for `roombox check`.
const TOKEN: &str = "s3cret-token-0123456789";

/// The port of an `http://host:port/...` URL.
fn port_of(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let hostport = rest.split('/').next().expect("host");
    hostport
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("a port")
}

/// Plays `url` in headless Chromium through hls.js for up to `seconds`, wanting `min_frames`.
/// `player` is `hlsjs` or `native` (the `<video>` element's own HLS).
async fn play_in_chromium(url: &str, seconds: u32, min_frames: u32, player: &str) -> Played {
    play_for(url, seconds, min_frames, player, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_plays_in_headless_chromium_through_hls_js() {
    let agent = AgentProcess::start(&format!(
        "{SMALL_MEDIA}\n[hls]\nsegment = \"1s\"\nplaylist_length = 4\n"
    ));
    let url = start_hls(&agent).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let host = format!("127.0.0.1:{}", port_of(&url));
    // The page comes from another origin (play.mjs's own server): HLS answers carry CORS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let playlist = get(&host, "/hls/index.m3u8").await;
    assert_eq!(playlist.code, 200);
    assert_eq!(
        playlist.header("access-control-allow-origin"),
        Some("*"),
        "{:?}",
        playlist.headers
    );
    let text = playlist.text();
    let segment = text
        .lines()
        .find(|l| l.ends_with(".m4s"))
        .unwrap_or_else(|| panic!("no segment in {text}"));
    let seg = get(&host, &format!("/hls/{segment}")).await;
    assert_eq!(seg.code, 200);
    assert_eq!(seg.header("access-control-allow-origin"), Some("*"));
    // GET only: nothing answers a preflight, and nothing needs one.
    let options = request("OPTIONS", &host, "/hls/index.m3u8", &[]).await;
    assert_eq!(options.code, 405);
    // The control API is not for other origins.
    let api = get(&host, "/api/state").await;
    assert_eq!(api.code, 200);
    assert_eq!(api.header("access-control-allow-origin"), None);

    let played = play_in_chromium(&url, 15, 60, "hlsjs").await;
    let r = &played.report;
    assert!(
        played.ok,
        "Chromium decoded too few frames: {r:#}\nagent log:\n{}",
        agent.log()
    );
    assert_eq!(r["hlsJsSupported"], true, "{r:#}");
    assert!(r["decoded"].as_u64().unwrap_or(0) >= 60, "{r:#}");
    assert!(r["presented"].as_u64().unwrap_or(0) >= 60, "{r:#}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert!(
        r["currentTime"].as_f64().unwrap_or(0.0) > 1.5,
        "playback time advanced: {r:#}"
    );
    // hls.js played it as low-latency HLS: it loaded parts, not only whole segments (a player
    // that ignores parts loads none; 15 were loaded in 2.5 s here).
    assert!(
        r["partsLoaded"].as_u64().unwrap_or(0) >= 5,
        "hls.js loaded no parts: {r:#}"
    );

    // Chromium 156 (Debian) also plays HLS by itself; a build that says it can must play ours.
    if r["nativeHls"] != "" {
        let native = play_in_chromium(&url, 15, 60, "native").await;
        assert!(
            native.ok,
            "Chromium's native HLS claims support but decoded too few frames: {:#}",
            native.report
        );
    }
}

/// HLS follows the program: a share started while Chromium plays takes over the picture at its
/// own size behind a discontinuity with its own init segment, and hls.js plays on through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_follows_the_share_and_the_player_plays_on() {
    let agent = AgentProcess::start(&format!(
        "{SMALL_MEDIA}\n[hls]\nsegment = \"1s\"\nplaylist_length = 6\n\
         [media.share]\nsource = \"test\"\nwidth = 640\nheight = 360\nfps = 10\n"
    ));
    let url = start_hls(&agent).await;
    let host = format!("127.0.0.1:{}", port_of(&url));
    let player = tokio::spawn({
        let url = url.clone();
        async move { play_for(&url, 24, 120, "hlsjs", 20).await }
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = agent.call(roombox::command::Command::StartShare).await;
    assert!(r.ok, "start-share: {r:?}");
    agent
        .wait_state("the share runs", Duration::from_secs(20), |s| {
            s["media"]["share"] == "on"
        })
        .await;
    // The playlist says where the format changed, and the new init segment is served.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = get(&host, "/hls/index.m3u8").await.text();
        if text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no discontinuity in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let init1 = get(&host, "/hls/init1.mp4").await;
    assert_eq!(init1.code, 200, "{text}");
    let played = player.await.expect("the player task");
    let r = &played.report;
    assert!(played.ok, "Chromium decoded too few frames: {r:#}");
    // Still playing at the end, and at the share's size.
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r:#}"
    );
    assert!(
        r["currentTime"].as_f64().unwrap_or(0.0) > 12.0,
        "playback went on through the switch: {r:#}"
    );
    let fatal: Vec<_> = r["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.as_str().is_some_and(|e| e.contains("fatal")))
        .collect();
    assert!(fatal.is_empty(), "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_every_request_needs_the_token_and_guessing_is_slowed() {
    let agent = AgentProcess::start(&format!(
        "[http]\nbind = \"0.0.0.0\"\nport = 0\ntoken = \"{TOKEN}\"\n\
         {SMALL_MEDIA}\n[hls]\nsegment = \"1s\"\nplaylist_length = 4\n"
    ));
    let url = start_hls(&agent).await;
    // Bound to every interface, but the test only ever talks over loopback.
    let host = format!("127.0.0.1:{}", port_of(&url));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bearer = format!("Bearer {TOKEN}");

    let ok = request(
        "GET",
        &host,
        "/hls/index.m3u8",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(ok.code, 200, "{}", ok.text());
    assert!(ok.text().starts_with("#EXTM3U"));
    let api = request("GET", &host, "/api/state", &[("Authorization", &bearer)]).await;
    assert_eq!(api.code, 200);

    // ?token=: the playlist hands the token on to every URI it names: segments, parts, the
    // init segment and the preload hint.
    let q = get(&host, &format!("/hls/index.m3u8?token={TOKEN}")).await;
    assert_eq!(q.code, 200);
    let text = q.text();
    let segments: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(segments.len() >= 2, "{text}");
    for s in &segments {
        assert!(s.ends_with(&format!(".m4s?token={TOKEN}")), "{text}");
    }
    let uris: Vec<&str> = text
        .split("URI=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect();
    assert!(uris.len() >= 3, "{text}");
    for u in &uris {
        assert!(u.ends_with(&format!("?token={TOKEN}")), "{u} in {text}");
    }
    // Authorized by header, a stray ?token= is not echoed into the playlist.
    let stray = request(
        "GET",
        &host,
        "/hls/index.m3u8?token=x%0A%23EXT-X-ENDLIST",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(stray.code, 200);
    assert!(
        !stray.text().contains("token") && !stray.text().contains("ENDLIST"),
        "{}",
        stray.text()
    );
    let seg = get(&host, &format!("/hls/{}", segments[segments.len() - 1])).await;
    assert_eq!(seg.code, 200);
    assert_eq!(seg.body.get(4..8), Some(&b"moof"[..]), "a CMAF segment");

    // A real player gets through with the token in the URL alone.
    let played = play_in_chromium(
        &format!("http://{host}/hls/index.m3u8?token={TOKEN}"),
        15,
        60,
        "hlsjs",
    )
    .await;
    assert!(
        played.ok,
        "Chromium with ?token= decoded too few frames: {:#}",
        played.report
    );

    // Without the right token: 401, five times, all inside 10 s...
    let none = get(&host, "/hls/index.m3u8").await;
    assert_eq!(none.code, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    // A player on another origin can still read why it was refused.
    assert_eq!(none.header("access-control-allow-origin"), Some("*"));
    let wrong = request(
        "GET",
        &host,
        "/hls/index.m3u8",
        &[("Authorization", "Bearer s3cret-token-0123456780")],
    )
    .await;
    assert_eq!(wrong.code, 401);
    assert_eq!(get(&host, "/api/state").await.code, 401);

    let bare = segments[0].split('?').next().expect("name");
    assert_eq!(get(&host, &format!("/hls/{bare}")).await.code, 401);
    let fifth = get(&host, "/hls/index.m3u8?token=guess-guess-guess-1").await;
    assert_eq!(fifth.code, 401, "the fifth failure still says 401");
    // ...and this address is locked out, even with the right token, or guessing would go on.
    let locked = request(
        "GET",
        &host,
        "/hls/index.m3u8",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(locked.code, 429, "{}", locked.text());
    assert_eq!(locked.header("retry-after"), Some("60"));
    assert_eq!(
        get(&host, &format!("/hls/index.m3u8?token={TOKEN}"))
            .await
            .code,
        429
    );
}

/// Runs `roombox check` on a config with `http_section`; returns (success, stdout).
fn check_with(http_section: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("roombox.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"test-box\"\nstate_dir = \"{}\"\n{http_section}",
            dir.path().join("state").display()
        ),
    )
    .expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roombox"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("run roombox check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn check_takes_http_beyond_loopback_with_the_boxs_own_token_and_refuses_a_short_one() {
    // No token configured: the box makes its own pairing token in the state directory
    // (`roombox console-token`), so check has nothing to say of http.
    let (_, out) = check_with("[http]\nbind = \"0.0.0.0\"\n");
    assert!(!out.contains("http.token"), "{out}");
    let (ok, out) = check_with("[http]\nbind = \"0.0.0.0\"\ntoken = \"short\"\n");
    assert!(!ok, "{out}");
    assert!(out.contains("shorter than 16 characters"), "{out}");
    // With a long enough token, nothing is said of http (other checks may still fail on a
    // machine without a camera; they are not this test's business).
    let (_, out) = check_with(&format!(
        "[http]\nbind = \"0.0.0.0\"\ntoken = \"{TOKEN}\"\n"
    ));
    assert!(!out.contains("http.token"), "{out}");
}

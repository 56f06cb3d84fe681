//! The tests' WHIP and WHEP server (`whip_server.py`, on PyPI's aiortc and aiohttp in the venv
//! `tests/support/whip-setup.sh` makes): a WebRTC stack other than the box's, on 127.0.0.1 with an
//! ephemeral port, stopped by pid on drop. It decodes what is published to it and says what
//! arrived (`/stats/NAME`), logs every request (`/log`), and answers the faults the bad-input
//! tests need.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv with aiortc and aiohttp.
pub fn venv() -> PathBuf {
    std::env::var_os("ROOMBOX_WHIP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/roombox-whip-venv")
        })
}

pub struct WhipServer {
    child: Child,
    pub port: u16,
}

impl WhipServer {
    /// Starts the server in `dir`; `token` is required of clients when given; `publish` names a
    /// stream its own WHIP client publishes (a pattern and a tone) from the start.
    pub fn start(dir: &Path, token: Option<&str>, publish: Option<&str>) -> WhipServer {
        let python = venv().join("bin/python3");
        assert!(
            python.exists(),
            "{} is missing: run tests/support/whip-setup.sh (it makes the tests' aiortc venv)",
            python.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/whip_server.py");
        let port_file = dir.join("whip.port");
        let log = std::fs::File::create(dir.join("whip-server.log")).expect("log");
        let mut cmd = Command::new(python);
        cmd.arg(script).arg("--port-file").arg(&port_file);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        if let Some(p) = publish {
            cmd.args(["--publish", p]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start whip_server.py");
        let mut s = WhipServer { child, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                s.port = p.trim().parse().expect("a port");
                return s;
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!(
                    "whip_server.py exited ({st}): {}",
                    std::fs::read_to_string(dir.join("whip-server.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("whip_server.py did not listen within 30 s");
    }

    /// `http://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get(&self, path: &str) -> Value {
        let host = format!("127.0.0.1:{}", self.port);
        let r = super::http::request("GET", &host, path, &[]).await;
        assert_eq!(r.code, 200, "GET {path}: {}", r.text());
        serde_json::from_slice(&r.body).expect("json")
    }

    /// What the server decoded of stream `name`: `video_frames`, `width`, `height`,
    /// `audio_dbfs`, `publishing`.
    pub async fn stats(&self, name: &str) -> Value {
        self.get(&format!("/stats/{name}")).await
    }

    /// Every request so far: `method`, `path`, `t` (seconds), `auth` (had a token).
    pub async fn log(&self) -> Vec<Value> {
        self.get("/log")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The requests so far with this method and path.
    pub async fn requests(&self, method: &str, path: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|r| r["method"] == method && r["path"] == path)
            .collect()
    }

    /// Starts (true) or stops its own publisher of `name`.
    pub async fn demo(&self, name: &str, on: bool) {
        let host = format!("127.0.0.1:{}", self.port);
        let method = if on { "POST" } else { "DELETE" };
        let r = super::http::request(method, &host, &format!("/demo/{name}"), &[]).await;
        assert!(
            r.code < 300,
            "{method} /demo/{name}: {} {}",
            r.code,
            r.text()
        );
    }
}

impl Drop for WhipServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's simple-whip-server (Meetecho's WHIP front end to a Janus VideoRoom), unpacked with
/// its npm requirements by `tests/support/simple-whip-server/setup.sh`, run from a copy of its
/// sources with a configuration of the test's own: an ephemeral port on 127.0.0.1 and the
/// test's Janus. Stopped by pid on drop.
pub struct SimpleWhipServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl SimpleWhipServer {
    /// Starts it in `dir`, on the Janus at `janus_ws`.
    pub fn start(dir: &Path, janus_ws: &str) -> SimpleWhipServer {
        let home = std::env::var_os("ROOMBOX_SWHIP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/roombox-simple-whip-server")
            });
        let src = home.join("root/usr/share/simple-whip-server/src");
        assert!(
            src.join("server.js").exists() && home.join("node_modules/express").is_dir(),
            "simple-whip-server is missing from {}: run tests/support/simple-whip-server/setup.sh",
            home.display()
        );
        let port = super::janus::free_port("127.0.0.1").expect("a free port");
        let own = dir.join("simple-whip-server/src");
        std::fs::create_dir_all(&own).expect("its directory");
        for f in ["server.js", "whip-janus.js"] {
            std::fs::copy(src.join(f), own.join(f)).expect("copy its sources");
        }
        std::fs::write(
            own.join("config.js"),
            format!(
                "module.exports = {{ janus: {{ address: '{janus_ws}' }}, port: {port}, \
                 rest: '/whip', allowTrickle: true, strictETags: false, iceServers: [] }};\n"
            ),
        )
        .expect("its config");
        let log = std::fs::File::create(dir.join("simple-whip-server.log")).expect("log");
        let child = Command::new("node")
            .arg("src/server.js")
            .current_dir(own.parent().expect("parent"))
            .env("NODE_PATH", home.join("node_modules"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start simple-whip-server");
        let s = SimpleWhipServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "simple-whip-server did not listen on {port}: see {}",
                dir.join("simple-whip-server.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// Makes the WHIP endpoint `id` into Janus room `room`: its publisher shows as `label`,
    /// and it takes `token`.
    pub async fn create(&self, id: &str, room: u64, label: &str, token: &str) {
        let body = serde_json::json!({"id": id, "room": room, "label": label, "token": token});
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/whip/create", self.port))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /whip/create");
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    }

    /// The endpoint `id`'s URL, which the box publishes to.
    pub fn endpoint(&self, id: &str) -> String {
        format!("http://127.0.0.1:{}/whip/endpoint/{id}", self.port)
    }
}

impl Drop for SimpleWhipServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Janus in `dir` with VideoRoom `room` made at start-up, and simple-whip-server in front of
/// it with the WHIP endpoint `box` into that room (its publisher shown as `label`, taking
/// `token`). Returns Janus, its WebSocket URL and the WHIP server.
pub async fn janus_room_with_whip(
    dir: &Path,
    room: u64,
    label: &str,
    token: &str,
) -> (super::janus::JanusProcess, String, SimpleWhipServer) {
    let mut sc = super::janus::ServerConfig::new("127.0.0.1", dir.join("rec")).expect("port");
    sc.rooms.push(super::janus::StaticRoom {
        id: room,
        description: "whip".into(),
        secret: String::new(),
        pin: String::new(),
        publishers: 6,
        videocodec: String::new(),
    });
    let url = sc.url();
    let janus = super::janus::JanusProcess::start(sc, &dir.join("janus"), Duration::from_secs(20))
        .expect("janus");
    let swhip = SimpleWhipServer::start(dir, &url);
    swhip.create("box", room, label, token).await;
    (janus, url, swhip)
}

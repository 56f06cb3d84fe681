//! A Radicale CalDAV server (Debian's `radicale` 3.1) on 127.0.0.1 with an ephemeral port, its
//! own storage and an htpasswd file in a temporary directory, stopped by pid on drop.
//!
//! Radicale 3.1 does not expand recurrences (`CALDAV:expand` came in 3.2), so what the box reads
//! is what a client wrote: the box expands.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user the tests' calendars belong to, and its password.
pub const USER: &str = "room4";
pub const PASSWORD: &str = "s3cret-pw";

pub struct Radicale {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Radicale {
    pub fn start() -> Radicale {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = super::mosquitto::free_port();
        Self::start_at(dir, port)
    }

    /// Starts on `port` with the storage already in `dir` (a restart keeps the calendars).
    pub fn start_at(dir: tempfile::TempDir, port: u16) -> Radicale {
        let d = dir.path();
        std::fs::write(
            d.join("users"),
            format!("{USER}:{PASSWORD}\nother:other-pw\n"),
        )
        .expect("users");
        std::fs::write(
            d.join("config"),
            format!(
                "[server]\nhosts = 127.0.0.1:{port}\n\
                 [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\ndelay = 0\n\
                 [rights]\ntype = owner_only\n\
                 [storage]\nfilesystem_folder = {store}\n\
                 [web]\ntype = none\n\
                 [logging]\nlevel = info\nmask_passwords = True\n",
                users = d.join("users").display(),
                store = d.join("collections").display(),
            ),
        )
        .expect("config");
        let log = std::fs::File::create(d.join("radicale.log")).expect("log");
        let child = Command::new("radicale")
            .arg("--config")
            .arg(d.join("config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("radicale is installed (scripts/setup.sh)");
        let r = Radicale {
            child: Some(child),
            port,
            dir,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                panic!("radicale did not listen on {port}: {}", r.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>/<user>/<name>/`.
    pub fn calendar_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{USER}/{name}/", self.port)
    }

    /// Makes a calendar collection (MKCALENDAR).
    pub async fn mkcalendar(&self, name: &str) {
        let r = self
            .http
            .request(
                reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(),
                self.calendar_url(name),
            )
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("MKCALENDAR");
        assert_eq!(
            r.status().as_u16(),
            201,
            "MKCALENDAR {name}: {}",
            self.log()
        );
    }

    /// PUTs an object into a calendar; returns the status.
    pub async fn put(&self, name: &str, file: &str, ics: &str) -> u16 {
        self.http
            .put(format!("{}{file}", self.calendar_url(name)))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(ics.to_string())
            .send()
            .await
            .expect("PUT")
            .status()
            .as_u16()
    }

    /// GETs an object (or the whole collection as one calendar); `None` on 404.
    pub async fn get(&self, name: &str, file: &str) -> Option<String> {
        let r = self
            .http
            .get(format!("{}{file}", self.calendar_url(name)))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("GET");
        match r.status().as_u16() {
            404 => None,
            200 => Some(r.text().await.expect("body")),
            s => panic!("GET {name}/{file}: {s}"),
        }
    }

    /// Stops the server (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        self.stop();
    }
}

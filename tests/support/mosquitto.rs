//! A mosquitto broker on 127.0.0.1 with an ephemeral port, in a temporary directory, with
//! persistence (so sessions and queued QoS 1 messages survive a restart).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) broker.
pub struct Mosquitto {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory (config, persistence, log, certificates).
    pub dir: tempfile::TempDir,
    conf: PathBuf,
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Mosquitto {
    /// A plain broker: anonymous, no TLS.
    pub fn start() -> Mosquitto {
        Self::start_with(|_dir, port| format!("listener {port} 127.0.0.1\nallow_anonymous true\n"))
    }

    /// A broker whose listener section `listener(dir, port)` writes.
    pub fn start_with(listener: impl FnOnce(&Path, u16) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let text = format!(
            "{}\npersistence true\npersistence_location {}/\nautosave_interval 1\nlog_dest file {}\nlog_type all\nuser root\nmax_connections -1\nmax_queued_messages 100000\n",
            listener(dir.path(), port),
            dir.path().display(),
            dir.path().join("mosquitto.log").display()
        );
        std::fs::write(&conf, text).expect("write conf");
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
            conf,
        };
        m.run();
        m
    }

    fn run(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/setup.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                panic!("mosquitto did not listen on {}: {}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker with SIGTERM (it saves its persistence file) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! An ejabberd node (Debian 12's, with its MQTT 5 broker `mod_mqtt`) on 127.0.0.1 with an
//! ephemeral MQTT port, its configuration, spool and logs in a temporary directory, and a node
//! name of its own; nodes join each other into a cluster over Erlang distribution. Stopped by
//! its pid (from its pid file) on drop. Self-contained: `examples/bench_fleet_cluster.rs` uses it
//! too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A free TCP port on loopback (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// One running node.
pub struct Ejabberd {
    /// `name@localhost`.
    pub node: String,
    /// Its MQTT port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    pid: Option<i32>,
}

impl Ejabberd {
    /// Starts a node and waits until it has started.
    pub fn start() -> Ejabberd {
        assert!(
            Path::new("/usr/sbin/ejabberdctl").exists(),
            "ejabberd is missing: run scripts/setup.sh"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let node = format!(
            "rb{}n{}@localhost",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        for d in ["conf", "logs", "spool"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("its directories");
        }
        // `max_queue`: a session's queue of packets not yet sent to its client; past it
        // ejabberd drops the session (queue_full). The default, 5000, is too small for an
        // operator taking a group command's replies from 10,000 boxes; mosquitto's counterpart
        // in the benches is `max_queued_messages 100000`.
        std::fs::write(
            dir.path().join("conf/ejabberd.yml"),
            format!(
                "hosts:\n  - localhost\nloglevel: warning\nlisten:\n  -\n    port: {port}\n    \
                 ip: \"127.0.0.1\"\n    module: mod_mqtt\n    backlog: 1000\n\
                 auth_method: internal\nacl:\n  local:\n    user_regexp: \"\"\n\
                 access_rules:\n  local:\n    allow: local\n\
                 modules:\n  mod_mqtt:\n    max_queue: 100000\n    access_publish:\n      \"#\":\n        - allow\n    \
                 access_subscribe:\n      \"#\":\n        - allow\n"
            ),
        )
        .expect("ejabberd.yml");
        std::fs::write(
            dir.path().join("conf/ejabberdctl.cfg"),
            format!(
                // ejabberdctl starts the node through `su`, which leaves it 1024 open files:
                // about 980 MQTT connections a node. Its VM is started by a wrapper that
                // raises that to the hard limit first.
                "ERL={}\nERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\nEJABBERD_PID_PATH={}\n",
                dir.path().join("erl").display(),
                dir.path().join("ejabberd.pid").display()
            ),
        )
        .expect("ejabberdctl.cfg");
        let erl = dir.path().join("erl");
        std::fs::write(
            &erl,
            "#!/bin/sh\nulimit -n \"$(ulimit -Hn)\" 2>/dev/null || true\nexec /usr/bin/erl \"$@\"\n",
        )
        .expect("the erl wrapper");
        std::fs::set_permissions(&erl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the erl wrapper");
        // ejabberdctl runs the node as the ejabberd user (whose cookie every node shares).
        let status = Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown the node's directory");
        let mut e = Ejabberd {
            node,
            port,
            dir,
            pid: None,
        };
        e.ctl(&["start"]);
        e.ctl(&["started"]);
        e.wait_listening("after starting");
        e.pid = std::fs::read_to_string(e.dir.path().join("ejabberd.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        assert!(e.pid.is_some(), "ejabberd {} wrote no pid file", e.node);
        e
    }

    fn paths(&self) -> Vec<String> {
        let d = |s: &str| self.dir.path().join(s).display().to_string();
        vec![
            "--node".into(),
            self.node.clone(),
            "--config-dir".into(),
            d("conf"),
            "--config".into(),
            d("conf/ejabberd.yml"),
            "--ctl-config".into(),
            d("conf/ejabberdctl.cfg"),
            "--logs".into(),
            d("logs"),
            "--spool".into(),
            d("spool"),
        ]
    }

    /// Runs `ejabberdctl <args>` on this node; panics with its output when it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("ejabberdctl")
            // Erlang's port mapper, started by the first node, listens on loopback only.
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .args(self.paths())
            .args(args)
            .output()
            .expect("run ejabberdctl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "ejabberdctl {args:?} on {}: {text}",
            self.node
        );
        text
    }

    /// Registers `user@localhost` with `password` (an MQTT login for the whole cluster).
    pub fn register(&self, user: &str, password: &str) {
        self.ctl(&["register", user, "localhost", password]);
    }

    /// Joins the cluster `other` is in.
    pub fn join(&self, other: &Ejabberd) {
        self.ctl(&["join_cluster", &other.node]);
        let listed = self.ctl(&["list_cluster"]);
        assert!(listed.contains(&other.node), "not clustered: {listed}");
        // Joining restarts the node's applications, its MQTT listener among them: wait until
        // it accepts again (a bench saw "connection refused" right after the join).
        self.wait_listening("after joining the cluster");
    }

    /// Waits up to 60 s until the node's MQTT port accepts connections.
    fn wait_listening(&self, when: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ejabberd {} does not listen on {} {when}: {}",
                self.node,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's process id.
    pub fn pid(&self) -> Option<u32> {
        self.pid.map(|p| p as u32)
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The node's logs.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for f in ["ejabberd.log", "error.log"] {
            out +=
                &std::fs::read_to_string(self.dir.path().join("logs").join(f)).unwrap_or_default();
        }
        out
    }

    /// Kills the node at once (SIGKILL), as a crash or a power cut would.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while PathBuf::from(format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.kill();
    }
}

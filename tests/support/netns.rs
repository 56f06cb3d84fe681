//! Runs a test inside a network namespace of its own.
//!
//! Janus never gathers ICE candidates on loopback, and WebRTC peers need a non-loopback
//! interface too. So a WebRTC test re-executes its own test binary under `unshare -n`, filtered
//! to itself, with [`CHILD_ENV`] set. The child (root inside the new namespace) brings `lo` up and
//! adds a veth pair with private addresses, then runs the test body: Janus, the box and the
//! webrtcbin peer all live in that namespace, and no packet reaches the machine's interfaces.
//! The namespace and its links vanish when the child exits; nothing needs cleaning up.

use std::process::Command;

/// Set in the re-executed child.
pub const CHILD_ENV: &str = "ROOMBOX_TEST_NETNS";
/// The address of the veth end the tests use.
pub const VETH_ADDR: &str = "10.77.0.1";

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Runs `body` in a fresh network namespace (see the module documentation). `name` is the test
/// function's name, as libtest filters it.
pub fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        ip(&["link", "set", "lo", "up"]);
        ip(&[
            "link", "add", "rbx0", "type", "veth", "peer", "name", "rbx1",
        ]);
        ip(&["addr", "add", &format!("{VETH_ADDR}/24"), "dev", "rbx0"]);
        ip(&["addr", "add", "10.77.0.2/24", "dev", "rbx1"]);
        ip(&["link", "set", "rbx0", "up"]);
        ip(&["link", "set", "rbx1", "up"]);
        body();
        // Passed. Leave at once: the in-process agents' GStreamer pipelines still run on their
        // own threads, and tearing them down in exit handlers crashed about one run in five
        // after the test had passed. The namespace, Janus and the peers go with the process.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: _exit ends the process without running anything else; nothing after it.
        unsafe { libc::_exit(0) }
    }
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args([
            name,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .status()
        .expect("run unshare (needs root or CAP_SYS_ADMIN)");
    assert!(
        status.success(),
        "{name} failed inside its network namespace"
    );
}

/// [`isolated`] for an async test body, on a tokio runtime of its own, with the test's logs.
pub fn isolated_async<F: std::future::Future>(name: &str, body: impl FnOnce() -> F) {
    isolated(name, || {
        super::init_logs();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(body());
    });
}

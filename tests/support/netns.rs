//! Runs a test inside a network namespace of its own.
//!
//! Janus never gathers ICE candidates on loopback, and WebRTC peers need a non-loopback
//! interface too. So a WebRTC test re-executes its own test binary under `unshare -n`, filtered
//! to itself, with [`CHILD_ENV`] set. The child (root inside the new namespace) brings `lo` up and
//! adds a veth pair with private addresses, then runs the test body: Janus, the box and the
//! webrtcbin peer all live in that namespace, and no packet reaches the machine's interfaces.
//! The namespace and its links vanish when the child exits; nothing needs cleaning up.
//!
//! The child is filtered by the name [`crate::test_name!`] reads from the calling function, never
//! a name typed by hand, and the parent fails unless the child says its body ran: a renamed or
//! filtered-out test cannot pass by running nothing.

use std::process::Command;

/// Set in the re-executed child: the file it writes once the body has run.
pub const CHILD_ENV: &str = "ROOMBOX_TEST_NETNS";

/// The path of the calling test function as libtest names it (`module::test`, without the crate):
/// what the re-executed child filters on.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        fn name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let path = name_of(here);
        let path = path.strip_suffix("::here").unwrap_or(path);
        path.split_once("::").map(|(_, p)| p).unwrap_or(path)
    }};
}
/// The address of the veth end the tests use.
pub const VETH_ADDR: &str = "10.77.0.1";

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Runs `body` in a fresh network namespace (see the module documentation). `name` is the test
/// function's name, as libtest filters it: pass `crate::test_name!()`.
pub fn isolated(name: &str, body: impl FnOnce()) {
    if let Some(ran) = std::env::var_os(CHILD_ENV) {
        ip(&["link", "set", "lo", "up"]);
        ip(&[
            "link", "add", "rbx0", "type", "veth", "peer", "name", "rbx1",
        ]);
        ip(&["addr", "add", &format!("{VETH_ADDR}/24"), "dev", "rbx0"]);
        ip(&["addr", "add", "10.77.0.2/24", "dev", "rbx1"]);
        ip(&["link", "set", "rbx0", "up"]);
        ip(&["link", "set", "rbx1", "up"]);
        body();
        std::fs::write(&ran, name).expect("write the child's ran-file");
        // Passed. Leave at once: the in-process agents' GStreamer pipelines still run on their
        // own threads, and tearing them down in exit handlers crashed about one run in five
        // after the test had passed. The namespace, Janus and the peers go with the process.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: _exit ends the process without running anything else; nothing after it.
        unsafe { libc::_exit(0) }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = dir.path().join("ran");
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
        .env(CHILD_ENV, &ran)
        .status()
        .expect("run unshare (needs root or CAP_SYS_ADMIN)");
    assert!(
        status.success(),
        "{name} failed inside its network namespace"
    );
    let said = std::fs::read_to_string(&ran).unwrap_or_default();
    assert_eq!(
        said, name,
        "the child in the network namespace ran no test named {name}: its body never ran"
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

//! Shared harness for the integration tests: real processes and real servers on loopback, temp
//! dirs, stopped by pid on drop.
#![allow(dead_code)]

pub mod agent;
pub mod browser;
pub mod decoded;
pub mod ejabberd;
pub mod engine;
pub mod fleet;
pub mod http;
pub mod inproc;
pub mod janus;
pub mod mosquitto;
pub mod nginx;
pub mod radicale;
pub mod range;
pub mod rauc;
pub mod speech;
pub mod whip;

use std::time::Duration;

/// Polls `f` until it returns Some, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub mod netns;
pub mod peer;

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs to the test's output (RUST_LOG picks the level; warnings by default).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,roombox=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A number field of `/proc/PID/status` (`VmRSS:`, `RssAnon:` in KiB, `Threads:`); 0 when the
/// process or the field is gone.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

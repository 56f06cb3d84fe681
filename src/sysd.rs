//! systemd integration: readiness, watchdog, status and stopping notifications, and logging to
//! the journal. Every call is a no-op when the agent is not started by systemd.

use sd_notify::NotifyState;

fn notify(state: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(state) {
            tracing::debug!("sd_notify: {e}");
        }
    }
}

/// Tells systemd the agent is ready (config valid, devices open, media playing).
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// Asks systemd for `extra` more start-up time than the unit's `TimeoutStartSec`, saying why in
/// the status line.
pub fn extend_start(extra: std::time::Duration, why: &str) {
    let usec = u32::try_from(extra.as_micros()).unwrap_or(u32::MAX);
    notify(&[
        NotifyState::ExtendTimeoutUsec(usec),
        NotifyState::Status(why),
    ]);
}

/// Feeds the watchdog. Called from the agent loop itself, so a hung loop is killed.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// Sets the one-line status `systemctl status` shows.
pub fn status(line: &str) {
    notify(&[NotifyState::Status(line)]);
}

/// Tells systemd a clean stop has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Sets up logging through `filter` (see `run::log_filter`): to the journal when stderr is
/// connected to it (systemd sets `JOURNAL_STREAM`), to stderr otherwise.
pub fn init_logging(filter: tracing_subscriber::EnvFilter) {
    use tracing_subscriber::prelude::*;
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("roombox".into()))
                .init();
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

//! `roombox run`: wires the media engine, the agent, the control socket and the live view, and
//! runs until a clean stop.

use crate::agent::{Agent, AgentHandle};
use crate::config::{self, Config, Loaded};
use crate::media::engine::Engine;
use crate::{api, sysd};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// How `run` was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The config file (`--config`); the default path or the embedded default when none.
    pub config: Option<PathBuf>,
    /// Print state and events live on stdout (the demo); on by default on a terminal.
    pub live: Option<bool>,
}

/// Loads the configuration or explains every problem in it.
pub fn load_or_explain(path: Option<&std::path::Path>) -> anyhow::Result<Loaded> {
    config::load(path).map_err(|errors| {
        for e in &errors {
            tracing::error!("{e}");
        }
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("invalid configuration:\n  {}", list.join("\n  "))
    })
}

/// Runs the agent until SIGTERM, SIGINT or the `restart` command.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let signals = crate::agent::Signals::install()?;
    let loaded = load_or_explain(opts.config.as_deref())?;
    let config = loaded.config;
    if loaded.files.is_empty() {
        tracing::info!(
            "no config file: running on the embedded default (synthetic camera and mic)"
        );
    } else {
        tracing::info!(files = ?loaded.files, "configuration loaded");
    }
    // The first start scans every GStreamer plugin into the unit's $GST_REGISTRY file: seconds
    // on a Pi, but 39 s in the booted box under emulation, past the unit's 30 s start timeout,
    // so the install's first start failed and systemd restarted it. Later starts read the file.
    if std::env::var_os("GST_REGISTRY").is_some_and(|p| !std::path::Path::new(&p).exists()) {
        sysd::extend_start(
            Duration::from_secs(300),
            "first start: building the GStreamer plugin registry",
        );
    }
    gstreamer::init()?;
    std::fs::create_dir_all(config.state_dir())?;

    let socket = config.control_socket();
    let listener = api::bind(&socket)?;
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let engine = Engine::spawn(config.clone(), notices_tx);
    let (handle, mut agent) = Agent::new(&config, opts.config.clone(), Box::new(engine), notices);
    // The HTTP front door listens before the agent starts, so HLS can autostart with its URL.
    // A port already taken is not worth losing the room over: the box runs on without HTTP
    // and says so.
    let http = match crate::http::bind(&config, handle.clone()).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e:#}; running without the HTTP server (no HLS)");
            None
        }
    };
    if let Some(h) = &http {
        let base = crate::http::base_url(&config.http, h.addr);
        tracing::info!(url = %base, "http server listening");
        agent.set_http_base(Some(base));
    }
    let http_task = http.map(|h| tokio::spawn(h.serve()));
    if let Some(room) = crate::room::spawn(&config) {
        tracing::info!(backend = room.backend, url = %config.room.url, "room backend ready");
        agent.attach_room(room);
    }
    let api_task = tokio::spawn(api::serve_listener(
        listener,
        socket.clone(),
        handle.clone(),
    ));

    // Buttons and LEDs; a missing GPIO chip is only a warning (retried in the background).
    let controls = crate::controls::spawn(&config.controls, handle.clone()).await?;

    let config_path = loaded.files.first().cloned();
    let fleet = if config.fleet.enabled() {
        Some(
            crate::fleet::spawn(
                &config.fleet,
                config.device_id(),
                handle.clone(),
                &config.state_dir(),
                config_path.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let (stop_reloads, stop_rx) = tokio::sync::oneshot::channel();
    let reloads = tokio::spawn(follow_reloads(
        Peripherals {
            config: config.clone(),
            controls: Some(controls),
            fleet,
        },
        handle.clone(),
        config_path,
        stop_rx,
    ));

    let live = opts
        .live
        .unwrap_or_else(|| std::io::stdout().is_terminal() && !under_systemd());
    let live_task = live.then(|| tokio::spawn(live_view(handle.clone(), socket.clone())));

    let result = agent.run(Some(signals)).await;
    let _ = stop_reloads.send(());
    if let Ok(p) = reloads.await {
        drop(p.controls);
        if let Some(f) = p.fleet {
            f.shutdown().await;
        }
    }
    api_task.abort();
    if let Some(t) = http_task {
        t.abort();
    }
    if let Some(t) = live_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&socket);
    result
}

/// What run.rs owns beside the agent, and re-applies after a reload.
struct Peripherals {
    /// The configuration they were made from.
    config: Config,
    /// Buttons and LEDs (none only while a rebuild failed).
    controls: Option<crate::controls::Controls>,
    /// The fleet client, when `[fleet]` has a broker.
    fleet: Option<crate::fleet::FleetHandle>,
}

/// Re-applies `[controls]` and `[fleet]` whenever the agent accepts a reload (SIGHUP,
/// `reload-config`, `set-config`): buttons and LEDs are rebuilt when their section changed; the
/// fleet client is reconfigured in place (it keeps its command-id cache and outbox, and connects
/// again when its connection settings changed), started or stopped. Returns them on `stop`.
async fn follow_reloads(
    mut p: Peripherals,
    agent: AgentHandle,
    config_path: Option<PathBuf>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Peripherals {
    let mut configs = agent.config();
    loop {
        tokio::select! {
            _ = &mut stop => return p,
            r = configs.changed() => {
                if r.is_err() {
                    let _ = (&mut stop).await;
                    return p;
                }
                let new = Config::clone(&configs.borrow_and_update());
                reapply(&mut p, new, &agent, config_path.as_ref()).await;
            }
        }
    }
}

async fn reapply(
    p: &mut Peripherals,
    new: Config,
    agent: &AgentHandle,
    config_path: Option<&PathBuf>,
) {
    if new.controls != p.config.controls || p.controls.is_none() {
        // The old panel lets go of its GPIO lines before the new one asks for them.
        p.controls = None;
        match crate::controls::spawn(&new.controls, agent.clone()).await {
            Ok(c) => {
                tracing::info!("controls: re-applied [controls]");
                p.controls = Some(c);
            }
            Err(e) => tracing::error!("controls: cannot re-apply [controls]: {e:#}"),
        }
    }
    let same_home = new.state_dir() == p.config.state_dir();
    match (p.fleet.take(), new.fleet.enabled()) {
        (Some(f), true) if same_home => {
            if new.fleet != p.config.fleet || new.device_id() != p.config.device_id() {
                f.reconfigure(&new.fleet, new.device_id());
            }
            p.fleet = Some(f);
        }
        (old, enabled) => {
            if let Some(f) = old {
                tracing::info!(
                    "fleet: stopping the client ([fleet] or the state directory changed)"
                );
                f.shutdown().await;
            }
            if enabled {
                match crate::fleet::spawn(
                    &new.fleet,
                    new.device_id(),
                    agent.clone(),
                    &new.state_dir(),
                    config_path.cloned(),
                )
                .await
                {
                    Ok(f) => p.fleet = Some(f),
                    Err(e) => {
                        tracing::error!("fleet: cannot start the client: {e:#}");
                        agent.report_fleet(crate::agent::state::FleetLink::Connecting {
                            broker: new.fleet.broker.clone(),
                            at_ms: crate::model::now_ms(),
                        });
                        agent.report_fleet(crate::agent::state::FleetLink::Down {
                            error: format!("the fleet client cannot start: {e:#}"),
                            fix: None,
                            at_ms: crate::model::now_ms(),
                        });
                    }
                }
            }
        }
    }
    p.config = new;
}

fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The demo's live view: every event as it happens, and the state once a second.
async fn live_view(agent: AgentHandle, socket: PathBuf) {
    use std::io::Write;
    // The binary as this run started it (the demo's is not on PATH), and two separate commands.
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "roombox".into());
    println!(
        "roombox is running. In another terminal, its state: {me} status --socket {0}\n\
         or a command:                                 {me} cmd --socket {0} start-recording",
        socket.display()
    );
    let mut events = agent.subscribe();
    let state = agent.state();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut lines = LiveLines::new(std::io::stdout().is_terminal());
    loop {
        let text = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => lines.event(&format!("event  {}", serde_json::to_string(&ev).unwrap_or_default())),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            _ = tick.tick() => {
                let line = format!("state  {}", state.borrow().summary());
                lines.state(&line, terminal_width())
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Erases the terminal's current line and returns to its start.
const CLEAR_LINE: &str = "\r\x1b[2K";

/// What the live view writes. On a terminal the state line stays the last line and is rewritten
/// in place, events scrolling above it; elsewhere (a pipe, a log file) each is a line of its own.
struct LiveLines {
    tty: bool,
    /// The state line shown at the bottom, on a terminal.
    state: Option<String>,
}

impl LiveLines {
    fn new(tty: bool) -> LiveLines {
        LiveLines { tty, state: None }
    }

    fn event(&mut self, line: &str) -> String {
        match &self.state {
            Some(state) if self.tty => format!("{CLEAR_LINE}{line}\n{state}"),
            _ => format!("{line}\n"),
        }
    }

    /// The new state line; on a terminal cut to `width` columns, since a line that wraps could
    /// no longer be rewritten in place.
    fn state(&mut self, line: &str, width: Option<usize>) -> String {
        if !self.tty {
            return format!("{line}\n");
        }
        let line: String = match width {
            Some(w) => line.chars().take(w.saturating_sub(1)).collect(),
            None => line.to_string(),
        };
        let text = format!("{CLEAR_LINE}{line}");
        self.state = Some(line);
        text
    }
}

/// The terminal's width in columns, when stdout is one.
fn terminal_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `ws`, which outlives the call.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// Dependencies whose warnings are harmless and frequent enough to hide real ones. rtc_dtls
/// warns `Unsupported Extension Type` on every DTLS handshake (a browser offering an extension
/// webrtc-rs does not implement, which the handshake then simply ignores).
pub const QUIET_DEPENDENCIES: &[&str] = &["rtc_dtls=error"];

/// The log filter: `info`, the [`QUIET_DEPENDENCIES`], then `RUST_LOG`'s directives on top. A
/// bare level in `RUST_LOG` (`debug`) replaces `info` and keeps dependencies quiet; naming one
/// (`RUST_LOG=info,rtc_dtls=warn`) brings its warnings back. Directives that do not parse are
/// returned, to be reported once logging is up.
pub fn log_filter(rust_log: Option<&str>) -> (tracing_subscriber::EnvFilter, Vec<String>) {
    use tracing_subscriber::filter::LevelFilter;
    let mut filter =
        tracing_subscriber::EnvFilter::default().add_directive(LevelFilter::INFO.into());
    let mut bad = Vec::new();
    let wanted = QUIET_DEPENDENCIES
        .iter()
        .copied()
        .chain(rust_log.unwrap_or_default().split(','));
    for d in wanted.map(str::trim).filter(|d| !d.is_empty()) {
        match d.parse() {
            Ok(d) => filter = filter.add_directive(d),
            Err(_) => bad.push(d.to_string()),
        }
    }
    (filter, bad)
}

/// Sets up logging for a command.
pub fn init_logging() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, bad) = log_filter(rust_log.as_deref());
    sysd::init_logging(filter);
    for d in bad {
        tracing::warn!("RUST_LOG: ignoring `{d}`, which is not a log directive");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many of a DTLS warning, a roombox info and a roombox debug line pass.
    fn passed(rust_log: Option<&str>) -> (usize, usize, usize) {
        let (filter, _) = log_filter(rust_log);
        let n = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(Count(n.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let mut out = (0, 0, 0);
            tracing::warn!(target: "rtc_dtls::conn", "Unsupported Extension Type");
            out.0 = n.swap(0, Ordering::SeqCst);
            tracing::info!(target: "roombox::fleet", "connected");
            out.1 = n.swap(0, Ordering::SeqCst);
            tracing::debug!(target: "roombox::fleet", "detail");
            out.2 = n.swap(0, Ordering::SeqCst);
            out
        })
    }

    #[test]
    fn on_a_terminal_the_state_line_is_rewritten_and_events_scroll_above_it() {
        let mut t = LiveLines::new(true);
        assert_eq!(t.event("event  a"), "event  a\n", "no state line yet");
        assert_eq!(t.state("state  one", Some(80)), "\r\x1b[2Kstate  one");
        assert_eq!(t.state("state  two", Some(80)), "\r\x1b[2Kstate  two");
        assert_eq!(t.event("event  b"), "\r\x1b[2Kevent  b\nstate  two");
        assert_eq!(
            t.state("state  three", Some(8)),
            "\r\x1b[2Kstate  ",
            "cut, never wrapped"
        );
        let mut p = LiveLines::new(false);
        assert_eq!(p.state("state  one", Some(8)), "state  one\n");
        assert_eq!(p.event("event  a"), "event  a\n");
    }

    #[test]
    fn dependency_noise_is_filtered_by_default_and_rust_log_can_bring_it_back() {
        assert_eq!(passed(None), (0, 1, 0), "default: info, DTLS noise off");
        assert_eq!(
            passed(Some("debug")),
            (0, 1, 1),
            "a bare level keeps it off"
        );
        assert_eq!(
            passed(Some("info,rtc_dtls=warn")),
            (1, 1, 0),
            "naming it brings it back"
        );
        let (_, bad) = log_filter(Some("info,roombox=loud,roombox=debug"));
        assert_eq!(bad, vec!["roombox=loud".to_string()]);
    }
}

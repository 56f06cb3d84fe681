//! `roombox run`: wires the media engine, the agent, the control socket and the live view, and
//! runs until a clean stop.

use crate::agent::{Agent, AgentHandle};
use crate::config::{self, Loaded};
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
    gstreamer::init()?;
    std::fs::create_dir_all(config.state_dir())?;

    let socket = config.control_socket();
    let listener = api::bind(&socket)?;
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let engine = Engine::spawn(config.clone(), notices_tx);
    let (handle, mut agent) = Agent::new(&config, opts.config.clone(), Box::new(engine), notices);
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

    let fleet = if config.fleet.enabled() {
        Some(
            crate::fleet::spawn(
                &config.fleet,
                config.device_id(),
                handle.clone(),
                &config.state_dir(),
                loaded.files.first().cloned(),
            )
            .await?,
        )
    } else {
        None
    };

    let live = opts
        .live
        .unwrap_or_else(|| std::io::stdout().is_terminal() && !under_systemd());
    let live_task = live.then(|| tokio::spawn(live_view(handle.clone(), socket.clone())));

    let result = agent.run(Some(signals)).await;
    drop(controls);
    if let Some(f) = fleet {
        f.shutdown().await;
    }
    api_task.abort();
    if let Some(t) = live_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&socket);
    result
}

fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The demo's live view: every event as it happens, and the state once a second.
async fn live_view(agent: AgentHandle, socket: PathBuf) {
    println!(
        "roombox is running. In another terminal: roombox status --socket {0} | roombox cmd --socket {0} start-recording",
        socket.display()
    );
    let mut events = agent.subscribe();
    let state = agent.state();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => println!("event  {}", serde_json::to_string(&ev).unwrap_or_default()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            _ = tick.tick() => println!("state  {}", state.borrow().summary()),
        }
    }
}

/// Sets up logging for a command.
pub fn init_logging() {
    sysd::init_logging("info");
}

//! The `roombox` command: the daemon and its tools.

use clap::{Parser, Subcommand, ValueEnum};
use roombox::api::Client;
use roombox::command::Command;
use roombox::{check, probe, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// The meeting-room box agent.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Sub {
    /// Run the daemon.
    Run {
        /// Config file; /etc/roombox/roombox.toml when present, else the embedded default.
        #[arg(long, env = "ROOMBOX_CONFIG")]
        config: Option<PathBuf>,
        /// Print events and state live (default: on when stdout is a terminal).
        #[arg(long)]
        live: Option<bool>,
    },
    /// Validate the configuration and this machine against it; non-zero exit on failure.
    Check {
        /// Config file.
        #[arg(long, env = "ROOMBOX_CONFIG")]
        config: Option<PathBuf>,
        /// Text or JSON.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// List cameras, audio devices, GPIO chips and H.264 encoders (with whether each works).
    Probe {
        /// Text or JSON.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show the running agent's state.
    Status {
        #[command(flatten)]
        target: Target,
        /// Text or JSON.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Send a command to the running agent: `roombox cmd start-recording '{"target":"local"}'`.
    Cmd {
        #[command(flatten)]
        target: Target,
        /// The command name (`roombox cmd --list` shows them).
        name: Option<String>,
        /// Its arguments as a JSON object.
        args: Option<String>,
        /// List the command names.
        #[arg(long)]
        list: bool,
    },
    /// Follow the running agent's events.
    Events {
        #[command(flatten)]
        target: Target,
    },
    /// Operate a fleet over MQTT: send commands to boxes or groups, list them, follow events.
    Fleet(Box<roombox::fleet::cli::FleetArgs>),
    /// The root installer of signed updates (run by roombox-update.service, never by hand on a
    /// box that is in use): takes the agent's install request or goes on with the install in
    /// progress, then commits it once the new version proves healthy or puts the previous
    /// version back (`update.method`: a `.deb` with dpkg, or a RAUC bundle into the other slot).
    UpdateApply {
        /// Config file (the fleet key, `[update]`, the state directory).
        #[arg(long, env = "ROOMBOX_CONFIG")]
        config: Option<PathBuf>,
        /// The installer's own directory (root only).
        #[arg(long, default_value = roombox::update::apply::ROOT_DIR)]
        root_dir: PathBuf,
    },
    /// Print the web console's pairing token (made on first use, kept 0600 in the state
    /// directory); `--rotate` replaces it, and the running box takes the new one at once.
    ConsoleToken {
        /// Config file, to find the state directory.
        #[arg(long, env = "ROOMBOX_CONFIG")]
        config: Option<PathBuf>,
        /// The viewers' token (opens /watch and HLS only) instead of the console's.
        #[arg(long)]
        viewer: bool,
        /// Replace the token with a new random one; the old one stops working.
        #[arg(long)]
        rotate: bool,
    },
}

/// Which agent to talk to.
#[derive(clap::Args)]
struct Target {
    /// The agent's control socket; found from the config when absent.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Config file, to find the socket.
    #[arg(long, env = "ROOMBOX_CONFIG")]
    config: Option<PathBuf>,
}

impl Target {
    fn socket(&self) -> anyhow::Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        Ok(run::load_or_explain(self.config.as_deref())?
            .config
            .control_socket())
    }
}

fn main() -> ExitCode {
    // Before any thread: both change process-wide settings that C code reads unsynchronised.
    roombox::memory::limit_malloc_arenas();
    roombox::media::v4l2::drain_pools_on_stop();
    let cli = Cli::parse();
    run::init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roombox: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roombox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Sub) -> anyhow::Result<ExitCode> {
    match cmd {
        Sub::Fleet(args) => Ok(ExitCode::from(
            roombox::fleet::cli::run(*args).await?.clamp(0, 255) as u8,
        )),
        Sub::ConsoleToken {
            config,
            viewer,
            rotate,
        } => {
            let loaded = run::load_or_explain(config.as_deref())?;
            let token = roombox::http::console::token::cli(&loaded.config, viewer, rotate)?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Sub::UpdateApply { config, root_dir } => {
            use roombox::update::{apply::Installer, deb, rauc};
            // Only files no one but root may write: the installer runs the reboot command and
            // trusts the fleet key they name.
            let (loaded, left_out) =
                roombox::config::load_trusted(config.as_deref()).map_err(|errors| {
                    let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                    anyhow::anyhow!("invalid configuration:\n  {}", list.join("\n  "))
                })?;
            for why in left_out {
                tracing::warn!("update-apply: left out {why}");
            }
            let agent = loaded.config.state_dir().join(roombox::update::DIR);
            let u = &loaded.config.update;
            let ran = match u.method {
                roombox::config::UpdateMethod::Deb => {
                    let installer = Installer {
                        sys: deb::Host,
                        method: deb::Deb,
                        root: root_dir,
                        agent,
                        config: loaded.config,
                    };
                    tokio::task::spawn_blocking(move || installer.run()).await?
                }
                roombox::config::UpdateMethod::Rauc => {
                    let method = rauc::Rauc {
                        rauc: "rauc".into(),
                        conf: (!u.rauc_conf.is_empty()).then(|| u.rauc_conf.clone().into()),
                        bus: None,
                        reboot: u.reboot_command.clone(),
                    };
                    let installer = Installer {
                        sys: deb::Host,
                        method,
                        root: root_dir,
                        agent,
                        config: loaded.config,
                    };
                    tokio::task::spawn_blocking(move || installer.run()).await?
                }
            }
            .map_err(|e| anyhow::anyhow!(e))?;
            println!("{ran:?}");
            Ok(ExitCode::SUCCESS)
        }
        Sub::Run { config, live } => {
            run::run(run::Options { config, live }).await?;
            Ok(ExitCode::SUCCESS)
        }
        Sub::Check { config, output } => {
            let lines = tokio::task::spawn_blocking(move || check::run(config.as_deref())).await?;
            match output {
                Output::Text => print!("{}", check::render(&lines)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&lines)?),
            }
            Ok(if check::failed(&lines) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Sub::Probe { output } => {
            gstreamer::init()?;
            let report = tokio::task::spawn_blocking(probe::run).await?;
            match output {
                Output::Text => print!("{}", probe::render(&report)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Sub::Status { target, output } => {
            let mut c = Client::connect(&target.socket()?).await?;
            let reply = c.call(&Command::GetState).await?;
            let state = reply.result.unwrap_or_default();
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&state)?),
                Output::Text => {
                    let state: roombox::agent::state::AgentState = serde_json::from_value(state)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "the agent's state is not one this roombox can read ({e}); \
                                 `--output json` shows it as it is"
                            )
                        })?;
                    print!("{}", state.render());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Sub::Cmd {
            target,
            name,
            args,
            list,
        } => {
            if list {
                for n in Command::NAMES {
                    println!("{n}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let Some(name) = name else {
                anyhow::bail!("name a command (see `roombox cmd --list`)");
            };
            let command = Command::from_parts(&name, args.unwrap_or_default().as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {}", serde_plain(&e.code), e.message))?;
            let mut c = Client::connect(&target.socket()?).await?;
            let reply = c.call(&command).await?;
            println!("{}", serde_json::to_string_pretty(&reply)?);
            Ok(if reply.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Sub::Events { target } => {
            let c = Client::connect(&target.socket()?).await?;
            let mut events = c.follow().await?;
            while let Some(ev) = events.next().await? {
                println!("{}", serde_json::to_string(&ev)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

//! A simulated room box on the fleet: the real agent and fleet client with a media stand-in that
//! confirms every action (see `roombox::fleet::sim`), in a process of its own, so that
//! tests/fleet.rs can SIGKILL it and see the broker publish its last will. Needs the `test-util`
//! feature: `cargo build --features test-util --example fleet_box`.
//!
//! Usage: `fleet_box <config.toml>`; runs until SIGTERM/SIGINT (clean: publishes offline) or
//! SIGKILL (the broker publishes the last will).

use roombox::fleet::sim::SimBox;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let path = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: fleet_box <config.toml>"))?;
    let loaded = roombox::config::load(Some(&path)).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("invalid configuration")
    })?;
    let config = loaded.config;
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir)?;
    let sim = SimBox::start(&config, Some(path), &state_dir).await?;
    println!("fleet_box {} ready", config.device_id());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sim.shutdown().await;
    Ok(())
}

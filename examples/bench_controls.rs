//! Button edge to LED change, on the simulated backend, through the real agent and media engine
//! (synthetic mic, no camera). Prints a markdown section for BENCHMARKS.md.
//!
//! `cargo run --example bench_controls [-- ROUNDS]` (default 200 per path).
//!
//! Measured path: the release edge of a mute press enters the controls task, passes the
//! debouncer and classifier, becomes `toggle-mic`, queues for the agent, the engine mutes and
//! confirms, the state changes, and the red LED is rewritten. Baseline, in the same run:
//! `toggle-mic` sent straight to the agent, to the same red LED change; the difference is what
//! the buttons add.

use roombox::agent::Agent;
use roombox::command::Command;
use roombox::config::controls::{BackendKind, Color, Look, Pattern};
use roombox::config::{AudioSource, Config, VideoSource};
use roombox::controls::{self, Button};
use roombox::event::MediaState;
use roombox::media::engine::Engine;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    gstreamer::init()?;
    let dir = tempfile::tempdir()?;
    let mut c = Config::default();
    c.device.state_dir = dir.path().to_path_buf();
    c.device.id = "bench".into();
    c.media.video.source = VideoSource::None;
    c.media.audio.source = AudioSource::Test;
    c.controls.backend = BackendKind::Simulated;
    c.controls.leds.looks.idle = Look {
        color: Color::Off,
        pattern: Pattern::Off,
    };
    let debounce = c.controls.debounce;
    let (tx, notices) = mpsc::unbounded_channel();
    let engine = Engine::spawn(c.clone(), tx);
    let (agent, task) = Agent::new(&c, None, Box::new(engine), notices);
    let task = tokio::spawn(task.run(None));
    let ctl = controls::spawn(&c.controls, agent.clone()).await?;
    let panel = ctl.panel().expect("simulated panel");
    let mut state = agent.state();
    tokio::time::timeout(
        Duration::from_secs(60),
        state.wait_for(|s| s.media.state == MediaState::Playing && s.local_participant.mic_on),
    )
    .await??;
    let mut leds = panel.watch_leds();
    leds.wait_for(|l| l[0] == 0.0).await?;

    let mut button = Vec::with_capacity(rounds);
    let mut direct = Vec::with_capacity(rounds);
    for i in 0..rounds * 2 {
        let red_before = panel.leds()[0];
        leds.borrow_and_update();
        let t0;
        if i % 2 == 0 {
            panel.edge(Button::Mute, true);
            // Held past the debounce so the press is confirmed; the release is what acts.
            tokio::time::sleep(debounce + Duration::from_millis(15)).await;
            t0 = Instant::now();
            panel.edge(Button::Mute, false);
        } else {
            t0 = Instant::now();
            let a = agent.clone();
            tokio::spawn(async move { a.send(Command::ToggleMic).await });
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            leds.wait_for(|l| l[0] != red_before),
        )
        .await??;
        let dt = t0.elapsed();
        if i % 2 == 0 {
            button.push(dt);
        } else {
            direct.push(dt);
        }
        // Let the release's lockout pass before the next press.
        tokio::time::sleep(debounce + Duration::from_millis(5)).await;
    }
    agent.send(Command::Restart).await.ok();
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;

    button.sort();
    direct.sort();
    let (b50, b99) = (percentile(&button, 0.5), percentile(&button, 0.99));
    let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("## Buttons and LEDs: edge to LED (simulated backend, host)\n");
    println!(
        "{rounds} rounds per path, alternating; real agent and media engine (audiotestsrc, no \
         camera), debounce {} (a release acts at once; the lockout only follows it).\n",
        humantime::format_duration(debounce)
    );
    println!("| path | p50 | p99 | max | p50 ratio | p99 ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| baseline: `toggle-mic` sent to the agent → red LED | {} | {} | {} | 1.00 | 1.00 |",
        ms(d50),
        ms(d99),
        ms(*direct.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "| mute button release edge → red LED | {} | {} | {} | {:.2} | {:.2} |",
        ms(b50),
        ms(b99),
        ms(*button.last().unwrap_or(&Duration::ZERO)),
        ratio(b50, d50),
        ratio(b99, d99),
    );
    println!(
        "\nTarget p99 ≤ 5 ms: {} ({}).",
        if b99 <= Duration::from_millis(5) {
            "met"
        } else {
            "not met"
        },
        ms(b99)
    );
    Ok(())
}

//! Physical buttons and LEDs: presses become commands, the agent's state becomes LED patterns.
//!
//! One task owns the GPIO backend ([`backend::Gpio`]), the press classifier
//! ([`press::Classifier`]) and the LED renderer. Button edges arrive on a channel; gestures are
//! mapped to commands by the config and handed to a second task that sends them to the agent one
//! at a time, so a press made while the agent is busy waits its turn (never dropped, never sent
//! twice) and the edge reader never waits on a reply. Every change of the agent's state is
//! rendered onto the LEDs at once; a timer only animates blinking patterns.
//!
//! A GPIO chip missing at start-up, or one that goes away, is a warning: the task reopens it
//! with a jittered, doubling backoff and the agent carries on without buttons meanwhile.
//!
//! Layer 11 of docs/architecture.md: it drives the agent through an `AgentHandle` and reads
//! the agent's state; only `check` (the GPIO checker), `http` and `run` import it. Its config
//! types live in `config::controls`.

pub mod backend;
pub mod leds;
pub mod press;

pub use crate::config::controls::{Button, ControlsConfig, Led};

use crate::agent::AgentHandle;
use crate::command::Command;
use crate::config::controls::BackendKind;
use crate::sync::sleep_until;
use backend::sim::SimPanel;
use backend::{Gpio, Input};
use leds::LedPatterns;
use press::{Classifier, PressKind, Timing};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How the controls are doing, for status displays and tests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// The backend is open (lines held).
    pub open: bool,
    /// Why it is not, when it is not.
    pub last_error: Option<String>,
    /// Commands sent to the agent since start (accepted or refused).
    pub commands_sent: u64,
}

/// The running controls; dropping it stops them (the lines are released).
pub struct Controls {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    panel: Option<SimPanel>,
    status: watch::Receiver<Status>,
}

impl Drop for Controls {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Controls {
    /// The simulated panel, with the `simulated` backend.
    pub fn panel(&self) -> Option<SimPanel> {
        self.panel.clone()
    }

    /// Follows the status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// False when nothing is configured and no task runs.
    pub fn running(&self) -> bool {
        !self.tasks.is_empty()
    }
}

/// Starts the buttons and LEDs. With nothing configured it returns at once and does nothing.
/// Fails only on an invalid section; missing hardware is a warning and retried.
///
/// With the `simulated` backend, [`Controls::panel`] presses the buttons and shows the LEDs;
/// `panel_input` (`-` for stdin, or a FIFO) lets a person press them with the keys j, m, c
/// (capitals for a long press).
pub async fn spawn(config: &ControlsConfig, agent: AgentHandle) -> anyhow::Result<Controls> {
    let (status_tx, status) = watch::channel(Status::default());
    if !config.enabled() {
        tracing::info!("controls: no buttons or LEDs configured");
        return Ok(Controls {
            tasks: Vec::new(),
            panel: None,
            status,
        });
    }
    if let Some(e) = config.validate().first() {
        anyhow::bail!("{}: {}", e.field, e.message);
    }
    let panel = (config.backend == BackendKind::Simulated).then(SimPanel::new);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let status_tx = std::sync::Arc::new(status_tx);
    let mut tasks = vec![tokio::spawn(dispatch(
        cmd_rx,
        agent.clone(),
        status_tx.clone(),
    ))];
    let runner = Runner::new(config.clone(), agent, panel.clone(), cmd_tx, status_tx);
    tasks.push(tokio::spawn(runner.run()));
    if let (Some(p), false) = (&panel, config.panel_input.is_empty()) {
        let p = p.clone();
        let path = config.panel_input.clone();
        let long = config.long_press;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = p.run_keys_from(&path, long).await {
                tracing::warn!("controls: {e}");
            }
        }));
    }
    Ok(Controls {
        tasks,
        panel,
        status,
    })
}

/// One queued press.
struct Pressed {
    button: Button,
    kind: PressKind,
    command: Command,
}

/// Sends queued presses to the agent in order, one at a time.
async fn dispatch(
    mut rx: mpsc::UnboundedReceiver<Pressed>,
    agent: AgentHandle,
    status: std::sync::Arc<watch::Sender<Status>>,
) {
    while let Some(p) = rx.recv().await {
        let result = agent.send(p.command.clone()).await;
        status.send_modify(|s| s.commands_sent += 1);
        match result {
            Ok(_) => tracing::info!(
                "{} button {:?} press: {}",
                p.button.name(),
                p.kind,
                p.command
            ),
            Err(e) => tracing::warn!(
                "{} button {:?} press: {} refused: {}",
                p.button.name(),
                p.kind,
                p.command,
                e.message
            ),
        }
    }
}

/// Renders patterns onto the LEDs.
struct LedDriver {
    patterns: LedPatterns,
    started: [Instant; 3],
    written: [Option<f64>; 3],
    dim_level: f64,
}

impl LedDriver {
    fn new(dim_level: f64) -> LedDriver {
        let now = Instant::now();
        LedDriver {
            patterns: LedPatterns::OFF,
            started: [now; 3],
            written: [None; 3],
            dim_level,
        }
    }

    /// Takes new patterns; a changed pattern restarts its phase. Red is always rewritten.
    fn set(&mut self, patterns: LedPatterns, now: Instant) {
        for led in Led::ALL {
            let i = led as usize;
            if patterns.get(led) != self.patterns.get(led) {
                self.started[i] = now;
                self.written[i] = None;
            }
        }
        self.written[Led::Red as usize] = None;
        self.patterns = patterns;
    }

    /// Forgets what was written (a backend was just opened).
    fn invalidate(&mut self) {
        self.written = [None; 3];
    }

    fn render(&mut self, gpio: &mut dyn Gpio, now: Instant) -> anyhow::Result<()> {
        let pwm = gpio.dimmable();
        for led in Led::ALL {
            let i = led as usize;
            let t = now.saturating_duration_since(self.started[i]).as_millis() as u64;
            let level = leds::level_at(self.patterns.get(led), t, pwm, self.dim_level);
            if self.written[i] != Some(level) {
                gpio.set_led(led, level)?;
                self.written[i] = Some(level);
            }
        }
        Ok(())
    }

    fn next_change(&self, pwm: bool, now: Instant) -> Option<Instant> {
        Led::ALL
            .iter()
            .filter_map(|led| {
                let i = *led as usize;
                let t = now.saturating_duration_since(self.started[i]).as_millis() as u64;
                leds::next_change(self.patterns.get(*led), t, pwm)
                    .map(|ms| self.started[i] + Duration::from_millis(ms))
            })
            .min()
    }
}

/// Every action of every button.
type Actions = Vec<(Button, PressKind, Command)>;

struct Runner {
    config: ControlsConfig,
    agent: AgentHandle,
    panel: Option<SimPanel>,
    commands: mpsc::UnboundedSender<Pressed>,
    status: std::sync::Arc<watch::Sender<Status>>,
    actions: Actions,
    classifier: Classifier,
    driver: LedDriver,
}

impl Runner {
    fn new(
        config: ControlsConfig,
        agent: AgentHandle,
        panel: Option<SimPanel>,
        commands: mpsc::UnboundedSender<Pressed>,
        status: std::sync::Arc<watch::Sender<Status>>,
    ) -> Runner {
        let mut actions = Vec::new();
        let mut timings = Vec::new();
        for b in Button::ALL {
            let c = config.button(b);
            for (kind, action) in [
                (PressKind::Short, &c.short),
                (PressKind::Long, &c.long),
                (PressKind::Double, &c.double),
            ] {
                if let Some(cmd) = &action.0 {
                    actions.push((b, kind, cmd.clone()));
                }
            }
            let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            timings.push((
                b,
                Timing {
                    debounce_ns: ns(config.debounce),
                    long_ns: c.long.0.as_ref().map(|_| ns(config.long_press)),
                    double_ns: c.double.0.as_ref().map(|_| ns(config.double_press)),
                },
            ));
        }
        let driver = LedDriver::new(config.leds.dim_level);
        Runner {
            classifier: Classifier::new(&timings),
            config,
            agent,
            panel,
            commands,
            status,
            actions,
            driver,
        }
    }

    fn open(&self, inputs: backend::InputSender) -> anyhow::Result<Box<dyn Gpio>> {
        match self.config.backend {
            BackendKind::Simulated => match &self.panel {
                Some(p) => Ok(Box::new(p.open(inputs))),
                None => anyhow::bail!("the simulated panel is missing"),
            },
            BackendKind::Gpiocdev => Ok(Box::new(backend::cdev::CdevGpio::open(
                &self.config,
                inputs,
            )?)),
            #[cfg(feature = "rpi")]
            BackendKind::Rppal => Ok(Box::new(backend::rpi::RpiGpio::open(&self.config, inputs)?)),
            #[cfg(not(feature = "rpi"))]
            BackendKind::Rppal => anyhow::bail!("this roombox was built without `--features rpi`"),
            BackendKind::None => anyhow::bail!("no backend configured"),
        }
    }

    fn gestures(&mut self, gestures: Vec<press::Gesture>) {
        for g in gestures {
            let action = self
                .actions
                .iter()
                .find(|(b, k, _)| *b == g.button && *k == g.kind);
            match action {
                Some((_, _, cmd)) => {
                    tracing::debug!("{} button {:?} press", g.button.name(), g.kind);
                    let _ = self.commands.send(Pressed {
                        button: g.button,
                        kind: g.kind,
                        command: cmd.clone(),
                    });
                }
                None => tracing::debug!(
                    "{} button {:?} press: no action configured",
                    g.button.name(),
                    g.kind
                ),
            }
        }
    }

    fn lost(&mut self, gpio: &mut Option<Box<dyn Gpio>>, reason: String) {
        if gpio.take().is_some() {
            tracing::warn!(
                "controls: GPIO lost ({reason}); buttons and LEDs are off until it returns"
            );
            crate::sysd::status(&format!("controls: GPIO lost: {reason}"));
        }
        self.classifier.reset();
        self.status.send_modify(|s| {
            s.open = false;
            s.last_error = Some(reason);
        });
    }

    async fn run(mut self) {
        let mut state = self.agent.state();
        let (inputs_tx, mut inputs) = mpsc::unbounded_channel();
        let mut gpio: Option<Box<dyn Gpio>> = None;
        let mut backoff =
            crate::backoff::Backoff::new(self.config.retry.initial, self.config.retry.max);
        let mut reopen_at = Instant::now();
        let mut warned = false;
        let mut liveness = tokio::time::interval(Duration::from_secs(2));
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shown = None;
        self.driver.set(
            leds::pattern_for(&state.borrow(), &self.config.leds),
            Instant::now(),
        );
        loop {
            let now = Instant::now();
            if gpio.is_none() && now >= reopen_at {
                match self.open(inputs_tx.clone()) {
                    Ok(g) => {
                        let debounce = if g.debounced() {
                            0
                        } else {
                            u64::try_from(self.config.debounce.as_nanos()).unwrap_or(u64::MAX)
                        };
                        self.classifier.set_debounce(debounce);
                        tracing::info!(
                            "controls: {} open ({} debounce)",
                            g.name(),
                            if g.debounced() { "kernel" } else { "software" }
                        );
                        gpio = Some(g);
                        backoff.reset();
                        warned = false;
                        self.driver.invalidate();
                        self.status.send_modify(|s| {
                            s.open = true;
                            s.last_error = None;
                        });
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        if !warned {
                            tracing::warn!(
                                "controls: {msg}; buttons and LEDs are off, retrying in the background"
                            );
                            warned = true;
                        } else {
                            tracing::debug!("controls: still unavailable: {msg}");
                        }
                        self.status.send_modify(|s| {
                            s.open = false;
                            s.last_error = Some(msg);
                        });
                        reopen_at = now + backoff.next_delay();
                    }
                }
            }
            if let Some(g) = gpio.as_mut() {
                if let Err(e) = self.driver.render(g.as_mut(), Instant::now()) {
                    self.lost(&mut gpio, format!("{e:#}"));
                    reopen_at = Instant::now() + backoff.next_delay();
                    continue;
                }
            }
            let press_deadline = self.classifier.next_deadline().map(to_instant);
            let led_deadline = gpio
                .as_ref()
                .and_then(|g| self.driver.next_change(g.dimmable(), Instant::now()));
            let reopen = gpio.is_none().then_some(reopen_at);
            tokio::select! {
                biased;
                Some(input) = inputs.recv() => match input {
                    Input::Edge { button, pressed, t_ns } => {
                        let g = self.classifier.edge(button, pressed, t_ns);
                        self.gestures(g);
                    }
                    Input::Lost { reason } => {
                        self.lost(&mut gpio, reason);
                        reopen_at = Instant::now() + backoff.next_delay();
                    }
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        tracing::debug!("controls: the agent stopped");
                        return;
                    }
                    let s = state.borrow_and_update().clone();
                    let now_shown = leds::shown_state(&s, &self.config.leds);
                    if now_shown != shown {
                        tracing::info!("LEDs: {:?}", now_shown);
                        shown = now_shown;
                    }
                    self.driver.set(leds::pattern_for(&s, &self.config.leds), Instant::now());
                }
                _ = sleep_until(press_deadline) => {
                    let g = self.classifier.poll(backend::mono_ns());
                    self.gestures(g);
                }
                _ = sleep_until(led_deadline) => {}
                _ = sleep_until(reopen) => {}
                _ = liveness.tick() => {
                    if gpio.as_ref().is_some_and(|g| !g.alive()) {
                        self.lost(&mut gpio, "the GPIO chip went away".into());
                        reopen_at = Instant::now() + backoff.next_delay();
                    }
                }
            }
        }
    }
}

/// A tokio instant for a time on the monotonic clock.
fn to_instant(t_ns: u64) -> Instant {
    let now = backend::mono_ns();
    Instant::now() + Duration::from_nanos(t_ns.saturating_sub(now))
}

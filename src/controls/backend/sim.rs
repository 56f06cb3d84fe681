//! The simulated backend: buttons pressed from code or a keyboard panel, LEDs kept in memory
//! (and logged), for demos and tests.
//!
//! The keyboard panel reads lines from standard input or a FIFO. Each character is one press:
//! `j`, `m`, `c` a short press of join, mute, camera; `J`, `M`, `C` a long press (held for
//! `long_press` and a little more); `jj` on one line a double press. Anything else is ignored.

use super::{mono_ns, Gpio, Input, InputSender};
use crate::controls::{Button, Led};
use crate::sync::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::watch;

/// Brightness of red, green and blue.
pub type Levels = [f64; 3];

/// A handle on the simulated buttons and LEDs; cheap to clone.
#[derive(Clone)]
pub struct SimPanel {
    inputs: Arc<Mutex<Option<InputSender>>>,
    leds: watch::Sender<Levels>,
    /// The latest LED changes, stamped on the wall clock when they were made (an observer
    /// woken by `watch_leds` learns of a change later than that).
    history: Arc<Mutex<VecDeque<(SystemTime, Levels)>>>,
}

/// LED changes [`SimPanel::led_history`] keeps.
const HISTORY: usize = 64;

impl Default for SimPanel {
    fn default() -> Self {
        SimPanel::new()
    }
}

impl SimPanel {
    /// A panel with every LED off and nothing listening yet.
    pub fn new() -> SimPanel {
        SimPanel {
            inputs: Arc::new(Mutex::new(None)),
            leds: watch::channel([0.0; 3]).0,
            history: Arc::default(),
        }
    }

    /// True once the controls task listens to this panel (before that, edges are refused).
    pub fn connected(&self) -> bool {
        match self.inputs.lock() {
            Ok(g) => g.is_some(),
            Err(p) => p.into_inner().is_some(),
        }
    }

    /// Sends a level change of a button, stamped now; true when the controls task took it.
    pub fn edge(&self, button: Button, pressed: bool) -> bool {
        self.edge_at(button, pressed, mono_ns())
    }

    /// Sends a level change with an explicit timestamp (ns on the monotonic clock).
    pub fn edge_at(&self, button: Button, pressed: bool, t_ns: u64) -> bool {
        let guard = match self.inputs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match guard.as_ref() {
            Some(tx) => tx
                .send(Input::Edge {
                    button,
                    pressed,
                    t_ns,
                })
                .is_ok(),
            None => false,
        }
    }

    /// Presses and releases a button, holding it for `hold`.
    pub async fn press(&self, button: Button, hold: Duration) {
        self.edge(button, true);
        tokio::time::sleep(hold).await;
        self.edge(button, false);
    }

    /// The LEDs now.
    pub fn leds(&self) -> Levels {
        *self.leds.borrow()
    }

    /// Follows the LEDs.
    pub fn watch_leds(&self) -> watch::Receiver<Levels> {
        self.leds.subscribe()
    }

    /// The latest LED changes (at most 64), oldest first, each with when it was made.
    pub fn led_history(&self) -> Vec<(SystemTime, Levels)> {
        let h = lock(&self.history);
        h.iter().copied().collect()
    }

    /// Opens the panel as a backend sending edges into `inputs`.
    pub fn open(&self, inputs: InputSender) -> SimGpio {
        match self.inputs.lock() {
            Ok(mut g) => *g = Some(inputs),
            Err(p) => *p.into_inner() = Some(inputs),
        }
        SimGpio {
            panel: self.clone(),
        }
    }

    /// Reads key presses from `reader` until it ends (see the module docs for the keys).
    pub async fn run_keys<R: AsyncBufRead + Unpin>(&self, reader: R, long_press: Duration) {
        let mut lines = reader.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            for key in line.chars() {
                let button = match key.to_ascii_lowercase() {
                    'j' => Button::Join,
                    'm' => Button::Mute,
                    'c' => Button::Camera,
                    _ => continue,
                };
                let hold = if key.is_ascii_uppercase() {
                    long_press + Duration::from_millis(200)
                } else {
                    Duration::from_millis(80)
                };
                self.press(button, hold).await;
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        }
    }

    /// Reads key presses from `path`: `-` for standard input, else a FIFO (opened read-write so
    /// writers may come and go).
    pub async fn run_keys_from(&self, path: &str, long_press: Duration) -> anyhow::Result<()> {
        if path == "-" {
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            self.run_keys(stdin, long_press).await;
            return Ok(());
        }
        let rx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(path)
            .map_err(|e| anyhow::anyhow!("opening the panel FIFO {path}: {e}"))?;
        self.run_keys(tokio::io::BufReader::new(rx), long_press)
            .await;
        Ok(())
    }
}

/// The simulated backend as opened.
pub struct SimGpio {
    panel: SimPanel,
}

impl Gpio for SimGpio {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn dimmable(&self) -> bool {
        false
    }

    fn set_led(&mut self, led: Led, level: f64) -> anyhow::Result<()> {
        let i = led as usize;
        let history = &self.panel.history;
        self.panel.leds.send_if_modified(|l| {
            if l[i] != level {
                tracing::debug!(led = led.name(), level, "simulated LED");
                l[i] = level;
                let mut h = lock(history);
                h.push_back((SystemTime::now(), *l));
                if h.len() > HISTORY {
                    h.pop_front();
                }
                true
            } else {
                false
            }
        });
        Ok(())
    }
}

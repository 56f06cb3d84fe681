//! GPIO backends behind one small trait: [`Gpio`] drives the LEDs; button edges arrive on the
//! channel the backend was opened with.
//!
//! Imported by the controls task (`controls/mod.rs`) and by `check`'s GPIO checker, which opens
//! the chip the same way the task does.

pub mod cdev;
#[cfg(feature = "rpi")]
pub mod rpi;
pub mod sim;

use super::{Button, Led};
use tokio::sync::mpsc;

/// What a backend reports from its inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A button line changed level.
    Edge {
        button: Button,
        /// The logical level: true when pressed (active-low already applied).
        pressed: bool,
        /// When, ns on the monotonic clock.
        t_ns: u64,
    },
    /// The lines are gone (chip removed, read error); the backend must be reopened.
    Lost { reason: String },
}

/// Where a backend sends its inputs.
pub type InputSender = mpsc::UnboundedSender<Input>;

/// An open set of button and LED lines.
pub trait Gpio: Send {
    /// The backend's name, for logs.
    fn name(&self) -> &'static str;
    /// True when LEDs take levels between off and on (PWM).
    fn dimmable(&self) -> bool;
    /// Sets an LED's brightness, 0.0..=1.0; on/off backends light it at 0.5 and above. LEDs
    /// that are not fitted are ignored.
    fn set_led(&mut self, led: Led, level: f64) -> anyhow::Result<()>;
    /// True when edges arrive already debounced (by the kernel, or the backend's driver), so
    /// the software debounce stands down: debounced edges carry the time the debounce ended,
    /// not the time of the contact, which would make a real press look like a spike.
    fn debounced(&self) -> bool {
        false
    }
    /// False once the hardware has gone away (checked every few seconds).
    fn alive(&self) -> bool {
        true
    }
}

/// Nanoseconds on the monotonic clock, the clock the kernel stamps GPIO edges with.
pub fn mono_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec() as u64),
        Err(_) => 0,
    }
}

//! roombox: the agent that turns a small Linux board with a camera, a microphone, a speaker, a
//! screen and a few buttons and LEDs into a meeting-room box.
//!
//! One loop sits at the heart ([`agent`]): every input (buttons, the fleet over MQTT, the local
//! control socket, timers) becomes a [`command::Command`]; one task owns the state and turns
//! commands into actions; every change becomes an [`event::Event`] broadcast to the outputs.

pub mod agent;
pub mod api;
pub mod backoff;
pub mod calendar;
pub mod check;
pub mod command;
pub mod config;
pub mod controls;
pub mod event;
pub mod fleet;
pub mod http;
pub mod media;
pub mod memory;
pub mod model;
pub mod probe;
pub mod room;
pub mod run;
pub mod sync;
pub mod sysd;
pub mod transcribe;
pub mod update;

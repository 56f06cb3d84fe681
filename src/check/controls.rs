//! The `[controls]` checker: the section's own rules, then the GPIO chip and each configured
//! line on this machine. Opens nothing for longer than the check.

use super::CheckLine;
use super::Status::*;
use crate::config::controls::{BackendKind, ControlsConfig};
use crate::controls::backend::cdev;

/// Checks the section against this box's hardware, for `roombox check`. Opens nothing for
/// longer than the check; a missing chip is a warning (the agent retries it), a missing line
/// on a present chip a failure.
pub fn controls(config: &ControlsConfig) -> Vec<CheckLine> {
    let mut out = Vec::new();
    for e in config.validate() {
        out.push(CheckLine::new(Failed, &e.field, e.message));
    }
    if !out.is_empty() {
        return out;
    }
    if !config.enabled() {
        out.push(CheckLine::new(
            Ok,
            "controls",
            "no buttons or LEDs configured",
        ));
        return out;
    }
    match config.backend {
        BackendKind::Simulated => out.push(CheckLine::new(
            Ok,
            "controls",
            match config.panel_input.as_str() {
                "" => "simulated panel, driven through the API".to_string(),
                "-" => "simulated panel; keys j, m, c on standard input".to_string(),
                p => format!("simulated panel; keys j, m, c written to the FIFO {p}"),
            },
        )),
        BackendKind::Gpiocdev => check_cdev(config, &mut out),
        BackendKind::Rppal =>
        {
            #[cfg(feature = "rpi")]
            match rppal::gpio::Gpio::new() {
                Result::Ok(_) => {
                    out.push(CheckLine::new(Ok, "controls", "rppal: /dev/gpiomem open"))
                }
                Err(e) => out.push(CheckLine::new(
                    Warning,
                    "controls",
                    format!("rppal: {e}; buttons and LEDs stay off until it works"),
                )),
            }
        }
        BackendKind::None => {}
    }
    out
}

fn check_cdev(config: &ControlsConfig, out: &mut Vec<CheckLine>) {
    let path = match cdev::resolve_chip(&config.chip) {
        Result::Ok(p) => p,
        Err(e) => {
            out.push(CheckLine::new(
                Warning,
                "controls.chip",
                format!(
                    "{e:#}; buttons and LEDs stay off until it appears (retried in the background)"
                ),
            ));
            return;
        }
    };
    let chip = match gpiocdev::Chip::from_path(&path) {
        Result::Ok(c) => c,
        Err(e) => {
            out.push(CheckLine::new(
                Failed,
                "controls.chip",
                format!("{}: {e}", path.display()),
            ));
            return;
        }
    };
    let label = chip.info().map(|i| i.label).unwrap_or_default();
    out.push(CheckLine::new(
        Ok,
        "controls.chip",
        format!("{} [{label}]", path.display()),
    ));
    let lines = config
        .button_lines()
        .into_iter()
        .map(|(b, c)| (format!("controls.buttons.{}", b.name()), c.line.clone()))
        .chain(
            config
                .led_lines()
                .into_iter()
                .map(|(l, c)| (format!("controls.leds.{}", l.name()), c.line.clone())),
        );
    for (item, line) in lines {
        match cdev::resolve_line(&chip, &line) {
            Result::Ok(off) => {
                let info = chip.line_info(off).ok();
                match info {
                    Some(i) if i.used && i.consumer != cdev::CONSUMER => out.push(CheckLine::new(
                        Warning,
                        &item,
                        format!("`{line}` (offset {off}) is in use by `{}`", i.consumer),
                    )),
                    _ => out.push(CheckLine::new(
                        Ok,
                        &item,
                        format!("`{line}` is offset {off}"),
                    )),
                }
            }
            Err(e) => out.push(CheckLine::new(Failed, &item, format!("{e:#}"))),
        }
    }
}

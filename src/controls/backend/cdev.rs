//! The Linux GPIO character device (uAPI v2) through `gpiocdev`: any board, the Jetson included.
//!
//! Buttons are one request with edge detection on both edges, the bias and active-low set in
//! the kernel, and kernel debounce (the kernel falls back to its own software debounce where the
//! chip has none). Should the request with debounce be refused, the lines are requested without
//! it and the software debounce of [`crate::controls::press`] does the work instead. LEDs are a
//! second request of output lines.

use super::{Gpio, Input, InputSender};
use crate::config::controls::{Bias, ControlsConfig};
use crate::controls::{Button, Led};
use anyhow::{anyhow, bail, Context};
use gpiocdev::line::{EdgeDetection, EdgeKind, Offset, Value};
use gpiocdev::{Chip, Request};
use std::path::{Path, PathBuf};

/// Consumer name shown by `gpioinfo` for the lines roombox holds.
pub const CONSUMER: &str = "roombox";

/// Finds a chip by path, name (`gpiochip0`) or label (`pinctrl-bcm2711`).
pub fn resolve_chip(spec: &str) -> anyhow::Result<PathBuf> {
    if spec.starts_with('/') {
        return gpiocdev::chip::is_chip(spec)
            .map_err(|e| anyhow!("GPIO chip `{spec}` is not available: {e}"));
    }
    if let Ok(p) = gpiocdev::chip::is_chip(Path::new("/dev").join(spec)) {
        return Ok(p);
    }
    let mut present = Vec::new();
    for path in gpiocdev::chip::chips().unwrap_or_default() {
        let Ok(chip) = Chip::from_path(&path) else {
            continue;
        };
        let Ok(info) = chip.info() else { continue };
        if info.label == spec || info.name == spec {
            return Ok(path);
        }
        present.push(format!("{} [{}]", info.name, info.label));
    }
    if present.is_empty() {
        bail!("GPIO chip `{spec}` not found: this system has no GPIO chips")
    }
    bail!(
        "GPIO chip `{spec}` not found; present: {}",
        present.join(", ")
    )
}

/// Finds a line on a chip by name or offset.
pub fn resolve_line(chip: &Chip, spec: &str) -> anyhow::Result<Offset> {
    let lines = chip.info().map(|i| i.num_lines).unwrap_or(0);
    if let Ok(offset) = spec.parse::<Offset>() {
        if offset >= lines {
            bail!(
                "line {offset} is beyond the {lines} lines of {}",
                chip.name()
            );
        }
        return Ok(offset);
    }
    chip.find_line_info(spec)
        .map(|i| i.offset)
        .ok_or_else(|| anyhow!("no line named `{spec}` on {}", chip.name()))
}

/// Open lines on one chip.
pub struct CdevGpio {
    chip: Chip,
    leds: Option<Request>,
    led_offsets: Vec<(Led, Offset)>,
    reader: Option<tokio::task::JoinHandle<()>>,
    /// False when the kernel refused debounce and only software debounce runs.
    pub kernel_debounce: bool,
}

impl Drop for CdevGpio {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

impl CdevGpio {
    /// Resolves the configured chip and lines, requests them and starts reading edges into
    /// `inputs`. Must run inside a Tokio runtime.
    pub fn open(config: &ControlsConfig, inputs: InputSender) -> anyhow::Result<CdevGpio> {
        let path = resolve_chip(&config.chip)?;
        let chip = Chip::from_path(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut buttons = Vec::new();
        for (b, c) in config.button_lines() {
            let off =
                resolve_line(&chip, &c.line).with_context(|| format!("{} button", b.name()))?;
            buttons.push((b, off, c));
        }
        let mut led_offsets = Vec::new();
        for (l, c) in config.led_lines() {
            let off = resolve_line(&chip, &c.line).with_context(|| format!("{} LED", l.name()))?;
            led_offsets.push((l, off, c.active_low));
        }

        let mut kernel_debounce = !config.debounce.is_zero();
        let reader = if buttons.is_empty() {
            None
        } else {
            let build = |debounce: bool| {
                let mut b = Request::builder();
                b.on_chip(&path)
                    .with_consumer(CONSUMER)
                    .as_input()
                    .with_edge_detection(EdgeDetection::BothEdges);
                for (_, off, c) in &buttons {
                    b.with_line(*off);
                    b.with_bias(match c.bias {
                        Bias::PullUp => Some(gpiocdev::line::Bias::PullUp),
                        Bias::PullDown => Some(gpiocdev::line::Bias::PullDown),
                        Bias::Disabled => Some(gpiocdev::line::Bias::Disabled),
                    });
                    if c.active_low {
                        b.as_active_low();
                    } else {
                        b.as_active_high();
                    }
                    if debounce && !config.debounce.is_zero() {
                        b.with_debounce_period(config.debounce);
                    }
                }
                b.request()
            };
            let req = match build(true) {
                Ok(r) => r,
                Err(e) if !config.debounce.is_zero() => {
                    tracing::warn!(
                        "{}: kernel debounce refused ({e}); debouncing in software only",
                        path.display()
                    );
                    kernel_debounce = false;
                    build(false).with_context(|| {
                        format!("requesting the button lines on {}", path.display())
                    })?
                }
                Err(e) => {
                    return Err(anyhow!(e))
                        .with_context(|| format!("requesting button lines on {}", path.display()))
                }
            };
            let map: Vec<(Offset, Button)> = buttons.iter().map(|(b, o, _)| (*o, *b)).collect();
            Some(tokio::spawn(read_edges(req, map, inputs)))
        };

        let leds = if led_offsets.is_empty() {
            None
        } else {
            let mut b = Request::builder();
            b.on_chip(&path).with_consumer(CONSUMER);
            for (_, off, active_low) in &led_offsets {
                b.with_line(*off).as_output(Value::Inactive);
                if *active_low {
                    b.as_active_low();
                } else {
                    b.as_active_high();
                }
            }
            Some(
                b.request()
                    .with_context(|| format!("requesting the LED lines on {}", path.display()))?,
            )
        };
        Ok(CdevGpio {
            chip,
            leds,
            led_offsets: led_offsets.into_iter().map(|(l, o, _)| (l, o)).collect(),
            reader,
            kernel_debounce,
        })
    }

    /// The chip's path.
    pub fn chip_path(&self) -> &Path {
        self.chip.path()
    }
}

async fn read_edges(req: Request, map: Vec<(Offset, Button)>, inputs: InputSender) {
    let req = gpiocdev::tokio::AsyncRequest::new(req);
    loop {
        match req.read_edge_event().await {
            Ok(ev) => {
                let Some((_, button)) = map.iter().find(|(o, _)| *o == ev.offset) else {
                    continue;
                };
                let edge = Input::Edge {
                    button: *button,
                    pressed: ev.kind == EdgeKind::Rising,
                    t_ns: ev.timestamp_ns,
                };
                if inputs.send(edge).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = inputs.send(Input::Lost {
                    reason: format!("reading button edges: {e}"),
                });
                return;
            }
        }
    }
}

impl Gpio for CdevGpio {
    fn name(&self) -> &'static str {
        "gpiocdev"
    }

    fn dimmable(&self) -> bool {
        false
    }

    fn set_led(&mut self, led: Led, level: f64) -> anyhow::Result<()> {
        let (Some(req), Some((_, off))) =
            (&self.leds, self.led_offsets.iter().find(|(l, _)| *l == led))
        else {
            return Ok(());
        };
        let v = if level >= 0.5 {
            Value::Active
        } else {
            Value::Inactive
        };
        req.set_value(*off, v)
            .with_context(|| format!("setting the {} LED", led.name()))?;
        Ok(())
    }

    fn debounced(&self) -> bool {
        self.kernel_debounce
    }

    fn alive(&self) -> bool {
        self.chip.info().is_ok() && self.reader.as_ref().is_none_or(|r| !r.is_finished())
    }
}

//! Raspberry Pi GPIO through `rppal` (`/dev/gpiomem`), with software PWM so LEDs dim and
//! breathe. Lines are BCM GPIO numbers. Built only with `--features rpi`.

use super::{Gpio, Input, InputSender};
use crate::config::controls::{Bias, ControlsConfig};
use crate::controls::Led;
use anyhow::Context;
use rppal::gpio::{InputPin, OutputPin, Trigger};

/// PWM frequency for dimmed LEDs: fast enough not to flicker, slow enough for software PWM.
const PWM_HZ: f64 = 200.0;

/// Open pins.
pub struct RpiGpio {
    /// Kept so their interrupt threads keep running.
    _buttons: Vec<InputPin>,
    leds: Vec<(Led, OutputPin, bool)>,
}

impl RpiGpio {
    /// Opens the configured pins; edges go to `inputs` from rppal's interrupt thread.
    pub fn open(config: &ControlsConfig, inputs: InputSender) -> anyhow::Result<RpiGpio> {
        let gpio = rppal::gpio::Gpio::new().context("opening /dev/gpiomem")?;
        let debounce = (!config.debounce.is_zero()).then_some(config.debounce);
        let mut buttons = Vec::new();
        for (button, c) in config.button_lines() {
            let bcm: u8 = c.line.parse().with_context(|| {
                format!("{} button: `{}` is not a BCM number", button.name(), c.line)
            })?;
            let pin = gpio
                .get(bcm)
                .with_context(|| format!("{} button on GPIO{bcm}", button.name()))?;
            let mut pin = match c.bias {
                Bias::PullUp => pin.into_input_pullup(),
                Bias::PullDown => pin.into_input_pulldown(),
                Bias::Disabled => pin.into_input(),
            };
            let tx = inputs.clone();
            let active_low = c.active_low;
            pin.set_async_interrupt(Trigger::Both, debounce, move |ev| {
                let high = ev.trigger == Trigger::RisingEdge;
                let _ = tx.send(Input::Edge {
                    button,
                    pressed: high != active_low,
                    t_ns: u64::try_from(ev.timestamp.as_nanos()).unwrap_or(u64::MAX),
                });
            })
            .with_context(|| format!("watching the {} button on GPIO{bcm}", button.name()))?;
            buttons.push(pin);
        }
        let mut leds = Vec::new();
        for (led, c) in config.led_lines() {
            let bcm: u8 = c
                .line
                .parse()
                .with_context(|| format!("{} LED: `{}` is not a BCM number", led.name(), c.line))?;
            let mut pin = gpio
                .get(bcm)
                .with_context(|| format!("{} LED on GPIO{bcm}", led.name()))?
                .into_output();
            if c.active_low {
                pin.set_high();
            } else {
                pin.set_low();
            }
            leds.push((led, pin, c.active_low));
        }
        Ok(RpiGpio {
            _buttons: buttons,
            leds,
        })
    }
}

impl Gpio for RpiGpio {
    fn name(&self) -> &'static str {
        "rppal"
    }

    fn dimmable(&self) -> bool {
        true
    }

    fn debounced(&self) -> bool {
        // rppal drops edges within `debounce` of the last one itself.
        true
    }

    fn set_led(&mut self, led: Led, level: f64) -> anyhow::Result<()> {
        let Some((_, pin, active_low)) = self.leds.iter_mut().find(|(l, _, _)| *l == led) else {
            return Ok(());
        };
        let level = level.clamp(0.0, 1.0);
        let duty = if *active_low { 1.0 - level } else { level };
        if duty <= 0.0 || duty >= 1.0 {
            pin.clear_pwm()
                .with_context(|| format!("{} LED", led.name()))?;
            if duty >= 1.0 {
                pin.set_high();
            } else {
                pin.set_low();
            }
        } else {
            pin.set_pwm_frequency(PWM_HZ, duty)
                .with_context(|| format!("{} LED", led.name()))?;
        }
        Ok(())
    }
}

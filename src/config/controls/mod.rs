//! The `[controls]` section: which GPIO backend, which lines the buttons and LEDs are on, what
//! each press does and how each state looks on the LEDs.
//!
//! Imported by the controls task, `check`'s GPIO checker and the tests; the rest of config
//! holds it as `Config::controls`.

mod leds;

pub use leds::{Color, LedConfig, LedLine, LedState, Look, Looks, Pattern};

use super::{BackoffConfig, FieldError};
use crate::command::Command;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// The room's three buttons; their config keys are `join`, `mute` and `camera`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    /// Join or leave; long press ends.
    Join,
    /// Microphone.
    Mute,
    Camera,
}

impl Button {
    /// Every button.
    pub const ALL: [Button; 3] = [Button::Join, Button::Mute, Button::Camera];

    /// The config key.
    pub fn name(self) -> &'static str {
        match self {
            Button::Join => "join",
            Button::Mute => "mute",
            Button::Camera => "camera",
        }
    }
}

/// The status LEDs; their config keys are `red`, `green` and `blue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Led {
    /// Red (mute, errors).
    Red = 0,
    Green = 1,
    /// Blue (in a call).
    Blue = 2,
}

impl Led {
    /// Every LED.
    pub const ALL: [Led; 3] = [Led::Red, Led::Green, Led::Blue];

    /// The config key.
    pub fn name(self) -> &'static str {
        match self {
            Led::Red => "red",
            Led::Green => "green",
            Led::Blue => "blue",
        }
    }
}

/// Which GPIO backend drives the buttons and LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The Linux GPIO character device (v2 API, kernel debounce): any board, the Jetson too.
    #[default]
    Gpiocdev,
    /// Raspberry Pi through `/dev/gpiomem`, with software PWM so LEDs dim and breathe. Needs a
    /// build with `--features rpi`.
    Rppal,
    /// No hardware: a keyboard panel (`panel_input`) presses the buttons and the LEDs are
    /// logged. For demos and tests.
    Simulated,
    /// No buttons and no LEDs.
    None,
}

/// The input bias of a button line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    /// Pulled up: a button to ground reads low when pressed (pair with `active_low = true`).
    #[default]
    PullUp,
    /// Pulled down: a button to 3.3 V reads high when pressed.
    PullDown,
    /// No internal pull (an external resistor is fitted).
    Disabled,
}

/// What a press does: a command, or nothing.
///
/// In TOML: `"none"`, a command name (`"toggle-mic"`), or an inline table with the command's
/// arguments (`{ command = "start-recording", target = "local" }`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Action(pub Option<Command>);

impl Action {
    /// A command without arguments, by name; `None` when the name is unknown or needs arguments.
    pub fn named(name: &str) -> Action {
        Action(Command::from_parts(name, b"").ok())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        match value {
            serde_json::Value::String(s) if s == "none" || s.is_empty() => Ok(Action(None)),
            serde_json::Value::String(s) => Command::from_parts(&s, b"")
                .map(|c| Action(Some(c)))
                .map_err(|e| D::Error::custom(format!("`{s}`: {}", e.message))),
            serde_json::Value::Object(_) => {
                let bytes = serde_json::to_vec(&value).map_err(D::Error::custom)?;
                Command::decode(&bytes)
                    .map(|c| Action(Some(c)))
                    .map_err(|e| D::Error::custom(e.message))
            }
            _ => Err(D::Error::custom(
                "expected \"none\", a command name or { command = \"...\", ... }",
            )),
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(cmd) = &self.0 else {
            return s.serialize_str("none");
        };
        let mut map = match serde_json::to_value(cmd) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return s.serialize_str("none"),
        };
        // TOML has no null: absent arguments are left out.
        map.retain(|_, v| !v.is_null());
        if map.len() == 1 {
            return s.serialize_str(&cmd.name());
        }
        map.serialize(s)
    }
}

/// One button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ButtonConfig {
    /// The line: a name (`btn-join`, `GPIO17`, `PQ.05`) or an offset on the chip (`17`); empty
    /// when the button is not fitted. The `rppal` backend takes BCM numbers only.
    pub line: String,
    /// Pressed reads low (a button to ground with a pull-up).
    pub active_low: bool,
    /// Internal pull resistor.
    pub bias: Bias,
    /// Command of a short press (fires on release, or when the double-press window closes if a
    /// double action is set).
    pub short: Action,
    /// Command of a press held for `long_press` (fires while still held); with none, a long
    /// press counts as a short one.
    pub long: Action,
    /// Command of two presses within `double_press`; with none, every press is acted on at
    /// once.
    pub double: Action,
}

impl ButtonConfig {
    fn with(short: &str, long: &str) -> ButtonConfig {
        ButtonConfig {
            line: String::new(),
            active_low: true,
            bias: Bias::PullUp,
            short: Action::named(short),
            long: Action::named(long),
            double: Action(None),
        }
    }
}

impl Default for ButtonConfig {
    fn default() -> Self {
        ButtonConfig::with("none", "none")
    }
}

/// The three buttons. A button's table may set only some keys: the others keep that button's
/// own defaults (the mute button stays `toggle-mic` when only its `line` is given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ButtonsConfig {
    /// Join/leave; a long press ends the session.
    #[serde(deserialize_with = "de_join")]
    pub join: ButtonConfig,
    /// Microphone mute.
    #[serde(deserialize_with = "de_mute")]
    pub mute: ButtonConfig,
    /// Camera on/off.
    #[serde(deserialize_with = "de_camera")]
    pub camera: ButtonConfig,
}

impl Default for ButtonsConfig {
    fn default() -> Self {
        ButtonsConfig {
            join: ButtonConfig::with("toggle-join", "end"),
            mute: ButtonConfig::with("toggle-mic", "none"),
            camera: ButtonConfig::with("toggle-webcam", "none"),
        }
    }
}

/// A button's table as written: what is absent keeps the button's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialButton {
    line: Option<String>,
    active_low: Option<bool>,
    bias: Option<Bias>,
    short: Option<Action>,
    long: Option<Action>,
    double: Option<Action>,
}

impl PartialButton {
    fn over(self, mut b: ButtonConfig) -> ButtonConfig {
        if let Some(v) = self.line {
            b.line = v;
        }
        if let Some(v) = self.active_low {
            b.active_low = v;
        }
        if let Some(v) = self.bias {
            b.bias = v;
        }
        if let Some(v) = self.short {
            b.short = v;
        }
        if let Some(v) = self.long {
            b.long = v;
        }
        if let Some(v) = self.double {
            b.double = v;
        }
        b
    }
}

fn de_join<'de, D: Deserializer<'de>>(d: D) -> Result<ButtonConfig, D::Error> {
    Ok(PartialButton::deserialize(d)?.over(ButtonsConfig::default().join))
}

fn de_mute<'de, D: Deserializer<'de>>(d: D) -> Result<ButtonConfig, D::Error> {
    Ok(PartialButton::deserialize(d)?.over(ButtonsConfig::default().mute))
}

fn de_camera<'de, D: Deserializer<'de>>(d: D) -> Result<ButtonConfig, D::Error> {
    Ok(PartialButton::deserialize(d)?.over(ButtonsConfig::default().camera))
}

/// The `[controls]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlsConfig {
    /// `gpiocdev`, `rppal`, `simulated` or `none`.
    pub backend: BackendKind,
    /// The GPIO chip (gpiocdev): a path (`/dev/gpiochip0`), a name (`gpiochip0`) or a label
    /// (`pinctrl-bcm2711`, `tegra234-gpio`).
    pub chip: String,
    /// Contact bounce shorter than this is ignored (by the kernel where it can, else in
    /// software), 0..=500ms.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// A press held this long is a long press, 200ms..=30s.
    #[serde(with = "humantime_serde")]
    pub long_press: Duration,
    /// A second press starting within this time of the first release is a double press,
    /// 100ms..=2s.
    #[serde(with = "humantime_serde")]
    pub double_press: Duration,
    /// Reopening a missing or vanished GPIO chip: jittered doubling delay.
    pub retry: BackoffConfig,
    /// Simulated backend only: where key presses come from. Empty: none (the API drives it);
    /// `-`: standard input; else a FIFO path.
    pub panel_input: String,
    pub buttons: ButtonsConfig,
    pub leds: LedConfig,
}

impl Default for ControlsConfig {
    fn default() -> Self {
        ControlsConfig {
            backend: BackendKind::Gpiocdev,
            chip: "gpiochip0".into(),
            debounce: Duration::from_millis(20),
            long_press: Duration::from_millis(1500),
            double_press: Duration::from_millis(400),
            retry: BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            panel_input: String::new(),
            buttons: ButtonsConfig::default(),
            leds: LedConfig::default(),
        }
    }
}

impl ControlsConfig {
    /// The configured button lines, by button.
    pub fn button_lines(&self) -> Vec<(Button, &ButtonConfig)> {
        Button::ALL
            .iter()
            .map(|b| (*b, self.button(*b)))
            .filter(|(_, c)| !c.line.is_empty())
            .collect()
    }

    /// The configured LED lines, by LED.
    pub fn led_lines(&self) -> Vec<(Led, &LedLine)> {
        Led::ALL
            .iter()
            .map(|l| (*l, self.led(*l)))
            .filter(|(_, c)| !c.line.is_empty())
            .collect()
    }

    /// One button's config.
    pub fn button(&self, b: Button) -> &ButtonConfig {
        match b {
            Button::Join => &self.buttons.join,
            Button::Mute => &self.buttons.mute,
            Button::Camera => &self.buttons.camera,
        }
    }

    /// One LED's config.
    pub fn led(&self, l: Led) -> &LedLine {
        match l {
            Led::Red => &self.leds.red,
            Led::Green => &self.leds.green,
            Led::Blue => &self.leds.blue,
        }
    }

    /// True when the section asks for any hardware (or the simulated panel).
    pub fn enabled(&self) -> bool {
        match self.backend {
            BackendKind::None => false,
            BackendKind::Simulated => true,
            _ => !self.button_lines().is_empty() || !self.led_lines().is_empty(),
        }
    }

    /// Checks ranges and relations; every problem, with `controls.` field paths.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        let mut fail = |field: &str, message: String| {
            e.push(FieldError {
                field: format!("controls.{field}"),
                message,
            })
        };
        let range = |d: Duration, lo: Duration, hi: Duration| -> Option<String> {
            (d < lo || d > hi).then(|| {
                format!(
                    "{} is out of range; expected {} to {}",
                    humantime::format_duration(d),
                    humantime::format_duration(lo),
                    humantime::format_duration(hi)
                )
            })
        };
        let ms = Duration::from_millis;
        if let Some(m) = range(self.debounce, ms(0), ms(500)) {
            fail("debounce", m);
        }
        if let Some(m) = range(self.long_press, ms(200), ms(30_000)) {
            fail("long_press", m);
        }
        if self.long_press <= self.debounce {
            fail("long_press", "must be longer than controls.debounce".into());
        }
        if let Some(m) = range(self.double_press, ms(100), ms(2000)) {
            fail("double_press", m);
        }
        if let Some(m) = range(self.retry.initial, ms(10), ms(60_000)) {
            fail("retry.initial", m);
        }
        if let Some(m) = range(self.retry.max, self.retry.initial, ms(3_600_000)) {
            fail("retry.max", m);
        }
        if self.chip.chars().any(|c| c.is_control()) || self.chip.len() > 256 {
            fail(
                "chip",
                "expected a path, name or label of at most 256 printable characters".into(),
            );
        }
        if self.backend == BackendKind::Gpiocdev && self.chip.is_empty() && self.enabled() {
            fail(
                "chip",
                "empty; expected a GPIO chip path, name or label".into(),
            );
        }
        if self.panel_input.chars().any(|c| c.is_control()) || self.panel_input.len() > 4096 {
            fail(
                "panel_input",
                "expected `-` or a FIFO path of printable characters".into(),
            );
        }
        if self.backend == BackendKind::Rppal && !cfg!(feature = "rpi") {
            fail(
                "backend",
                "`rppal` needs a roombox built with `--features rpi`; use `gpiocdev`".into(),
            );
        }
        let mut seen: Vec<(String, String)> = Vec::new();
        let lines = Button::ALL
            .iter()
            .map(|b| (format!("buttons.{}.line", b.name()), &self.button(*b).line))
            .chain(
                Led::ALL
                    .iter()
                    .map(|l| (format!("leds.{}.line", l.name()), &self.led(*l).line)),
            );
        for (field, line) in lines {
            if line.is_empty() {
                continue;
            }
            if let Err(m) = check_line(line, self.backend) {
                fail(&field, m);
                continue;
            }
            if let Some((other, _)) = seen.iter().find(|(_, f)| f.as_str() == line.as_str()) {
                fail(
                    &field,
                    format!("`{line}` is already used by controls.{other}"),
                );
            } else {
                seen.push((field.clone(), line.clone()));
            }
        }
        let mut prio = Vec::new();
        for s in &self.leds.priority {
            if prio.contains(s) {
                fail("leds.priority", format!("{s:?} is listed twice"));
            }
            prio.push(*s);
        }
        if !(0.0..=1.0).contains(&self.leds.dim_level) {
            fail(
                "leds.dim_level",
                format!(
                    "{} is out of range; expected 0.0 to 1.0",
                    self.leds.dim_level
                ),
            );
        }
        e
    }
}

fn check_line(line: &str, backend: BackendKind) -> Result<(), String> {
    if let Ok(n) = line.parse::<u32>() {
        if backend == BackendKind::Rppal && n > 53 {
            return Err(format!("{n} is not a BCM GPIO number (0 to 53)"));
        }
        if n >= 1024 {
            return Err(format!("offset {n} is out of range; expected 0 to 1023"));
        }
        return Ok(());
    }
    if backend == BackendKind::Rppal {
        return Err(format!(
            "`{line}`: the rppal backend takes BCM GPIO numbers (`17`), not names"
        ));
    }
    if line.len() > 64 || line.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "`{line}` is not a line name; expected at most 64 characters without spaces, or an offset"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

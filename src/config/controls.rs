//! The `[controls]` section: which GPIO backend, which lines the buttons and LEDs are on, what
//! each press does and how each state looks on the LEDs.

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
    /// Camera.
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
    /// Green.
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

/// One LED output line.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedLine {
    /// The line (name or offset, as for buttons); empty when not fitted.
    pub line: String,
    /// The LED lights when the line is low (wired to 3.3 V through the LED).
    pub active_low: bool,
}

/// A colour made of the red, green and blue LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Color {
    /// All off.
    Off,
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Red, green and blue.
    White,
    /// Red and green.
    Yellow,
    /// Green and blue.
    Cyan,
    /// Red and blue.
    Magenta,
}

impl Color {
    /// Which of red, green and blue are part of the colour.
    pub fn rgb(self) -> [bool; 3] {
        match self {
            Color::Off => [false, false, false],
            Color::Red => [true, false, false],
            Color::Green => [false, true, false],
            Color::Blue => [false, false, true],
            Color::White => [true, true, true],
            Color::Yellow => [true, true, false],
            Color::Cyan => [false, true, true],
            Color::Magenta => [true, false, true],
        }
    }
}

/// How a lit LED behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Dark.
    Off,
    /// Steadily on.
    Solid,
    /// Low brightness (`dim_level`) with PWM; on on/off GPIO a 100 ms blip every 3 s.
    Dim,
    /// Breathing over 2 s with PWM; on on/off GPIO 1 s on, 1 s off.
    Pulse,
    /// 500 ms on, 500 ms off.
    Blink,
    /// 125 ms on, 125 ms off.
    Flash,
}

/// How one state looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Look {
    /// Which LEDs light.
    pub color: Color,
    /// How they behave.
    pub pattern: Pattern,
}

impl Look {
    const fn new(color: Color, pattern: Pattern) -> Look {
        Look { color, pattern }
    }
}

/// A state of the box the LEDs can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedState {
    /// The microphone is off while there is an audio source: no audio leaves the box.
    Muted,
    /// The `identify` command is running.
    Identify,
    /// Something is wrong: health not ok after start-up, or the meeting FAILED.
    Error,
    /// Joining or rejoining a room (CONNECTING, DISCONNECTED).
    Connecting,
    /// In a room (CONNECTED).
    InCall,
    /// The local recording is running.
    Recording,
    /// The media pipeline has not reached PLAYING yet since start.
    Starting,
    /// Ready, nothing going on.
    Idle,
}

/// The look of every state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Looks {
    /// Mic off.
    pub muted: Look,
    /// Identify running.
    pub identify: Look,
    /// Something wrong.
    pub error: Look,
    /// Joining a room.
    pub connecting: Look,
    /// In a room.
    pub in_call: Look,
    /// Recording locally.
    pub recording: Look,
    /// Booting.
    pub starting: Look,
    /// Ready.
    pub idle: Look,
}

impl Default for Looks {
    fn default() -> Self {
        Looks {
            muted: Look::new(Color::Red, Pattern::Solid),
            identify: Look::new(Color::White, Pattern::Blink),
            error: Look::new(Color::Red, Pattern::Flash),
            connecting: Look::new(Color::Blue, Pattern::Pulse),
            in_call: Look::new(Color::Blue, Pattern::Solid),
            recording: Look::new(Color::Blue, Pattern::Solid),
            starting: Look::new(Color::White, Pattern::Flash),
            idle: Look::new(Color::White, Pattern::Dim),
        }
    }
}

impl Looks {
    /// The look of one state.
    pub fn get(&self, state: LedState) -> Look {
        match state {
            LedState::Muted => self.muted,
            LedState::Identify => self.identify,
            LedState::Error => self.error,
            LedState::Connecting => self.connecting,
            LedState::InCall => self.in_call,
            LedState::Recording => self.recording,
            LedState::Starting => self.starting,
            LedState::Idle => self.idle,
        }
    }
}

/// The LEDs: their lines and what they show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedConfig {
    /// The red LED.
    pub red: LedLine,
    /// The green LED.
    pub green: LedLine,
    /// The blue LED.
    pub blue: LedLine,
    /// States in order of priority, highest first: the first that holds is shown. A state left
    /// out is never shown; with none holding, the LEDs are off.
    pub priority: Vec<LedState>,
    /// The look of each state.
    pub looks: Looks,
    /// Brightness of `dim` on PWM-capable backends, 0.0..=1.0.
    pub dim_level: f64,
}

impl Default for LedConfig {
    fn default() -> Self {
        LedConfig {
            red: LedLine::default(),
            green: LedLine::default(),
            blue: LedLine::default(),
            priority: vec![
                LedState::Muted,
                LedState::Identify,
                LedState::Error,
                LedState::Connecting,
                LedState::InCall,
                LedState::Recording,
                LedState::Starting,
                LedState::Idle,
            ],
            looks: Looks::default(),
            dim_level: 0.15,
        }
    }
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
    /// The buttons.
    pub buttons: ButtonsConfig,
    /// The LEDs.
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
mod tests {
    use super::*;
    use crate::config::{load_str, ConfigError};
    use crate::model::RecordingTarget;

    fn load(text: &str) -> Result<ControlsConfig, Vec<ConfigError>> {
        load_str("test.toml", text).map(|l| l.config.controls)
    }

    fn fields(text: &str) -> Vec<String> {
        load(text)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field.unwrap_or_default())
            .collect()
    }

    #[test]
    fn no_gpio_is_the_valid_default() {
        let c = ControlsConfig::default();
        assert!(c.validate().is_empty());
        assert!(!c.enabled(), "nothing to open without lines");
        assert_eq!(c.buttons.join.short.0, Some(Command::ToggleJoin));
        assert_eq!(c.buttons.join.long.0, Some(Command::End));
        assert_eq!(c.buttons.mute.short.0, Some(Command::ToggleMic));
        assert_eq!(c.buttons.camera.short.0, Some(Command::ToggleWebcam));
    }

    #[test]
    fn the_documented_section_is_the_default() {
        let text = include_str!("../../config/roombox.toml");
        let loaded = load_str("roombox.toml", text).unwrap();
        assert_eq!(loaded.config.controls, ControlsConfig::default());
    }

    #[test]
    fn a_button_table_with_only_a_line_keeps_that_buttons_actions() {
        let c = load(
            "[controls.buttons.mute]\nline = \"btn-mute\"\n[controls.buttons.join]\nline = \"7\"\nlong = \"none\"\n",
        )
        .unwrap();
        assert_eq!(c.buttons.mute.line, "btn-mute");
        assert_eq!(c.buttons.mute.short.0, Some(Command::ToggleMic));
        assert_eq!(c.buttons.join.short.0, Some(Command::ToggleJoin));
        assert_eq!(c.buttons.join.long.0, None);
        assert!(c.buttons.join.active_low);
        assert_eq!(c.buttons.camera.short.0, Some(Command::ToggleWebcam));
    }

    #[test]
    fn the_board_examples_keep_the_default_actions() {
        for text in [
            include_str!("../../config/raspberry-pi-4.toml"),
            include_str!("../../config/raspberry-pi-5.toml"),
            include_str!("../../config/jetson.toml"),
        ] {
            let c = load(text).unwrap();
            assert!(c.enabled());
            assert_eq!(c.buttons.join.short.0, Some(Command::ToggleJoin));
            assert_eq!(c.buttons.join.long.0, Some(Command::End));
            assert_eq!(c.buttons.mute.short.0, Some(Command::ToggleMic));
            assert_eq!(c.buttons.camera.short.0, Some(Command::ToggleWebcam));
            assert_eq!(c.button_lines().len(), 3);
            assert_eq!(c.led_lines().len(), 3);
        }
    }

    #[test]
    fn actions_are_names_tables_or_none() {
        let c = load(
            r#"
            [controls]
            backend = "simulated"
            [controls.buttons.join]
            short = { command = "start-recording", target = "local" }
            long = "stop-recording"
            double = { command = "identify", seconds = 5 }
            [controls.buttons.mute]
            short = "none"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.buttons.join.short.0,
            Some(Command::StartRecording {
                target: RecordingTarget::Local
            })
        );
        assert_eq!(
            c.buttons.join.long.0,
            Some(Command::StopRecording {
                target: RecordingTarget::Local
            })
        );
        assert_eq!(
            c.buttons.join.double.0,
            Some(Command::Identify { seconds: 5 })
        );
        assert_eq!(c.buttons.mute.short.0, None);
        // And back: what serializes loads again unchanged.
        let text = toml::to_string(&c.buttons.join).unwrap();
        let back: ButtonConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c.buttons.join);
    }

    #[test]
    fn a_bad_action_names_the_field_and_the_command() {
        let e = load("[controls.buttons.join]\nshort = \"jump\"\n").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("controls.buttons.join.short"));
        assert!(e[0].message.contains("jump"), "{}", e[0].message);
        assert_eq!(e[0].line, Some(2));
        let e = load("[controls.buttons.join]\nlong = { command = \"identify\", seconds = 0 }\n")
            .unwrap_err();
        assert!(e[0].message.contains("seconds"), "{}", e[0].message);
        let e = load("[controls.buttons.join]\nshort = \"send-chat\"\n").unwrap_err();
        assert!(e[0].message.contains("message"), "{}", e[0].message);
        let e = load("[controls.buttons.join]\nshort = 3\n").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("controls.buttons.join.short"));
    }

    #[test]
    fn ranges_are_checked() {
        let f = fields(
            r#"
            [controls]
            debounce = "2s"
            long_press = "100ms"
            double_press = "5s"
            [controls.leds]
            dim_level = 1.5
            "#,
        );
        for want in [
            "controls.debounce",
            "controls.long_press",
            "controls.double_press",
            "controls.leds.dim_level",
        ] {
            assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn a_line_used_twice_is_an_error() {
        let f = fields(
            r#"
            [controls.buttons.join]
            line = "btn"
            [controls.leds.red]
            line = "btn"
            "#,
        );
        assert_eq!(f, vec!["controls.leds.red.line"]);
    }

    #[test]
    fn line_names_and_offsets_are_checked() {
        assert!(load("[controls.buttons.join]\nline = \"17\"\n").is_ok());
        assert!(load("[controls.buttons.join]\nline = \"PQ.05\"\n").is_ok());
        assert_eq!(
            fields("[controls.buttons.join]\nline = \"has space\"\n"),
            vec!["controls.buttons.join.line"]
        );
        assert_eq!(
            fields("[controls.buttons.join]\nline = \"5000\"\n"),
            vec!["controls.buttons.join.line"]
        );
    }

    #[test]
    fn rppal_takes_bcm_numbers_and_needs_its_feature() {
        let f =
            fields("[controls]\nbackend = \"rppal\"\n[controls.buttons.join]\nline = \"GPIO17\"\n");
        assert!(f.iter().any(|x| x == "controls.buttons.join.line"), "{f:?}");
        assert_eq!(
            f.iter().any(|x| x == "controls.backend"),
            !cfg!(feature = "rpi")
        );
    }

    #[test]
    fn priority_lists_each_state_once() {
        let f = fields("[controls.leds]\npriority = [\"muted\", \"idle\", \"muted\"]\n");
        assert_eq!(f, vec!["controls.leds.priority"]);
        let e = load("[controls.leds]\npriority = [\"sleeping\"]\n").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("controls.leds.priority.0"));
    }

    #[test]
    fn unknown_keys_and_colours_are_refused() {
        assert!(load("[controls]\nbuttonz = 1\n").is_err());
        assert!(
            load("[controls.leds.looks]\nmuted = { color = \"pink\", pattern = \"solid\" }\n")
                .is_err()
        );
        assert!(load("[controls.buttons.join]\nbias = \"pull-sideways\"\n").is_err());
    }

    #[test]
    fn a_chip_is_needed_once_lines_are_set() {
        let f = fields("[controls]\nchip = \"\"\n[controls.buttons.join]\nline = \"1\"\n");
        assert_eq!(f, vec!["controls.chip"]);
        assert!(
            load("[controls]\nchip = \"\"\n").is_ok(),
            "no lines, no chip needed"
        );
    }
}

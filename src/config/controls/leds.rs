//! The LEDs' part of `[controls]`: their lines, the colours and patterns, and which look each
//! state of the box has (`leds.looks`), with the priority that decides between states.

use serde::{Deserialize, Serialize};

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
    Red,
    Green,
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
    /// Not in a room, and the calendar's next meeting can be joined now (from its
    /// `join_before`): the join button's short press joins it.
    MeetingSoon,
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
    /// A meeting to join is about to start.
    pub meeting_soon: Look,
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
            meeting_soon: Look::new(Color::White, Pattern::Pulse),
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
            LedState::MeetingSoon => self.meeting_soon,
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
                LedState::MeetingSoon,
                LedState::Recording,
                LedState::Starting,
                LedState::Idle,
            ],
            looks: Looks::default(),
            dim_level: 0.15,
        }
    }
}

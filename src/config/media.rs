//! The `[media]` section: the camera and the microphone, and how the one encode is made.

use super::BackoffConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Capture and encode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The camera and the video encoder.
    pub video: VideoConfig,
    /// The microphone and the audio encoders.
    pub audio: AudioConfig,
    /// Content share from the box: a second capture with its own encode, started and stopped
    /// while the camera runs.
    pub share: super::ShareConfig,
    /// The meeting feed's layout, for outputs whose `source = "meeting"`.
    pub meeting: super::MeetingConfig,
    /// How the pipeline is restarted after a fault.
    pub restart: BackoffConfig,
}

/// Where video comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VideoSource {
    /// A UVC or other V4L2 camera (`device`).
    V4l2,
    /// A CSI camera through libcamera (`device` is the camera name; empty for the first).
    Libcamera,
    /// A CSI camera on a Jetson through nvarguscamerasrc (`device` is the sensor id).
    Argus,
    /// A synthetic test pattern with a running clock.
    Test,
    /// No video.
    None,
}

/// Where audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioSource {
    /// An ALSA capture device (`device`).
    Alsa,
    /// A synthetic tone.
    Test,
    /// A WAV, Opus or Ogg file (`file`) played in a loop as if it were the mic (tests, demos).
    File,
    /// Raw S16LE samples at `rate` and `channels` read from `file` as they come, a named pipe
    /// usually: the mic end of a room simulator (the speaker end is a `filesink` in
    /// `[room.playback] audio_sink`).
    Pipe,
    /// No audio.
    None,
}

/// The camera and the H.264 encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// `v4l2`, `libcamera`, `argus`, `test` or `none`.
    pub source: VideoSource,
    /// Device path (v4l2), camera name (libcamera) or sensor id (argus).
    pub device: String,
    /// Width in pixels, 160..=3840, even.
    pub width: u32,
    /// Height in pixels, 120..=2160, even.
    pub height: u32,
    /// Frames per second, 1..=60.
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Lowest bitrate congestion control may go to, kbit/s.
    pub min_bitrate_kbps: u32,
    /// Highest bitrate congestion control may go to, kbit/s.
    pub max_bitrate_kbps: u32,
    /// Time between keyframes.
    #[serde(with = "humantime_serde")]
    pub keyframe_interval: Duration,
    /// `auto` for the best encoder that reaches PLAYING, or an element name (`x264enc`).
    pub encoder: String,
    /// For the `test` source: how far the pattern scrolls each frame, pixels, 0..=64 (0: still).
    pub test_scroll: u32,
    /// Step the frame rate down when the encoder cannot keep up (CPU overload), and back up
    /// when there is room.
    pub adapt_to_cpu: bool,
    /// The lowest frame rate overload may step down to, 1..=60.
    pub min_fps: u32,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            source: VideoSource::Test,
            device: "/dev/video0".into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2500,
            min_bitrate_kbps: 300,
            max_bitrate_kbps: 4000,
            keyframe_interval: Duration::from_secs(2),
            encoder: "auto".into(),
            test_scroll: 0,
            adapt_to_cpu: true,
            min_fps: 10,
        }
    }
}

/// The microphone and audio encoders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// `alsa`, `test`, `file`, `pipe` or `none`.
    pub source: AudioSource,
    /// ALSA device name (`default`, `hw:1,0`, `plughw:CARD=Mic`).
    pub device: String,
    /// The file played as the mic with `source = "file"`, or the pipe read with `"pipe"`.
    pub file: PathBuf,
    /// Sample rate: 16000, 32000 or 48000.
    pub rate: u32,
    /// 1 or 2.
    pub channels: u32,
    /// Older spelling of `processing.echo_cancel = true`: true turns echo cancellation on.
    pub echo_cancel: bool,
    /// Older spelling of `processing.noise_suppression = true`.
    pub noise_suppression: bool,
    /// Echo cancellation, noise suppression, gain control and the high-pass filter.
    pub processing: ProcessingConfig,
    /// Opus bitrate for rooms, kbit/s, 6..=510.
    pub opus_bitrate_kbps: u32,
    /// AAC bitrate for RTMP and recordings that need it, kbit/s, 32..=320.
    pub aac_bitrate_kbps: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            source: AudioSource::Test,
            device: "default".into(),
            file: PathBuf::new(),
            rate: 48000,
            channels: 1,
            echo_cancel: false,
            noise_suppression: false,
            processing: ProcessingConfig::default(),
            opus_bitrate_kbps: 64,
            aac_bitrate_kbps: 128,
        }
    }
}

/// `[media.audio.processing]`: what runs on the mic between capture and every consumer. Each
/// switch left out is on where a speaker is configured (a room backend, a speaker sink that is
/// not `none`, and a real microphone: `alsa` or `pipe`), and off elsewhere: a synthetic tone or a
/// file played as the mic hears no room, and noise suppression would eat a test tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Remove the speaker's echo from the mic, with the speaker's signal as the reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_cancel: Option<bool>,
    /// Suppress stationary noise (fans, air conditioning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_suppression: Option<bool>,
    /// Bring the talker's level up to a steady one (AGC2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gain_control: Option<bool>,
    /// Take off rumble below about 100 Hz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_pass: Option<bool>,
}

/// What [`super::Config::audio_processing`] resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioProcessing {
    pub echo_cancel: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    pub high_pass: bool,
    /// Whether the switches left out default to on (see [`ProcessingConfig`]).
    pub speaker: bool,
}

impl AudioProcessing {
    /// Whether anything runs on the mic.
    pub fn any(&self) -> bool {
        self.echo_cancel || self.noise_suppression || self.gain_control || self.high_pass
    }
}

impl super::Config {
    /// Whether the box plays the room on a speaker that its microphone hears.
    pub fn speaker_in_room(&self) -> bool {
        let sink = self.room.playback.audio_sink.trim();
        self.room.backend != super::RoomBackendKind::None
            && sink != "none"
            && !sink.starts_with("fakesink")
            && matches!(
                self.media.audio.source,
                AudioSource::Alsa | AudioSource::Pipe
            )
    }

    /// The mic's processing, with the defaults and the older `[media.audio]` switches applied.
    pub fn audio_processing(&self) -> AudioProcessing {
        let a = &self.media.audio;
        let p = &a.processing;
        let speaker = self.speaker_in_room();
        let none = a.source == AudioSource::None;
        AudioProcessing {
            echo_cancel: !none && p.echo_cancel.unwrap_or(speaker || a.echo_cancel),
            noise_suppression: !none
                && p.noise_suppression
                    .unwrap_or(speaker || a.noise_suppression),
            gain_control: !none && p.gain_control.unwrap_or(speaker),
            high_pass: !none && p.high_pass.unwrap_or(speaker),
            speaker,
        }
    }
}

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
    /// `alsa`, `test`, `file` or `none`.
    pub source: AudioSource,
    /// ALSA device name (`default`, `hw:1,0`, `plughw:CARD=Mic`).
    pub device: String,
    /// The file played as the mic with `source = "file"`.
    pub file: PathBuf,
    /// Sample rate: 16000, 32000 or 48000.
    pub rate: u32,
    /// 1 or 2.
    pub channels: u32,
    /// Echo cancellation through `webrtcdsp` (needs a playback path for its probe).
    pub echo_cancel: bool,
    /// Noise suppression through `webrtcdsp`.
    pub noise_suppression: bool,
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
            opus_bitrate_kbps: 64,
            aac_bitrate_kbps: 128,
        }
    }
}

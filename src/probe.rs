//! `roombox probe`: what this machine offers — cameras and their formats, ALSA devices, GPIO
//! chips and lines, and every H.264 encoder with whether it really reaches PLAYING.

use crate::media::encoder::{self, ProbeResult};
use serde::Serialize;
use std::time::Duration;

/// One camera.
#[derive(Debug, Clone, Serialize)]
pub struct Camera {
    /// Device node.
    pub path: String,
    /// Card name.
    pub card: String,
    /// Kernel driver.
    pub driver: String,
    /// Bus (usb-..., platform:...).
    pub bus: String,
    /// Formats, each with its frame sizes (`YUYV 640x480`, ...).
    pub formats: Vec<CameraFormat>,
}

/// One pixel format of a camera.
#[derive(Debug, Clone, Serialize)]
pub struct CameraFormat {
    /// FourCC (`YUYV`, `MJPG`).
    pub fourcc: String,
    pub description: String,
    /// Discrete sizes, or a stepwise range.
    pub sizes: Vec<String>,
}

/// One ALSA PCM.
#[derive(Debug, Clone, Serialize)]
pub struct AudioDevice {
    /// Name to put in config (`hw:CARD=Loopback,DEV=0`).
    pub name: String,
    pub description: String,
    /// `capture`, `playback` or `both`.
    pub direction: String,
}

/// One GPIO chip.
#[derive(Debug, Clone, Serialize)]
pub struct GpioChip {
    /// Device node.
    pub path: String,
    /// Kernel name.
    pub name: String,
    pub label: String,
    /// Lines: offset, name, and consumer when in use.
    pub lines: Vec<GpioLine>,
}

/// One GPIO line.
#[derive(Debug, Clone, Serialize)]
pub struct GpioLine {
    /// Offset on the chip.
    pub offset: u32,
    /// Line name, if the board names it.
    pub name: String,
    /// Who holds it, if anyone.
    pub consumer: String,
    /// `input` or `output`.
    pub direction: String,
}

/// Everything `probe` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// V4L2 capture devices.
    pub cameras: Vec<Camera>,
    /// ALSA PCMs.
    pub audio: Vec<AudioDevice>,
    /// GPIO chips.
    pub gpio: Vec<GpioChip>,
    /// H.264 encoders in order of preference.
    pub encoders: Vec<ProbeResult>,
    /// The mic's processing (echo cancellation, noise suppression, gain control, high-pass)
    /// and what it costs here.
    pub processing: Vec<ProcessingCost>,
}

/// One canceller's cost on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessingCost {
    /// The canceller.
    pub canceller: String,
    /// The rate it was measured at, Hz.
    pub rate: u32,
    /// What ran: every stage on.
    pub stages: String,
    /// Share of one core, in percent, over 2 s of audio.
    pub cpu_percent: f64,
}

/// The mic's processing at 16 and 48 kHz, every stage on.
pub fn processing() -> Vec<ProcessingCost> {
    [16_000, 48_000]
        .into_iter()
        .map(|rate| {
            let p = crate::media::echo::Processing {
                backend: crate::media::echo::Backend::Aec3,
                rate,
                channels: 1,
                echo_cancel: true,
                noise_suppression: true,
                gain_control: true,
                high_pass: true,
            };
            ProcessingCost {
                canceller: p.backend.name().to_string(),
                rate,
                stages: "echo cancellation, noise suppression, gain control, high-pass".into(),
                cpu_percent: 100.0 * crate::media::echo::cost(p, 2),
            }
        })
        .collect()
}

/// Looks at everything. GStreamer must be initialised.
pub fn run() -> Report {
    Report {
        cameras: cameras(),
        audio: audio(),
        gpio: gpio(),
        encoders: encoder::ENCODERS
            .iter()
            .map(|e| encoder::probe(e.name, Duration::from_secs(5)))
            .collect(),
        processing: processing(),
    }
}

/// V4L2 devices that capture video.
pub fn cameras() -> Vec<Camera> {
    use v4l::video::Capture;
    let mut out = Vec::new();
    for node in v4l::context::enum_devices() {
        let path = node.path().display().to_string();
        let Ok(dev) = v4l::Device::with_path(node.path()) else {
            continue;
        };
        let Ok(caps) = dev.query_caps() else { continue };
        if !caps
            .capabilities
            .contains(v4l::capability::Flags::VIDEO_CAPTURE)
        {
            continue;
        }
        let formats = dev
            .enum_formats()
            .unwrap_or_default()
            .into_iter()
            .map(|f| {
                let sizes = dev
                    .enum_framesizes(f.fourcc)
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|s| match s.size {
                        v4l::framesize::FrameSizeEnum::Discrete(d) => {
                            vec![format!("{}x{}", d.width, d.height)]
                        }
                        v4l::framesize::FrameSizeEnum::Stepwise(s) => vec![format!(
                            "{}x{} to {}x{}",
                            s.min_width, s.min_height, s.max_width, s.max_height
                        )],
                    })
                    .collect();
                CameraFormat {
                    fourcc: f.fourcc.str().unwrap_or("????").to_string(),
                    description: f.description,
                    sizes,
                }
            })
            .collect();
        out.push(Camera {
            path,
            card: caps.card,
            driver: caps.driver,
            bus: caps.bus,
            formats,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// ALSA PCM hints (hardware devices and configured aliases).
pub fn audio() -> Vec<AudioDevice> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    hints
        .filter_map(|h| {
            let name = h.name?;
            if name == "null" {
                return None;
            }
            let direction = match h.direction {
                Some(alsa::Direction::Capture) => "capture",
                Some(alsa::Direction::Playback) => "playback",
                None => "both",
            };
            Some(AudioDevice {
                name,
                description: h.desc.unwrap_or_default().replace('\n', " "),
                direction: direction.into(),
            })
        })
        .collect()
}

/// GPIO character devices and their lines.
pub fn gpio() -> Vec<GpioChip> {
    let Ok(paths) = gpiocdev::chip::chips() else {
        return Vec::new();
    };
    paths
        .into_iter()
        .filter_map(|p| {
            let chip = gpiocdev::chip::Chip::from_path(&p).ok()?;
            let info = chip.info().ok()?;
            let lines = (0..info.num_lines)
                .filter_map(|o| chip.line_info(o).ok())
                .map(|l| GpioLine {
                    offset: l.offset,
                    name: l.name.clone(),
                    consumer: l.consumer.clone(),
                    direction: format!("{:?}", l.direction).to_lowercase(),
                })
                .collect();
            Some(GpioChip {
                path: p.display().to_string(),
                name: info.name.clone(),
                label: info.label.clone(),
                lines,
            })
        })
        .collect()
}

/// The report for people.
pub fn render(r: &Report) -> String {
    let mut s = String::from("Cameras (V4L2):\n");
    if r.cameras.is_empty() {
        s.push_str("  none\n");
    }
    for c in &r.cameras {
        s.push_str(&format!(
            "  {}  {} [{}] {}\n",
            c.path, c.card, c.driver, c.bus
        ));
        for f in &c.formats {
            s.push_str(&format!(
                "    {} ({}): {}\n",
                f.fourcc,
                f.description,
                f.sizes.join(", ")
            ));
        }
    }
    s.push_str("Audio (ALSA PCMs):\n");
    if r.audio.is_empty() {
        s.push_str("  none\n");
    }
    for a in &r.audio {
        s.push_str(&format!(
            "  {:<8} {}  {}\n",
            a.direction, a.name, a.description
        ));
    }
    s.push_str("Audio processing (10 ms frames, 1 channel):\n");
    for p in &r.processing {
        s.push_str(&format!(
            "  {} at {} Hz: {} — {:.1} % of a core\n",
            p.canceller, p.rate, p.stages, p.cpu_percent
        ));
    }
    s.push_str("GPIO:\n");
    if r.gpio.is_empty() {
        s.push_str("  none\n");
    }
    for g in &r.gpio {
        s.push_str(&format!(
            "  {}  {} [{}] {} lines\n",
            g.path,
            g.name,
            g.label,
            g.lines.len()
        ));
        for l in g
            .lines
            .iter()
            .filter(|l| !l.name.is_empty() || !l.consumer.is_empty())
        {
            s.push_str(&format!(
                "    {:>3} {:<16} {:<7} {}\n",
                l.offset, l.name, l.direction, l.consumer
            ));
        }
    }
    s.push_str("H.264 encoders (best first):\n");
    for e in &r.encoders {
        let what = if e.works {
            match e.decoded {
                Some(d) => format!("works: {} frames, {d} decoded ({} ms)", e.frames, e.millis),
                None => format!(
                    "works: {} frames (no software decoder to check them; {} ms)",
                    e.frames, e.millis
                ),
            }
        } else if e.registered {
            format!(
                "registered but fails: {}",
                e.error.as_deref().unwrap_or("?")
            )
        } else {
            "not installed".into()
        };
        s.push_str(&format!("  {:<14} {what}\n", e.name));
    }
    s
}

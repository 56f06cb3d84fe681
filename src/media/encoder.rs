//! H.264 encoders: what each needs, their order of preference, and a probe that proves one works.
//!
//! An encoder that is registered is not necessarily usable (the Jetson Orin Nano registers
//! `nvv4l2h264enc` but has no encoder block), so "auto" probes the candidates in order of
//! preference and takes the first that really reaches PLAYING and produces output.

pub use super::element::{make, parse_caps, set};
use super::error::{MediaError, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How an encoder takes its bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bitrate {
    /// A property in kbit/s.
    Kbps(&'static str),
    /// A property in bit/s.
    Bps(&'static str),
    /// V4L2 `extra-controls` (`video_bitrate` in bit/s).
    V4l2Controls,
}

/// What roombox knows about one H.264 encoder element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSpec {
    /// The element factory name.
    pub name: &'static str,
    /// True for a hardware encoder.
    pub hardware: bool,
    /// How its bitrate is set.
    pub bitrate: Bitrate,
    /// The keyframe-interval property, in frames.
    pub gop: Option<&'static str>,
    /// Fixed properties for low-latency, browser-compatible output.
    pub props: &'static [(&'static str, &'static str)],
    /// Output caps to ask for (constrained baseline for browser interop).
    pub caps: &'static str,
}

/// Every encoder roombox can drive, best first.
pub const ENCODERS: &[EncoderSpec] = &[
    EncoderSpec {
        name: "v4l2h264enc",
        hardware: true,
        bitrate: Bitrate::V4l2Controls,
        gop: None,
        props: &[],
        caps: "video/x-h264,profile=constrained-baseline,level=(string)4",
    },
    EncoderSpec {
        name: "nvv4l2h264enc",
        hardware: true,
        bitrate: Bitrate::Bps("bitrate"),
        gop: Some("iframeinterval"),
        props: &[("insert-sps-pps", "true"), ("maxperf-enable", "true")],
        caps: "video/x-h264,profile=constrained-baseline",
    },
    EncoderSpec {
        name: "vah264enc",
        hardware: true,
        bitrate: Bitrate::Kbps("bitrate"),
        gop: Some("key-int-max"),
        props: &[("b-frames", "0")],
        caps: "video/x-h264,profile=constrained-baseline",
    },
    EncoderSpec {
        name: "x264enc",
        hardware: false,
        bitrate: Bitrate::Kbps("bitrate"),
        gop: Some("key-int-max"),
        props: &[
            ("tune", "zerolatency"),
            ("speed-preset", "ultrafast"),
            ("bframes", "0"),
        ],
        caps: "video/x-h264,profile=constrained-baseline",
    },
    EncoderSpec {
        name: "openh264enc",
        hardware: false,
        bitrate: Bitrate::Bps("bitrate"),
        gop: Some("gop-size"),
        props: &[("rate-control", "bitrate"), ("complexity", "low")],
        caps: "video/x-h264,profile=constrained-baseline",
    },
];

/// The spec of a named encoder, if roombox knows it.
pub fn spec(name: &str) -> Option<&'static EncoderSpec> {
    ENCODERS.iter().find(|e| e.name == name)
}

/// The candidates to try, best first: the configured one alone, or every known encoder that is
/// registered.
pub fn candidates(configured: &str, registered: impl Fn(&str) -> bool) -> Vec<&'static str> {
    if configured != "auto" {
        return vec![spec(configured).map(|s| s.name).unwrap_or("")]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
    }
    ENCODERS
        .iter()
        .map(|e| e.name)
        .filter(|n| registered(n))
        .collect()
}

/// What probing one encoder found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    /// The element.
    pub name: String,
    /// Whether it is registered in GStreamer.
    pub registered: bool,
    /// Whether it reached PLAYING and encoded the test frames.
    pub works: bool,
    /// How long the probe took, ms.
    pub millis: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Picks the first candidate for which `probe` succeeds. Returns the choice (if any) and every
/// result, in the order tried.
pub fn choose(
    candidates: &[&'static str],
    mut probe: impl FnMut(&str) -> ProbeResult,
) -> (Option<&'static str>, Vec<ProbeResult>) {
    let mut results = Vec::new();
    for c in candidates {
        let r = probe(c);
        let ok = r.works;
        results.push(r);
        if ok {
            return (Some(c), results);
        }
    }
    (None, results)
}

/// Whether an element factory is registered (reliable, unlike `gst-inspect --exists`).
pub fn registered(name: &str) -> bool {
    gst::ElementFactory::find(name).is_some()
}

/// Encodes a few test frames with `name` and reports whether it reached PLAYING and produced
/// output before `timeout`.
pub fn probe(name: &str, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let mut result = ProbeResult {
        name: name.to_string(),
        registered: registered(name),
        works: false,
        millis: 0,
        error: None,
    };
    if !result.registered {
        result.error = Some("not registered".into());
        return result;
    }
    let outcome = (|| -> Result<()> {
        let Some(spec) = spec(name) else {
            return Err(MediaError::MissingElement(format!(
                "{name} (unknown to roombox)"
            )));
        };
        let pipeline = gst::Pipeline::new();
        let src = make("videotestsrc")?;
        set(&src, "num-buffers", "8")?;
        let caps = make("capsfilter")?;
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", 320i32)
                .field("height", 240i32)
                .field("framerate", gst::Fraction::new(30, 1))
                .build(),
        );
        let conv = make("videoconvert")?;
        let enc = make(name)?;
        configure(&enc, spec, 500, 30)?;
        let out = make("capsfilter")?;
        out.set_property("caps", parse_caps(spec.caps)?);
        let sink = make("fakesink")?;
        super::element::add_chain(
            &pipeline,
            &[src, caps, conv, enc, out, sink],
            "the probe pipeline",
        )?;
        let run = || -> Result<()> {
            pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| MediaError::Start(format!("{name} (PLAYING)")))?;
            let bus = pipeline
                .bus()
                .ok_or_else(|| MediaError::Start("the probe's bus".into()))?;
            let deadline = timeout.saturating_sub(started.elapsed());
            match bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(deadline.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) {
                Some(msg) => match msg.view() {
                    gst::MessageView::Eos(_) => Ok(()),
                    gst::MessageView::Error(e) => Err(MediaError::from_bus(&msg, e)),
                    _ => Err(MediaError::Runtime("unexpected message".into())),
                },
                None => Err(MediaError::Stalled(format!("no output within {timeout:?}"))),
            }
        };
        let r = run();
        let _ = pipeline.set_state(gst::State::Null);
        r
    })();
    result.millis = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => result.works = true,
        Err(e) => result.error = Some(e.to_string()),
    }
    result
}

/// Applies an encoder's fixed properties, bitrate and keyframe interval.
pub fn configure(enc: &gst::Element, spec: &EncoderSpec, kbps: u32, gop_frames: u32) -> Result<()> {
    for (k, v) in spec.props {
        set(enc, k, v)?;
    }
    if let Some(gop) = spec.gop {
        set(enc, gop, &gop_frames.max(1).to_string())?;
    }
    set_bitrate(enc, spec, kbps, gop_frames)
}

/// Changes an encoder's bitrate (also while it runs).
pub fn set_bitrate(
    enc: &gst::Element,
    spec: &EncoderSpec,
    kbps: u32,
    gop_frames: u32,
) -> Result<()> {
    match spec.bitrate {
        Bitrate::Kbps(p) => set(enc, p, &kbps.to_string()),
        Bitrate::Bps(p) => set(enc, p, &(u64::from(kbps) * 1000).to_string()),
        Bitrate::V4l2Controls => set(
            enc,
            "extra-controls",
            &format!(
                "controls,video_bitrate={},h264_i_frame_period={},repeat_sequence_header=1",
                u64::from(kbps) * 1000,
                gop_frames.max(1)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(works: &'static [&'static str]) -> impl FnMut(&str) -> ProbeResult {
        move |n| ProbeResult {
            name: n.into(),
            registered: true,
            works: works.contains(&n),
            millis: 0,
            error: None,
        }
    }

    #[test]
    fn auto_prefers_hardware_in_board_order() {
        let all = candidates("auto", |_| true);
        assert_eq!(
            all,
            vec![
                "v4l2h264enc",
                "nvv4l2h264enc",
                "vah264enc",
                "x264enc",
                "openh264enc"
            ]
        );
    }

    #[test]
    fn only_registered_encoders_are_candidates() {
        let c = candidates("auto", |n| n == "x264enc" || n == "openh264enc");
        assert_eq!(c, vec!["x264enc", "openh264enc"]);
    }

    #[test]
    fn a_registered_encoder_that_fails_is_skipped() {
        // The Orin Nano: nvv4l2h264enc is registered but never reaches PLAYING.
        let c = candidates("auto", |n| n == "nvv4l2h264enc" || n == "x264enc");
        let (chosen, results) = choose(&c, fake(&["x264enc"]));
        assert_eq!(chosen, Some("x264enc"));
        assert_eq!(results.len(), 2);
        assert!(!results[0].works);
    }

    #[test]
    fn the_first_working_encoder_wins_and_later_ones_are_not_probed() {
        let c = candidates("auto", |_| true);
        let (chosen, results) = choose(&c, fake(&["v4l2h264enc", "x264enc"]));
        assert_eq!(chosen, Some("v4l2h264enc"));
        assert_eq!(results.len(), 1);
    }

    #[test]
    fn a_configured_encoder_is_the_only_candidate() {
        assert_eq!(candidates("openh264enc", |_| true), vec!["openh264enc"]);
        assert!(candidates("madeupenc", |_| true).is_empty());
    }

    #[test]
    fn nothing_works_means_no_choice() {
        let (chosen, results) = choose(&["x264enc"], fake(&[]));
        assert_eq!(chosen, None);
        assert_eq!(results.len(), 1);
    }

    #[test]
    fn software_encoders_really_encode_here() {
        gst::init().unwrap();
        let r = probe("x264enc", Duration::from_secs(10));
        assert!(r.works, "{r:?}");
        let r = probe("v4l2h264enc", Duration::from_secs(10));
        assert!(!r.works);
    }

    #[test]
    fn unknown_properties_and_values_are_errors_not_panics() {
        gst::init().unwrap();
        let enc = make("x264enc").unwrap();
        assert!(set(&enc, "no-such-thing", "1").is_err());
        assert!(set(&enc, "bitrate", "fast").is_err());
        assert!(set(&enc, "bitrate", "1200").is_ok());
        assert_eq!(enc.property::<u32>("bitrate"), 1200);
    }
}

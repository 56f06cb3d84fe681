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
    /// Properties on top of `props` for content (the share: a big picture at 5 to 15 fps).
    pub content: &'static [(&'static str, &'static str)],
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
        content: &[],
    },
    EncoderSpec {
        name: "nvv4l2h264enc",
        hardware: true,
        bitrate: Bitrate::Bps("bitrate"),
        gop: Some("iframeinterval"),
        props: &[("insert-sps-pps", "true"), ("maxperf-enable", "true")],
        caps: "video/x-h264,profile=constrained-baseline",
        content: &[],
    },
    EncoderSpec {
        name: "vah264enc",
        hardware: true,
        bitrate: Bitrate::Kbps("bitrate"),
        gop: Some("key-int-max"),
        props: &[("b-frames", "0")],
        caps: "video/x-h264,profile=constrained-baseline",
        content: &[],
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
        // One thread and no slices: at a few frames a second, frame or slice threads only add
        // their hand-overs (measured: 0.3 to 0.5 % of a core less for 1080p5).
        content: &[("threads", "1")],
    },
    EncoderSpec {
        name: "openh264enc",
        hardware: false,
        bitrate: Bitrate::Bps("bitrate"),
        gop: Some("gop-size"),
        props: &[("rate-control", "bitrate"), ("complexity", "low")],
        caps: "video/x-h264,profile=constrained-baseline",
        content: &[],
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
    /// Whether it reached PLAYING and put out test frames that decode.
    pub works: bool,
    /// Encoded frames it put out.
    pub frames: u32,
    /// Of those, frames a software decoder decoded; None when no decoder is installed.
    pub decoded: Option<u32>,
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

/// Frames the probe encodes.
const PROBE_FRAMES: u32 = 8;

/// Encodes [`PROBE_FRAMES`] test frames with `name` and reports whether it reached PLAYING and
/// produced frames that decode before `timeout`. Reaching EOS is not enough: an encoder that
/// takes frames and puts out nothing (a registered element with no hardware behind it) also
/// reaches EOS.
pub fn probe(name: &str, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let mut result = ProbeResult {
        name: name.to_string(),
        registered: registered(name),
        works: false,
        frames: 0,
        decoded: None,
        millis: 0,
        error: None,
    };
    if !result.registered {
        result.error = Some("not registered".into());
        return result;
    }
    let outcome = (|| -> Result<Counted> {
        let Some(spec) = spec(name) else {
            return Err(MediaError::MissingElement(format!(
                "{name} (unknown to roombox)"
            )));
        };
        let enc = make(name)?;
        configure(&enc, spec, 500, 30)?;
        probe_chain(
            name,
            enc,
            parse_caps(spec.caps)?,
            timeout.saturating_sub(started.elapsed()),
        )
    })();
    result.millis = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(c) => {
            result.frames = c.encoded;
            result.decoded = c.decoded;
            result.error = c.verdict();
            result.works = result.error.is_none();
        }
        Err(e) => result.error = Some(e.to_string()),
    }
    result
}

/// What came out of a probe's encoder, and of the decoder after it when one is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    encoded: u32,
    decoded: Option<u32>,
}

impl Counted {
    /// Why these counts do not make a working encoder, if they do not.
    fn verdict(&self) -> Option<String> {
        match (self.encoded, self.decoded) {
            (0, _) => Some(format!(
                "took {PROBE_FRAMES} frames and put out none (reached EOS with no output)"
            )),
            (n, Some(0)) => Some(format!("put out {n} frames, none of which decodes")),
            _ => None,
        }
    }
}

/// The H.264 decoders the probe checks output with, in order; none installed means frames are
/// counted only.
const PROBE_DECODERS: &[&str] = &["avdec_h264", "openh264dec"];

/// Runs test frames through `enc` (already configured) to EOS, counting encoded buffers and, when
/// a software decoder is installed, decoded frames.
fn probe_chain(
    name: &str,
    enc: gst::Element,
    out_caps: gst::Caps,
    timeout: Duration,
) -> Result<Counted> {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let pipeline = gst::Pipeline::new();
    let src = make("videotestsrc")?;
    set(&src, "num-buffers", &PROBE_FRAMES.to_string())?;
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
    let out = make("capsfilter")?;
    out.set_property("caps", out_caps);
    let parse = make("h264parse")?;
    let decoder = PROBE_DECODERS.iter().find(|d| registered(d));
    let mut chain = vec![src, caps, conv, enc, out.clone(), parse];
    if let Some(d) = decoder {
        chain.push(make(d)?);
    }
    let sink = make("fakesink")?;
    chain.push(sink.clone());
    super::element::add_chain(&pipeline, &chain, "the probe pipeline")?;
    let count = |element: &gst::Element, pad: &str| -> Result<Arc<AtomicU32>> {
        let n = Arc::new(AtomicU32::new(0));
        let seen = n.clone();
        element
            .static_pad(pad)
            .ok_or_else(|| MediaError::Start(format!("the probe's {pad} pad")))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                seen.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        Ok(n)
    };
    let encoded = count(&out, "src")?;
    let decoded = count(&sink, "sink")?;
    let run = || -> Result<()> {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Start(format!("{name} (PLAYING)")))?;
        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::Start("the probe's bus".into()))?;
        match bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
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
    r.map(|()| Counted {
        encoded: encoded.load(Ordering::Relaxed),
        decoded: decoder.map(|_| decoded.load(Ordering::Relaxed)),
    })
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

/// Applies an encoder's properties for content, on top of [`configure`].
pub fn configure_content(enc: &gst::Element, spec: &EncoderSpec) -> Result<()> {
    for (k, v) in spec.content {
        set(enc, k, v)?;
    }
    Ok(())
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
            frames: 0,
            decoded: None,
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
        assert_eq!(r.frames, PROBE_FRAMES, "{r:?}");
        assert_eq!(
            r.decoded,
            Some(PROBE_FRAMES),
            "avdec_h264 is installed here: {r:?}"
        );
        let r = probe("v4l2h264enc", Duration::from_secs(10));
        assert!(!r.works);
    }

    /// An element that takes frames and puts out nothing, as a registered encoder with no
    /// hardware behind it can: it still reaches EOS, and the probe must not call it working.
    #[test]
    fn an_encoder_that_puts_out_nothing_is_broken_though_it_reaches_eos() {
        gst::init().unwrap();
        let silent = gst::parse::bin_from_description(
            "x264enc tune=zerolatency ! identity drop-probability=1.0",
            true,
        )
        .unwrap();
        let caps = parse_caps("video/x-h264").unwrap();
        let c = probe_chain("silent", silent.upcast(), caps, Duration::from_secs(10)).unwrap();
        assert_eq!(c.encoded, 0);
        let why = c.verdict().expect("not working");
        assert!(why.contains("put out none"), "{why}");
        // The same chain without the drop works, so the count is what failed it.
        let real = make("x264enc").unwrap();
        configure(&real, spec("x264enc").unwrap(), 500, 30).unwrap();
        let caps = parse_caps(spec("x264enc").unwrap().caps).unwrap();
        let c = probe_chain("x264enc", real, caps, Duration::from_secs(10)).unwrap();
        assert_eq!(c.verdict(), None, "{c:?}");
        // Output that does not decode is not working either.
        let garbled = Counted {
            encoded: 8,
            decoded: Some(0),
        };
        assert!(garbled.verdict().unwrap().contains("none of which decodes"));
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

//! Small helpers for building GStreamer elements with errors, not panics.

use super::error::{MediaError, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

/// Makes an element, with an error that names it.
pub fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory.to_string()))
}

/// Parses caps from a string.
pub fn parse_caps(s: &str) -> Result<gst::Caps> {
    s.parse::<gst::Caps>().map_err(|_| MediaError::Property {
        element: "capsfilter".into(),
        message: format!("bad caps `{s}`"),
    })
}

/// Sets a property from a string, with an error (not a panic) for an unknown property or value.
pub fn set(el: &impl IsA<gst::glib::Object>, name: &str, value: &str) -> Result<()> {
    let element = el.type_().to_string();
    let pspec = el.find_property(name).ok_or_else(|| MediaError::Property {
        element: element.clone(),
        message: format!("has no property `{name}`"),
    })?;
    let v = gst::glib::Value::deserialize_with_pspec(value, &pspec).map_err(|_| {
        MediaError::Property {
            element,
            message: format!("`{value}` is not a valid `{name}`"),
        }
    })?;
    el.set_property_from_value(name, &v);
    Ok(())
}

/// Adds `chain` to `bin` and links it in order.
pub fn add_chain(bin: &impl IsA<gst::Bin>, chain: &[gst::Element], what: &str) -> Result<()> {
    bin.add_many(chain).map_err(|e| MediaError::link(what, e))?;
    gst::Element::link_many(chain).map_err(|e| MediaError::link(what, e))
}

/// Raw audio as the box passes it between its parts: S16LE, interleaved.
pub fn s16_caps(rate: u32, channels: u32) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", rate as i32)
        .field("channels", channels as i32)
        .field("layout", "interleaved")
        .build()
}

/// A leaky queue: when whatever is behind it stalls, it drops its oldest buffers instead of
/// blocking the thread that feeds it.
pub fn leaky_queue(max_buffers: u32) -> Result<gst::Element> {
    let q = make("queue")?;
    set(&q, "leaky", "downstream")?;
    set(&q, "max-size-buffers", &max_buffers.to_string())?;
    set(&q, "max-size-bytes", "0")?;
    set(&q, "max-size-time", "0")?;
    Ok(q)
}

/// A capsfilter for raw I420 video at `width`x`height`, `fps` frames a second.
pub fn raw_video_caps(width: u32, height: u32, fps: u32) -> Result<gst::Element> {
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .build(),
    );
    Ok(caps)
}

/// An H.264 encode that ends in the form every consumer takes: `encoder_name` configured for
/// `kbps` and a keyframe every `gop_frames`, its own caps, `h264parse` repeating SPS/PPS at
/// each keyframe, and byte-stream access units. The encoder comes first.
pub fn h264_encode(
    encoder_name: &str,
    spec: &super::encoder::EncoderSpec,
    kbps: u32,
    gop_frames: u32,
) -> Result<[gst::Element; 4]> {
    let enc = make(encoder_name)?;
    super::encoder::configure(&enc, spec, kbps, gop_frames)?;
    let enc_caps = make("capsfilter")?;
    enc_caps.set_property("caps", parse_caps(spec.caps)?);
    let parse = make("h264parse")?;
    set(&parse, "config-interval", "-1")?;
    let out = make("capsfilter")?;
    out.set_property(
        "caps",
        parse_caps("video/x-h264,stream-format=byte-stream,alignment=au")?,
    );
    Ok([enc, enc_caps, parse, out])
}

/// Opus at `kbps`, 20 ms frames.
pub fn opus_chain(kbps: u32) -> Result<Vec<gst::Element>> {
    let enc = make("opusenc")?;
    set(&enc, "bitrate", &(kbps * 1000).to_string())?;
    set(&enc, "frame-size", "20")?;
    Ok(vec![make("audioconvert")?, enc])
}

/// AAC at `kbps`, parsed.
pub fn aac_chain(kbps: u32) -> Result<Vec<gst::Element>> {
    // voaacenc before avenc_aac: libavcodec alone costs about 40 MB of RSS.
    let factory = ["fdkaacenc", "voaacenc", "avenc_aac"]
        .into_iter()
        .find(|f| super::encoder::registered(f))
        .ok_or_else(|| MediaError::MissingElement("voaacenc or avenc_aac".into()))?;
    let enc = make(factory)?;
    set(&enc, "bitrate", &(kbps * 1000).to_string())?;
    Ok(vec![make("audioconvert")?, enc, make("aacparse")?])
}

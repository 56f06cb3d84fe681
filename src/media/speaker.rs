//! The speaker's end of the box: `volume → audioconvert → audioresample → S16LE mono at the
//! mic's rate → sink`, with the echo canceller's reference taken on the sink's own pad, so what
//! the canceller hears is exactly what the sink plays, after the mixer and the volume.
//!
//! The speaker plays S16LE at the mic's rate, mono, while processing runs (the capture has
//! configured the box's [`EchoPath`] by the time a room plays), so the reference needs no
//! resampling of its own; ALSA's `plug` layer (the `default` device, `plughw:`) or the file
//! behind a `filesink` take it as it is.

use super::echo::EchoPath;
use super::element::make;
use super::error::{MediaError, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

/// The chain in front of `sink`, the sink last. The first element is the volume (named
/// `speaker-volume`); `echo` gets every buffer the sink is handed.
pub fn chain(sink: gst::Element, echo: &EchoPath) -> Result<Vec<gst::Element>> {
    let volume = make("volume")?;
    volume.set_property("name", "speaker-volume");
    let caps = make("capsfilter")?;
    // Without processing nothing pins the speaker's format: it plays what the sink prefers.
    if let Some(rate) = echo.rate() {
        caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", rate as i32)
                .field("channels", 1i32)
                .field("layout", "interleaved")
                .build(),
        );
    }
    let pad = sink
        .static_pad("sink")
        .ok_or_else(|| MediaError::link("the speaker", "the sink has no sink pad"))?;
    let echo = echo.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buf) = info.buffer() {
            let rate = pad
                .current_caps()
                .and_then(|c| c.structure(0).and_then(|s| s.get::<i32>("rate").ok()))
                .unwrap_or(0);
            if let Ok(map) = buf.map_readable() {
                echo.render_s16(rate as u32, map.as_slice());
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(vec![
        volume,
        make("audioconvert")?,
        make("audioresample")?,
        caps,
        sink,
    ])
}

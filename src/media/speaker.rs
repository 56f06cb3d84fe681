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
use std::sync::Mutex;

/// The speaker's volume, percent, and the volume elements of the speakers that play now (a
/// box has one; the room's playback makes a new one per join).
static VOLUME: Mutex<(u32, Vec<gst::glib::WeakRef<gst::Element>>)> = Mutex::new((100, Vec::new()));

/// The format filters of the speakers that play now: a room joined before the capture has
/// configured processing (the capture starts when something first needs the mic) built its
/// speaker unpinned, and [`pin_format`] pins it once the rate is known.
static FORMATS: Mutex<Vec<gst::glib::WeakRef<gst::Element>>> = Mutex::new(Vec::new());

fn format_caps(rate: Option<u32>) -> gst::Caps {
    match rate {
        Some(rate) => crate::media::element::s16_caps(rate, 1),
        None => gst::Caps::new_any(),
    }
}

/// Makes every speaker playing now play S16LE mono at `rate` (the mic's, while processing
/// runs), or whatever its sink prefers with None. The capture calls it each time it configures
/// the box's [`EchoPath`], so a speaker built earlier is not left at a format the canceller
/// ignores.
pub fn pin_format(rate: Option<u32>) {
    if let Ok(mut f) = FORMATS.lock() {
        f.retain(|w| w.upgrade().is_some());
        for el in f.iter().filter_map(|w| w.upgrade()) {
            let caps = format_caps(rate);
            let same = el
                .property::<Option<gst::Caps>>("caps")
                .is_some_and(|c| c == caps);
            if !same {
                el.set_property("caps", caps);
            }
        }
    }
}

/// Sets the volume of the speaker, now and for every speaker built after. The reference is
/// taken after the volume, so the canceller hears the change as the room does: the echo path
/// it has learned stays the same.
pub fn set_volume(percent: u32) {
    let percent = percent.min(100);
    if let Ok(mut v) = VOLUME.lock() {
        v.0 = percent;
        v.1.retain(|w| w.upgrade().is_some());
        for el in v.1.iter().filter_map(|w| w.upgrade()) {
            el.set_property("volume", f64::from(percent) / 100.0);
        }
    }
}

/// The speaker's volume, percent.
pub fn volume() -> u32 {
    VOLUME.lock().map(|v| v.0).unwrap_or(100)
}

/// The chain in front of `sink`, the sink last. The first element is the volume (named
/// `speaker-volume`); `echo` gets every buffer the sink is handed.
pub fn chain(sink: gst::Element, echo: &EchoPath) -> Result<Vec<gst::Element>> {
    let volume = make("volume")?;
    volume.set_property("name", "speaker-volume");
    if let Ok(mut v) = VOLUME.lock() {
        volume.set_property("volume", f64::from(v.0) / 100.0);
        v.1.retain(|w| w.upgrade().is_some());
        v.1.push(volume.downgrade());
    }
    let caps = make("capsfilter")?;
    // Without processing nothing pins the speaker's format: it plays what the sink prefers.
    caps.set_property("caps", format_caps(echo.rate()));
    if let Ok(mut f) = FORMATS.lock() {
        f.retain(|w| w.upgrade().is_some());
        f.push(caps.downgrade());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_set_reaches_the_speakers_playing_and_those_built_after() {
        gst::init().unwrap();
        let echo = EchoPath::default();
        let first = chain(make("fakesink").unwrap(), &echo).unwrap();
        set_volume(40);
        let level = |e: &gst::Element| (e.property::<f64>("volume") * 100.0).round();
        assert_eq!(level(&first[0]), 40.0);
        let second = chain(make("fakesink").unwrap(), &echo).unwrap();
        assert_eq!(level(&second[0]), 40.0);
        set_volume(250);
        assert_eq!(volume(), 100, "clamped");
        assert_eq!(level(&first[0]), 100.0);
    }

    #[test]
    fn a_speaker_built_before_processing_runs_is_pinned_once_it_does() {
        gst::init().unwrap();
        let echo = EchoPath::default();
        let speaker = chain(make("fakesink").unwrap(), &echo).unwrap();
        let caps = |e: &gst::Element| e.property::<Option<gst::Caps>>("caps");
        assert!(caps(&speaker[3]).is_some_and(|c| c.is_any()), "unpinned");
        pin_format(Some(16_000));
        let pinned = caps(&speaker[3]).unwrap();
        let s = pinned.structure(0).unwrap();
        assert_eq!(s.get::<i32>("rate").unwrap(), 16_000);
        assert_eq!(s.get::<i32>("channels").unwrap(), 1);
        assert_eq!(s.get::<&str>("format").unwrap(), "S16LE");
    }
}

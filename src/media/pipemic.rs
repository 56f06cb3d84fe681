//! A pipe as the microphone (`[media.audio] source = "pipe"`): raw S16LE samples at the mic's
//! rate and channels, read from `file` as they come and stamped with the pipeline's clock on
//! arrival, as a sound card's would be. Its writer sets the pace.
//!
//! With the speaker written to a pipe too (`[room.playback] audio_sink = "filesink
//! location=…"`), the box's two audio ends are plain files, and any room simulator (the tests'
//! `roombox::media::echo::sim`, or another) can sit between them and drive the real binary.
//!
//! A writer that goes away is waited for: the pipe is opened again, which blocks until the next
//! writer comes. The reading thread ends when the pipeline lets go of the source.

use super::element::make;
use super::error::Result;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The source element, named by the caller.
pub fn source(path: &Path, rate: u32, channels: u32) -> Result<gst::Element> {
    let src = make("appsrc")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| super::MediaError::MissingElement("appsrc".into()))?;
    src.set_caps(Some(&crate::media::element::s16_caps(rate, channels)));
    src.set_is_live(true);
    src.set_format(gst::Format::Time);
    src.set_do_timestamp(true);
    // A reader that fell behind must not build up a backlog of old audio.
    src.set_max_bytes(u64::from(rate * channels * 2) / 5);
    src.set_property_from_str("leaky-type", "downstream");
    let weak = src.downgrade();
    let path = path.to_path_buf();
    let chunk = (rate / 100 * channels * 2) as usize;
    std::thread::Builder::new()
        .name("roombox-pipemic".into())
        .spawn(move || read(path, chunk, weak))
        .map_err(|e| super::MediaError::Start(format!("the pipe mic's reader: {e}")))?;
    Ok(src.upcast())
}

fn read(path: PathBuf, chunk: usize, src: gst::glib::WeakRef<gst_app::AppSrc>) {
    let mut warned = false;
    loop {
        if src.upgrade().is_none() {
            return;
        }
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if !warned {
                    tracing::warn!(path = %path.display(), error = %e, "pipe mic: cannot open");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        warned = false;
        let mut buf = vec![0u8; chunk];
        loop {
            if f.read_exact(&mut buf).is_err() {
                // The writer went away; wait for the next.
                std::thread::sleep(Duration::from_millis(50));
                break;
            }
            let Some(s) = src.upgrade() else { return };
            // Refused while the pipeline is not playing (yet, or any more): dropped, as a
            // sound card's samples are then.
            let _ = s.push_buffer(gst::Buffer::from_slice(buf.clone()));
        }
    }
}

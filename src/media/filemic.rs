//! A file played as the microphone (`[media.audio] source = "file"`): a WAV, Opus or Ogg file,
//! looped, at real time, so the tests and a demo that speaks hear the same words every run.
//!
//! The file is decoded once into memory at the capture's format, then an `appsrc` hands it out
//! in 20 ms buffers, timestamped on the pipeline's running time, and `identity sync=true` lets
//! each one go only when the clock reaches it. Seeking a decoder inside a live pipeline to loop
//! it would need its own segment handling in every consumer; replaying memory needs none, and
//! the mute, the tees and every consumer see exactly what a microphone gives them.

use super::element::make;
use super::error::{MediaError, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most decoded audio kept in memory: 64 MiB is about 11 minutes at 48 kHz mono. A longer
/// file is refused rather than quietly eating the box's memory.
const MAX_BYTES: usize = 64 << 20;
/// How long decoding may take before the file counts as unreadable.
const DECODE_TIMEOUT: Duration = Duration::from_secs(30);
/// Samples per buffer handed out, as a microphone's period.
const CHUNK: Duration = Duration::from_millis(20);

/// Decodes `path` whole into interleaved S16LE at `rate` and `channels`.
pub fn decode(path: &Path, rate: u32, channels: u32) -> Result<Vec<u8>> {
    let io = |m: &str| MediaError::io(path, m);
    let abs = std::fs::canonicalize(path).map_err(|e| MediaError::io(path, e))?;
    let uri =
        gst::glib::filename_to_uri(&abs, None).map_err(|e| io(&format!("not a file URI: {e}")))?;
    let pipeline = gst::Pipeline::with_name("roombox-filemic-decode");
    let dec = make("uridecodebin")?;
    dec.set_property("uri", uri.as_str());
    let conv = make("audioconvert")?;
    let res = make("audioresample")?;
    let sink = gst_app::AppSink::builder()
        .caps(&caps(rate, channels))
        .sync(false)
        .build();
    pipeline
        .add_many([&dec, &conv, &res, sink.upcast_ref()])
        .map_err(|e| MediaError::link("file mic decode", e))?;
    gst::Element::link_many([&conv, &res, sink.upcast_ref()])
        .map_err(|e| MediaError::link("file mic decode", e))?;
    let conv_sink = conv
        .static_pad("sink")
        .ok_or_else(|| MediaError::link("file mic decode", "audioconvert has no sink pad"))?;
    dec.connect_pad_added(move |_, pad| {
        let audio = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
            .unwrap_or(false);
        if audio && !conv_sink.is_linked() {
            let _ = pad.link(&conv_sink);
        }
    });
    let result = pull_all(&pipeline, &sink, path);
    let _ = pipeline.set_state(gst::State::Null);
    let data = result?;
    if data.is_empty() {
        return Err(io("has no audio"));
    }
    Ok(data)
}

fn pull_all(pipeline: &gst::Pipeline, sink: &gst_app::AppSink, path: &Path) -> Result<Vec<u8>> {
    let io = |m: String| MediaError::io(path, m);
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| io("cannot be decoded".into()))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| io("the decoder has no bus".into()))?;
    let deadline = Instant::now() + DECODE_TIMEOUT;
    let mut data = Vec::new();
    loop {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(io(format!("cannot be decoded: {}", e.error())));
            }
        }
        if Instant::now() > deadline {
            return Err(io(format!("decoding took over {DECODE_TIMEOUT:?}")));
        }
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(sample) => {
                if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                    data.extend_from_slice(map.as_slice());
                }
                if data.len() > MAX_BYTES {
                    return Err(io(format!(
                        "decodes to more than {} MiB; use a shorter file",
                        MAX_BYTES >> 20
                    )));
                }
            }
            None if sink.is_eos() => return Ok(data),
            None => {}
        }
    }
}

fn caps(rate: u32, channels: u32) -> gst::Caps {
    crate::media::element::s16_caps(rate, channels)
}

/// Where the looping source is in the file.
struct Cursor {
    data: Vec<u8>,
    pos: usize,
    /// Running time of the next buffer; set from the clock when the first one is asked for.
    next: Option<gst::ClockTime>,
}

/// A live source playing `path` in a loop at `rate` and `channels`: a bin of `appsrc !
/// identity sync=true` with one src pad. The file is decoded here, so a bad file is an error
/// when the pipeline is built, not a silent mic.
pub fn source(path: &Path, rate: u32, channels: u32) -> Result<gst::Element> {
    let data = decode(path, rate, channels)?;
    let frame = 2 * channels as usize;
    let chunk = (rate as usize * CHUNK.as_millis() as usize / 1000) * frame;
    let cursor = Arc::new(Mutex::new(Cursor {
        data,
        pos: 0,
        next: None,
    }));
    let src = gst_app::AppSrc::builder()
        .caps(&caps(rate, channels))
        .is_live(true)
        .format(gst::Format::Time)
        .max_bytes(chunk as u64 * 4)
        .build();
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                let Ok(mut c) = cursor.lock() else {
                    return;
                };
                let start = match c.next {
                    Some(t) => t,
                    None => src.current_running_time().unwrap_or(gst::ClockTime::ZERO),
                };
                let mut out = Vec::with_capacity(chunk);
                while out.len() < chunk {
                    let take = (chunk - out.len()).min(c.data.len() - c.pos);
                    out.extend_from_slice(&c.data[c.pos..c.pos + take]);
                    c.pos = (c.pos + take) % c.data.len();
                }
                let samples = (out.len() / frame) as u64;
                let duration =
                    gst::ClockTime::from_nseconds(samples * 1_000_000_000 / u64::from(rate));
                c.next = Some(start + duration);
                let mut buffer = gst::Buffer::from_mut_slice(out);
                if let Some(b) = buffer.get_mut() {
                    b.set_pts(start);
                    b.set_duration(duration);
                }
                let _ = src.push_buffer(buffer);
            })
            .build(),
    );
    let sync = make("identity")?;
    sync.set_property("sync", true);
    let bin = gst::Bin::new();
    bin.add_many([src.upcast_ref(), &sync])
        .map_err(|e| MediaError::link("file mic", e))?;
    src.link(&sync)
        .map_err(|e| MediaError::link("file mic", e))?;
    let pad = sync
        .static_pad("src")
        .ok_or_else(|| MediaError::link("file mic", "identity has no src pad"))?;
    let ghost = gst::GhostPad::builder_with_target(&pad)
        .map_err(|e| MediaError::link("file mic", e))?
        .name("src")
        .build();
    bin.add_pad(&ghost)
        .map_err(|e| MediaError::link("file mic", e))?;
    Ok(bin.upcast())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(path: &Path, secs: f64) {
        let status = std::process::Command::new("gst-launch-1.0")
            .args([
                "-q",
                "audiotestsrc",
                &format!("num-buffers={}", (secs * 100.0) as u32),
                "samplesperbuffer=160",
                "!",
                "audio/x-raw,rate=16000,channels=1",
                "!",
                "wavenc",
                "!",
                "filesink",
                &format!("location={}", path.display()),
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_file_decodes_to_the_capture_format() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        wav(&p, 1.0);
        let pcm = decode(&p, 48000, 2).unwrap();
        // One second at 48 kHz, 2 channels, 2 bytes a sample (resampler edges aside).
        assert!((pcm.len() as i64 - 192_000).abs() < 2_000, "{}", pcm.len());
    }

    #[test]
    fn garbage_and_missing_files_are_errors() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.wav");
        std::fs::write(&p, b"not audio at all").unwrap();
        assert!(decode(&p, 48000, 1).is_err());
        assert!(decode(&dir.path().join("none.wav"), 48000, 1).is_err());
    }

    #[test]
    fn the_source_plays_in_a_loop_at_real_time() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        wav(&p, 0.3);
        let pipeline = gst::Pipeline::new();
        let src = source(&p, 16000, 1).unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add_many([&src, sink.upcast_ref()]).unwrap();
        src.link(&sink).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let t0 = Instant::now();
        let mut bytes = 0usize;
        while t0.elapsed() < Duration::from_secs(1) {
            if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                bytes += s.buffer().map(|b| b.size()).unwrap_or(0);
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        // A 0.3 s file gives about 1 s of audio in 1 s: looped, and not faster than real time.
        let secs = bytes as f64 / 32_000.0;
        assert!((0.7..1.3).contains(&secs), "{secs} s of audio in 1 s");
    }
}

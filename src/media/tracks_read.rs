//! Reading a recording's participant tracks (see [`super::tracks`]): every audio track decoded
//! apart to S16LE mono, kept when its tags name a participant.

use super::element::make;
use super::error::{MediaError, Result};
use super::tracks::{participant_of, Voice};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most decoded audio kept per track: 64 MiB is about 35 minutes at 16 kHz.
const MAX_BYTES: usize = 64 << 20;
/// How long decoding may take before the file counts as unreadable.
const DECODE_TIMEOUT: Duration = Duration::from_secs(120);

/// One audio track being decoded.
struct Reading {
    sink: gst_app::AppSink,
    pcm: Arc<Mutex<Pcm>>,
}

/// A track's audio from its first piece, and where that piece is in the file.
#[derive(Default)]
struct Pcm {
    first: Option<gst::ClockTime>,
    data: Vec<u8>,
}

/// See [`super::tracks::read_voices`].
pub(super) fn read(path: &Path, rate: u32) -> Result<Vec<Voice>> {
    let what = "reading the participants' tracks";
    let abs = std::fs::canonicalize(path).map_err(|e| MediaError::io(path, e))?;
    let uri = gst::glib::filename_to_uri(&abs, None)
        .map_err(|e| MediaError::io(path, format!("not a file URI: {e}")))?;
    let pipeline = gst::Pipeline::with_name("roombox-tracks-read");
    let dec = make("uridecodebin")?;
    dec.set_property("uri", uri.as_str());
    // Decode the audio only: the picture stops at its parser and is left unlinked.
    let caps: gst::Caps = "audio/x-raw; video/x-h264"
        .parse()
        .map_err(|e| MediaError::link(what, e))?;
    dec.set_property("caps", &caps);
    pipeline.add(&dec).map_err(|e| MediaError::link(what, e))?;
    let readings: Arc<Mutex<Vec<Reading>>> = Arc::default();
    let list = readings.clone();
    let weak = pipeline.downgrade();
    dec.connect_pad_added(move |_, pad| {
        let audio = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
            .unwrap_or(false);
        let Some(pipeline) = weak.upgrade().filter(|_| audio) else {
            return;
        };
        match branch(&pipeline, pad, rate) {
            Ok(r) => crate::sync::lock(&list).push(r),
            Err(e) => tracing::warn!("{what}: {e}"),
        }
    });
    let result = run(&pipeline, path, &readings);
    let voices = result.map(|()| {
        let readings = crate::sync::lock(&readings);
        // A segment after the first goes on from the one before (splitmuxsink keeps the
        // timeline): times are from the segment's first audio, in any track.
        let origin = readings
            .iter()
            .filter_map(|r| crate::sync::lock(&r.pcm).first)
            .min()
            .unwrap_or(gst::ClockTime::ZERO);
        readings
            .iter()
            .filter_map(|r| {
                let (id, name) = tags_of(&r.sink)?;
                let mut got = crate::sync::lock(&r.pcm);
                let late = got.first.map_or(0, |f| bytes_at(f - origin, rate));
                let mut pcm = vec![0u8; late];
                pcm.append(&mut got.data);
                Some(Voice { id, name, pcm })
            })
            .collect()
    });
    let _ = pipeline.set_state(gst::State::Null);
    voices
}

/// `pad → audioconvert → audioresample → appsink (S16LE mono at rate)`, collecting the audio
/// at its place in time (silence where the track has a gap).
fn branch(pipeline: &gst::Pipeline, pad: &gst::Pad, rate: u32) -> Result<Reading> {
    let what = "a participant's track";
    let conv = make("audioconvert")?;
    let res = make("audioresample")?;
    let sink = gst_app::AppSink::builder()
        .caps(&crate::media::element::s16_caps(rate, 1))
        .sync(false)
        .build();
    let chain = [conv.clone(), res, sink.clone().upcast()];
    pipeline
        .add_many(&chain)
        .map_err(|e| MediaError::link(what, e))?;
    gst::Element::link_many(&chain).map_err(|e| MediaError::link(what, e))?;
    for e in chain.iter().rev() {
        e.sync_state_with_parent()
            .map_err(|_| MediaError::Start(what.into()))?;
    }
    let conv_sink = conv
        .static_pad("sink")
        .ok_or_else(|| MediaError::link(what, "audioconvert has no pad"))?;
    pad.link(&conv_sink)
        .map_err(|e| MediaError::link(what, e))?;
    let pcm: Arc<Mutex<Pcm>> = Arc::default();
    let out = pcm.clone();
    let tolerance = bytes_at(gst::ClockTime::from_mseconds(10), rate);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let mut pcm = crate::sync::lock(&out);
                if let Some(pts) = buffer.pts() {
                    let first = *pcm.first.get_or_insert(pts);
                    let at = bytes_at(pts.saturating_sub(first), rate);
                    // A gap of more than 10 ms becomes silence.
                    if at > pcm.data.len() + tolerance {
                        pcm.data.resize(at, 0);
                    }
                }
                if let Ok(map) = buffer.map_readable() {
                    pcm.data.extend_from_slice(map.as_slice());
                }
                match pcm.data.len() > MAX_BYTES {
                    true => Err(gst::FlowError::Error),
                    false => Ok(gst::FlowSuccess::Ok),
                }
            })
            .build(),
    );
    Ok(Reading { sink, pcm })
}

fn run(pipeline: &gst::Pipeline, path: &Path, readings: &Mutex<Vec<Reading>>) -> Result<()> {
    let io = |m: String| MediaError::io(path, m);
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| io("cannot be decoded".into()))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| io("the decoder has no bus".into()))?;
    let deadline = Instant::now() + DECODE_TIMEOUT;
    loop {
        if Instant::now() > deadline {
            return Err(io(format!("decoding took over {DECODE_TIMEOUT:?}")));
        }
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => return Ok(()),
            Some(gst::MessageView::Error(e)) => {
                let too_long = crate::sync::lock(readings)
                    .iter()
                    .any(|r| crate::sync::lock(&r.pcm).data.len() > MAX_BYTES);
                return Err(io(match too_long {
                    true => format!("a track decodes to more than {} MiB", MAX_BYTES >> 20),
                    false => format!("cannot be decoded: {}", e.error()),
                }));
            }
            _ => {}
        }
    }
}

/// Where `t` into a track is in S16LE mono at `rate`, in bytes (whole samples).
fn bytes_at(t: gst::ClockTime, rate: u32) -> usize {
    (t.nseconds().saturating_mul(u64::from(rate)) / 1_000_000_000) as usize * 2
}

/// The participant a decoded track's tags name.
fn tags_of(sink: &gst_app::AppSink) -> Option<(String, String)> {
    let pad = sink.static_pad("sink")?;
    (0..8)
        .map_while(|i| pad.sticky_event::<gst::event::Tag>(i))
        .find_map(|ev| participant_of(ev.tag()))
}

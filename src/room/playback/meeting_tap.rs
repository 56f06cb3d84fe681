//! Each remote participant's decoded video and audio, tapped for the meeting feed
//! (`media::meeting`): `tee → leaky queue → [decoder] → appsink`, into the [`MeetingHub`].
//!
//! A tap is made the first time the hub opens (`Playback::sync_meeting`), so a box whose outputs
//! never take the meeting makes no decoder for it (libav stays unloaded where remote video is
//! not shown). While the hub is closed again, a probe drops everything at the tee, so nothing
//! is decoded or converted for nobody. A box that shows no remote video taps the encoded
//! frames and decodes them here only while the hub is open, starting at a keyframe; one that
//! shows them taps the frames it decoded for the screen.

use crate::media::element::{add_chain, leaky_queue, make};
use crate::media::meeting::MeetingHub;
use crate::media::MediaError;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the tap takes from its tee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tapped {
    /// H.264 access units: decoded in the tap.
    Encoded,
    /// Decoded frames.
    Decoded,
    /// Decoded audio.
    Audio,
}

/// The rate the meeting's inputs carry audio at (the mixer converts to the mic's).
const RATE: i32 = 48_000;

/// Adds the tap on `tee` to the playing `pipeline` and returns its elements. They play before
/// the tee's new pad is linked, so the tee never pushes into a flushing pad.
pub(super) fn add(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    participant: &str,
    tapped: Tapped,
    decoder: &str,
) -> Result<Vec<gst::Element>, MediaError> {
    let what = "the meeting tap";
    let hub = MeetingHub::shared();
    let mut chain = vec![leaky_queue(if tapped == Tapped::Audio { 50 } else { 2 })?];
    match tapped {
        Tapped::Encoded => chain.extend([make(decoder)?, make("videoconvert")?]),
        Tapped::Decoded => {}
        Tapped::Audio => {
            let caps = make("capsfilter")?;
            caps.set_property("caps", crate::media::element::s16_caps(RATE as u32, 1));
            chain.extend([make("audioconvert")?, make("audioresample")?, caps]);
        }
    }
    let sink = hub.sink(participant, tapped != Tapped::Audio);
    chain.push(sink.upcast());
    add_chain(pipeline, &chain, what)?;
    for e in chain.iter().rev() {
        e.sync_state_with_parent()
            .map_err(|_| MediaError::Start(what.into()))?;
    }
    let pad = tee
        .request_pad_simple("src_%u")
        .ok_or_else(|| MediaError::link(what, "the tee gave no pad"))?;
    // Closed: dropped. Encoded video starts again at a keyframe after each reopening.
    let need_key = Arc::new(AtomicBool::new(true));
    let asked = Arc::new(AtomicBool::new(false));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if !hub.is_open() {
            need_key.store(true, Ordering::Relaxed);
            asked.store(false, Ordering::Relaxed);
            return gst::PadProbeReturn::Drop;
        }
        if tapped == Tapped::Encoded && need_key.load(Ordering::Relaxed) {
            let key = info
                .buffer()
                .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            if !key {
                // Once per wait: the senders are asked for one (see `session::tasks`).
                if !asked.swap(true, Ordering::Relaxed) {
                    hub.want_keyframes();
                }
                return gst::PadProbeReturn::Drop;
            }
            asked.store(false, Ordering::Relaxed);
            need_key.store(false, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    pad.link(
        &chain[0]
            .static_pad("sink")
            .ok_or_else(|| MediaError::link(what, "the queue has no sink pad"))?,
    )
    .map_err(|e| MediaError::link(what, e))?;
    Ok(chain)
}

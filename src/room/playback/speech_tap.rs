//! Each remote participant's speech, tapped for the transcriber (`media::pcm::PcmHub`).

use crate::media::element::{add_chain, leaky_queue, make};
use crate::media::pcm::{PcmHub, SPEECH_RATE};
use crate::media::MediaError;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// `tee → leaky queue → audioconvert → audioresample → S16LE 16 kHz mono → appsink`, which
/// hands the participant's speech to the transcriber's hub. While the hub is closed a probe
/// drops the audio at the tee, so nothing is converted for nobody; the leaky queue keeps a
/// slow transcriber from ever holding the speaker's audio.
pub(super) fn add(
    pipeline: &gst::Pipeline,
    speech: &PcmHub,
    tee: &gst::Element,
    participant: &str,
) -> Result<Vec<gst::Element>, MediaError> {
    let what = "the speech tap";
    let q = leaky_queue(50)?;
    let conv = make("audioconvert")?;
    let res = make("audioresample")?;
    let sink = gst_app::AppSink::builder()
        .caps(&crate::media::element::s16_caps(SPEECH_RATE, 1))
        .sync(false)
        .async_(false)
        .build();
    let hub = speech.clone();
    let who = participant.to_string();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                if let Ok(sample) = s.pull_sample() {
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        hub.push_s16(&who, map.as_slice());
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let elements = vec![q, conv, res, sink.upcast()];
    add_chain(pipeline, &elements, what)?;
    let pad = tee
        .request_pad_simple("src_%u")
        .ok_or_else(|| MediaError::link(what, "the tee gave no pad"))?;
    let hub = speech.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if hub.is_open() {
            gst::PadProbeReturn::Ok
        } else {
            gst::PadProbeReturn::Drop
        }
    });
    pad.link(
        &elements[0]
            .static_pad("sink")
            .ok_or_else(|| MediaError::link(what, "the queue has no sink pad"))?,
    )
    .map_err(|e| MediaError::link(what, e))?;
    Ok(elements)
}

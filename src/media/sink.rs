//! Attaching and detaching appsinks on the capture pipeline's tees, while it plays.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// An appsink fed by one tee of the capture pipeline.
pub struct Attached {
    tee: gst::Element,
    teepad: gst::Pad,
    appsink: gst_app::AppSink,
}

/// Adds an appsink on a new branch of `tee` that hands every sample to `on_sample`, which runs on
/// the encoder's streaming thread and must not block.
pub fn attach(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    on_sample: impl Fn(gst::Sample) + Send + Sync + 'static,
) -> Result<Attached, String> {
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .enable_last_sample(false)
        .max_buffers(4)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    if let Ok(sample) = sink.pull_sample() {
                        on_sample(sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    pipeline
        .add(&appsink)
        .map_err(|e| format!("cannot add appsink: {e}"))?;
    let teepad = tee
        .request_pad_simple("src_%u")
        .ok_or("the tee gave no pad")?;
    let sinkpad = appsink.static_pad("sink").ok_or("appsink has no pad")?;
    teepad
        .link(&sinkpad)
        .map_err(|e| format!("cannot link appsink: {e:?}"))?;
    appsink
        .sync_state_with_parent()
        .map_err(|e| format!("appsink did not start: {e}"))?;
    Ok(Attached {
        tee: tee.clone(),
        teepad,
        appsink,
    })
}

impl Attached {
    /// Unlinks the appsink once its branch is idle, then removes it, without disturbing the tee's
    /// other branches.
    pub fn detach(self) {
        let Attached {
            tee,
            teepad,
            appsink,
        } = self;
        let sinkpad = appsink.static_pad("sink");
        teepad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            if let Some(sp) = &sinkpad {
                let _ = pad.unlink(sp);
            }
            tee.release_request_pad(pad);
            let sink = appsink.clone();
            sink.call_async(|el| {
                let _ = el.set_state(gst::State::Null);
                if let Some(parent) = el.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) {
                    let _ = parent.remove(el);
                }
            });
            gst::PadProbeReturn::Remove
        });
    }
}

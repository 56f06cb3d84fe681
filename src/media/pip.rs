//! `program = "pip"`: the share with the camera in a corner, composed and encoded once while a
//! share runs, for every local output that takes the program. The room still gets the camera
//! and the share as separate streams.
//!
//! ```text
//! share raw tee → queue ─────────────┐
//! camera raw tee → leaky queue ──────┴→ compositor → I420 WxH@fps → queue → enc → h264parse → pip head → piptee
//! ```
//!
//! The camera's branch joins its tee while the camera runs, the way a consumer's does
//! (playing before linked, unlinked when its pad is idle), so the camera never sees a
//! flushing pad.

use super::consumer::KeyframeRequester;
use super::element::{add_chain, h264_encode, leaky_queue, make, raw_video_caps, set};
use super::encoder::EncoderSpec;
use super::error::{MediaError, Result};
use super::share::PREFIX;
use crate::config::ShareConfig;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::time::Duration;

/// The camera's picture in the corner: this part of the share's width and height.
const CORNER: u32 = 4;
/// The gap between the camera's picture and the frame's edges, pixels.
const MARGIN: u32 = 16;

/// The picture-in-picture encode: its head and tee live as long as the pipeline.
pub struct Pip {
    head: gst::Element,
    /// Program consumers attach here in pip mode.
    pub tee: gst::Element,
    running: Option<Running>,
}

struct Running {
    elements: Vec<gst::Element>,
    camera_tee: gst::Element,
    camera_pad: gst::Pad,
}

impl Pip {
    /// Adds the head and tee to `pipeline`.
    pub fn build(pipeline: &gst::Pipeline) -> Result<Pip> {
        let head = make("identity")?;
        head.set_property("name", format!("{PREFIX}pip-head"));
        let tee = make("tee")?;
        tee.set_property("allow-not-linked", true);
        tee.set_property("name", "piptee");
        add_chain(pipeline, &[head.clone(), tee.clone()], "pip")?;
        Ok(Pip {
            head,
            tee,
            running: None,
        })
    }

    /// Keyframe requests of the program's consumers in pip mode.
    pub fn keyframes(&self) -> KeyframeRequester {
        KeyframeRequester::new(Some(self.head.clone()))
    }

    /// Composes `share_tee`'s frames with `camera_tee`'s in a corner and encodes them. The
    /// share's chain is being built (not yet playing); the camera plays.
    pub fn start(
        &mut self,
        pipeline: &gst::Pipeline,
        share_tee: &gst::Element,
        camera_tee: &gst::Element,
        c: &ShareConfig,
        encoder_name: &str,
        spec: &EncoderSpec,
    ) -> Result<()> {
        let comp = make("compositor")?;
        set(&comp, "background", "black")?;
        // Start at the first frame's time, not at zero: the pipeline has been running.
        set(&comp, "start-time-selection", "first")?;
        let out = raw_video_caps(c.width, c.height, c.fps)?;
        let q = leaky_queue(2)?;
        let [enc, enc_caps, parse, h264] =
            h264_encode(encoder_name, spec, c.bitrate_kbps, c.gop_frames())?;
        // Content at the share's rate, as the share's own encode.
        super::encoder::configure_content(&enc, spec)?;
        let chain = vec![
            comp.clone(),
            out,
            q,
            make("videoconvert")?,
            enc,
            enc_caps,
            parse,
            h264,
        ];
        let share_q = leaky_queue(2)?;
        let camera_q = leaky_queue(2)?;
        let mut elements = chain.clone();
        elements.extend([share_q.clone(), camera_q.clone()]);
        for (i, e) in elements.iter().enumerate() {
            e.set_property("name", format!("{PREFIX}pip-{i}"));
        }
        let fail = |e: &dyn std::fmt::Display| MediaError::link("pip", e.to_string());
        add_chain(pipeline, &chain, "pip")?;
        pipeline
            .add_many([&share_q, &camera_q])
            .map_err(|e| fail(&e))?;
        chain
            .last()
            .expect("the chain is not empty")
            .link(&self.head)
            .map_err(|e| fail(&e))?;
        let share_pad = comp
            .request_pad_simple("sink_%u")
            .ok_or_else(|| fail(&"no compositor pad"))?;
        share_pad.set_property("zorder", 0u32);
        let camera_pad_in = comp
            .request_pad_simple("sink_%u")
            .ok_or_else(|| fail(&"no compositor pad"))?;
        let (w, h) = (c.width / CORNER, c.height / CORNER);
        camera_pad_in.set_property("zorder", 1u32);
        camera_pad_in.set_property("width", w as i32);
        camera_pad_in.set_property("height", h as i32);
        camera_pad_in.set_property("xpos", (c.width - w - MARGIN) as i32);
        camera_pad_in.set_property("ypos", (c.height - h - MARGIN) as i32);
        let src = |e: &gst::Element| e.static_pad("src").ok_or_else(|| fail(&"no src pad"));
        src(&share_q)?.link(&share_pad).map_err(|e| fail(&e))?;
        src(&camera_q)?.link(&camera_pad_in).map_err(|e| fail(&e))?;
        share_tee.link(&share_q).map_err(|e| fail(&e))?;
        // Downstream first; the camera's branch is linked to its tee only once it plays.
        for e in chain.iter().rev().chain([&share_q, &camera_q]) {
            if e.sync_state_with_parent().is_err() {
                remove(pipeline, &elements);
                return Err(MediaError::Start("pip".into()));
            }
        }
        let camera_pad = camera_tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| fail(&"the camera's raw tee gave no pad"))?;
        let sink = camera_q.static_pad("sink").ok_or_else(|| fail(&"no pad"))?;
        camera_pad.link(&sink).map_err(|e| fail(&e))?;
        self.running = Some(Running {
            elements,
            camera_tee: camera_tee.clone(),
            camera_pad,
        });
        Ok(())
    }

    /// Unlinks the camera's branch once its pad is idle (the camera never waits), then takes
    /// the composition out.
    pub fn stop(&mut self, pipeline: &gst::Pipeline) {
        let Some(r) = self.running.take() else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let tee = r.camera_tee.clone();
        r.camera_pad
            .add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                if let Some(peer) = pad.peer() {
                    let _ = pad.unlink(&peer);
                }
                tee.release_request_pad(pad);
                let _ = tx.send(());
                gst::PadProbeReturn::Remove
            });
        if rx.recv_timeout(Duration::from_secs(1)).is_err() {
            tracing::warn!("pip: the camera's branch did not come idle");
        }
        remove(pipeline, &r.elements);
    }
}

fn remove(pipeline: &gst::Pipeline, elements: &[gst::Element]) {
    for e in elements {
        let _ = e.set_state(gst::State::Null);
    }
    let _ = pipeline.remove_many(elements);
}

//! Content share from the box: a second capture with its own encode, in the capture pipeline
//! beside the camera, started and stopped while the camera runs; and the "program" the local
//! outputs follow (the camera, or the share's own encode while there is one).
//!
//! ```text
//! grabber/pattern → convert/scale/rate → I420 WxH@fps → queue → convert → H.264 enc → h264parse ─┐
//!                                             (added at start-share, removed at stop-share)      │
//!                                                               share-head (identity) → sharetee ← consumers
//! ```
//!
//! The head and its tee live as long as the pipeline, so consumers that declare
//! [`Feed::Share`](super::Feed::Share) attach once and simply get nothing while no share runs.
//!
//! The program is not a third encode: a consumer that declares
//! [`Feed::Program`](super::Feed::Program) gets one branch on the camera's tee and one on the
//! share's, each behind a [`ProgramInput`] that lets through only the source on air. A switch
//! happens at the first keyframe of the source asked for, so the output never gets a frame it
//! cannot decode; the previous source plays until then.

use super::consumer::{FeedSink, KeyframeRequester, Pushed};
use super::element::{add_chain, h264_encode, leaky_queue, make, raw_video_caps, set};
use super::encoder::{self, EncoderSpec};
use super::error::{MediaError, Result};
use crate::config::{ShareConfig, ShareSource};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Every element of the share's chain is named with this prefix, so an error on the bus from
/// the grabber stops the share and not the camera.
pub const PREFIX: &str = "share-";

/// Whether a bus message came from the share's chain.
pub fn is_share_element(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Which source the program shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProgramSource {
    Camera = 0,
    Share = 1,
}

impl ProgramSource {
    fn from_u8(v: u8) -> ProgramSource {
        if v == 1 {
            ProgramSource::Share
        } else {
            ProgramSource::Camera
        }
    }
}

/// The program's switch: the source asked for, and the one on air (which follows at the asked
/// source's next keyframe).
#[derive(Debug, Default)]
pub struct ProgramSwitch {
    want: AtomicU8,
    current: AtomicU8,
    /// The last running time handed on, in ns plus one (0: none yet).
    last_pts: AtomicU64,
}

impl ProgramSwitch {
    /// Asks for `source`; it goes on air at its next keyframe.
    pub fn want(&self, source: ProgramSource) {
        self.want.store(source as u8, Ordering::SeqCst);
    }

    /// The source on air.
    pub fn current(&self) -> ProgramSource {
        ProgramSource::from_u8(self.current.load(Ordering::SeqCst))
    }

    fn wanted(&self) -> ProgramSource {
        ProgramSource::from_u8(self.want.load(Ordering::SeqCst))
    }
}

/// One source's way into a program consumer's sink.
pub struct ProgramInput {
    pub source: ProgramSource,
    pub switch: Arc<ProgramSwitch>,
    pub sink: Arc<dyn FeedSink>,
}

impl FeedSink for ProgramInput {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        let me = self.source as u8;
        if self.switch.current.load(Ordering::SeqCst) == me {
            return self.forward(sample);
        }
        let key = sample
            .buffer()
            .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
        if key && self.switch.wanted() == self.source {
            self.switch.current.store(me, Ordering::SeqCst);
            return self.forward(sample);
        }
        // Not on air: dropped quietly (no keyframe request: the other source is fine).
        Pushed::Ok
    }
}

impl ProgramInput {
    /// Hands `sample` on with a running time after the last one's. The two encodes run apart
    /// (each frame's time is its capture time, and the share's encode takes longer), so the
    /// share's first frame can carry a time just before the camera's last; muxers refuse time
    /// going back, so such a frame is moved 1 ms after it.
    fn forward(&self, sample: &gst::Sample) -> Pushed {
        let pts = sample.buffer().and_then(|b| b.pts());
        let Some(rt) = super::recorder::running_time(sample, pts) else {
            return self.sink.push(sample);
        };
        let last = self.switch.last_pts.load(Ordering::SeqCst);
        let floor = (last > 0).then(|| gst::ClockTime::from_nseconds(last - 1));
        let (Some(floor), Some(pts)) = (floor.filter(|f| rt <= *f), pts) else {
            self.switch
                .last_pts
                .store(rt.nseconds() + 1, Ordering::SeqCst);
            return self.sink.push(sample);
        };
        let moved_rt = floor + gst::ClockTime::from_mseconds(1);
        let Some(mut buffer) = sample.buffer_owned() else {
            return Pushed::Ok;
        };
        buffer.make_mut().set_pts(pts + (moved_rt - rt));
        let caps = sample.caps_owned();
        let mut b = gst::Sample::builder().buffer(&buffer);
        if let Some(caps) = &caps {
            b = b.caps(caps);
        }
        if let Some(segment) = sample.segment() {
            b = b.segment(segment);
        }
        self.switch
            .last_pts
            .store(moved_rt.nseconds() + 1, Ordering::SeqCst);
        self.sink.push(&b.build())
    }
}

/// The share's part of the capture pipeline.
pub struct Share {
    config: ShareConfig,
    /// Where the chain ends while a share runs, and where consumers' keyframe requests enter.
    head: gst::Element,
    /// Consumers of the share attach here.
    pub tee: gst::Element,
    /// Encoded share frames so far (over every start).
    pub frames: Arc<AtomicU64>,
    /// The chain while a share runs: source first, the encoder at `encoder`.
    chain: Option<Vec<gst::Element>>,
    encoder: Option<gst::Element>,
    /// Drops frames after the rate conversion when the network tightens.
    decimator: Option<Arc<super::overload::Decimator>>,
    /// The share of its bitrate the network allows now (1.0: all of it).
    budget: f64,
    /// `program = "pip"`: the composition, and the camera's raw frames it takes.
    pip: Option<(super::pip::Pip, gst::Element)>,
    /// With `auto`, whether a V4L2 grabber delivers frames.
    grabber: Option<super::grabber::GrabberSignal>,
}

impl Share {
    /// Adds the share's head and tee to `pipeline` (nothing is captured until [`Share::start`]).
    pub fn build(
        pipeline: &gst::Pipeline,
        config: &ShareConfig,
        camera_raw: Option<gst::Element>,
    ) -> Result<Share> {
        let pip = match (config.program, camera_raw) {
            (crate::config::ProgramMode::Pip, Some(raw)) => {
                Some((super::pip::Pip::build(pipeline)?, raw))
            }
            _ => None,
        };
        let head = make("identity")?;
        head.set_property("name", format!("{PREFIX}head"));
        let tee = make("tee")?;
        tee.set_property("allow-not-linked", true);
        tee.set_property("name", "sharetee");
        add_chain(pipeline, &[head.clone(), tee.clone()], "share")?;
        let frames = Arc::new(AtomicU64::new(0));
        let f = frames.clone();
        head.static_pad("src")
            .ok_or_else(|| MediaError::link("share", "identity has no src pad"))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                f.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        Ok(Share {
            config: config.clone(),
            head,
            tee,
            frames,
            chain: None,
            encoder: None,
            decimator: None,
            budget: 1.0,
            pip,
            grabber: (config.auto && config.source == ShareSource::V4l2)
                .then(|| super::grabber::GrabberSignal::spawn(config.device.clone())),
        })
    }

    /// Whether a share is being captured.
    pub fn running(&self) -> bool {
        self.chain.is_some()
    }

    /// Where the program's consumers take the share: the composition in pip mode, else the
    /// share's own encode; with its keyframe requests.
    pub fn program_tee(&self) -> (gst::Element, KeyframeRequester) {
        match &self.pip {
            Some((pip, _)) => (pip.tee.clone(), pip.keyframes()),
            None => (self.tee.clone(), self.keyframes()),
        }
    }

    /// Keyframe requests for the share's consumers: they go upstream from the head to whichever
    /// encoder runs (and nowhere while none does).
    pub fn keyframes(&self) -> KeyframeRequester {
        KeyframeRequester::new(Some(self.head.clone()))
    }

    /// Whether the grabber has a signal, and why not: with `auto`, that a V4L2 grabber
    /// delivers frames (see `media::grabber`); without, that its stable link exists. The
    /// pattern always has one.
    pub fn signal(&mut self) -> (bool, String) {
        let frames = self.frames.load(Ordering::Relaxed);
        match (&mut self.grabber, self.config.source) {
            (Some(g), _) => g.now(frames),
            (None, ShareSource::None) => (false, "no share source".into()),
            (None, ShareSource::Test) => (true, String::new()),
            (None, ShareSource::V4l2) => {
                let there = std::path::Path::new(&self.config.device).exists();
                let why = if there {
                    String::new()
                } else {
                    format!("{} is not plugged in", self.config.device)
                };
                (there, why)
            }
        }
    }

    /// Builds the share's capture and encode with `encoder_name` and starts it in the playing
    /// `pipeline`. The camera's elements are not touched.
    pub fn start(
        &mut self,
        pipeline: &gst::Pipeline,
        encoder_name: &str,
        spec: &EncoderSpec,
    ) -> Result<()> {
        if self.chain.is_some() {
            return Ok(());
        }
        // The signal's tries leave the device to the share.
        if let Some(g) = self.grabber.as_mut() {
            g.hold(true);
        }
        let started = self.start_chain(pipeline, encoder_name, spec);
        if started.is_err() {
            if let Some(g) = self.grabber.as_mut() {
                g.hold(false);
            }
        }
        started
    }

    fn start_chain(
        &mut self,
        pipeline: &gst::Pipeline,
        encoder_name: &str,
        spec: &EncoderSpec,
    ) -> Result<()> {
        let c = &self.config;
        let src = match c.source {
            ShareSource::V4l2 => {
                let s = make("v4l2src")?;
                set(&s, "device", &c.device)?;
                s
            }
            ShareSource::Test => {
                let s = make("videotestsrc")?;
                s.set_property("is-live", true);
                // videotestsrc's moving ball, drawn on its static black frame: painting the ball
                // pattern cost more than encoding it (see media::sharepattern).
                set(&s, "pattern", "black")?;
                super::sharepattern::install(&s, c.width, c.height)?;
                // Stamped with the pipeline's running time as captured, like a grabber's.
                s.set_property("do-timestamp", true);
                s
            }
            ShareSource::None => return Err(MediaError::NoSource("share")),
        };
        let caps = raw_video_caps(c.width, c.height, c.fps)?;
        let q = leaky_queue(2)?;
        let [enc, enc_caps, parse, out_caps] =
            h264_encode(encoder_name, spec, c.bitrate_kbps, c.gop_frames())?;
        encoder::configure_content(&enc, spec)?;
        // The rate first: a grabber delivers 30 or 60 fps of 1080p, and converting and scaling
        // frames the share then drops cost most of its CPU (measured by examples/bench_share).
        // The pattern is made at the share's own size and rate.
        let mut chain = vec![src];
        if c.source == ShareSource::Test {
            chain.push(raw_video_caps(c.width, c.height, c.fps)?);
        }
        chain.extend([
            make("videorate")?,
            make("videoconvert")?,
            make("videoscale")?,
            caps.clone(),
            q,
            make("videoconvert")?,
            enc.clone(),
            enc_caps,
            parse,
            out_caps,
        ]);
        for (i, e) in chain.iter().enumerate() {
            e.set_property(
                "name",
                format!(
                    "{PREFIX}{i}-{}",
                    e.factory()
                        .map(|f| f.name().to_string())
                        .unwrap_or_default()
                ),
            );
        }
        // Content keeps its resolution when the network tightens: frames go first (WebRTC's
        // `maintain-resolution`), dropped here after the rate conversion.
        let decimator = super::overload::Decimator::new(c.fps);
        if let Some(pad) = caps.static_pad("src") {
            decimator.install(&pad);
        }
        let after_caps = chain.iter().position(|e| *e == caps).unwrap_or(0) + 1;
        // The raw share also goes to the meeting's composition (through its hub, only while
        // it is open) and, in pip mode, to the program's.
        let raw = make("tee")?;
        raw.set_property("allow-not-linked", true);
        raw.set_property("name", format!("{PREFIX}raw"));
        chain.insert(after_caps, raw.clone());
        add_chain(pipeline, &chain, "share")?;
        let last = chain.last().cloned().expect("the chain is not empty");
        if let Err(e) = last.link(&self.head) {
            remove(pipeline, &chain);
            return Err(MediaError::link("share", e));
        }
        match meeting_branch(pipeline, &raw) {
            Ok(branch) => chain.extend(branch),
            Err(e) => {
                remove(pipeline, &chain);
                return Err(e);
            }
        }
        let raw = self.pip.is_some().then_some(raw);
        if let (Some((pip, camera)), Some(raw)) = (self.pip.as_mut(), raw.as_ref()) {
            if let Err(e) = pip.start(pipeline, raw, camera, c, encoder_name, spec) {
                remove(pipeline, &chain);
                return Err(e);
            }
        }
        // Downstream first, so nothing pushes into an element still flushing.
        for e in chain.iter().rev() {
            if e.sync_state_with_parent().is_err() {
                let name = e.name().to_string();
                remove(pipeline, &chain);
                return Err(MediaError::Start(format!("share ({name})")));
            }
        }
        self.encoder = Some(enc);
        self.decimator = Some(decimator);
        self.chain = Some(chain);
        self.apply_budget(spec)
    }

    /// Stops and removes the share's capture and encode; the head, its tee and the consumers'
    /// branches stay (they get nothing until the next start).
    pub fn stop(&mut self, pipeline: &gst::Pipeline) {
        self.encoder = None;
        // Every element to NULL before anything is unlinked: an unlinked push would post a
        // not-linked error. Leaving the pipeline unlinks the chain from the head.
        if let Some(chain) = self.chain.take() {
            remove(pipeline, &chain);
        }
        let hub = super::meeting::MeetingHub::shared();
        hub.left(&super::meeting::share_id(super::meeting::compose::LOCAL));
        if let Some((pip, _)) = self.pip.as_mut() {
            pip.stop(pipeline);
        }
        if let Some(g) = self.grabber.as_mut() {
            g.hold(false);
        }
    }

    /// The network allows `budget` (0.0..=1.0) of the share's bitrate: the bitrate and the
    /// frame rate go down together, the resolution stays. Kept for the next start.
    pub fn set_budget(&mut self, spec: &EncoderSpec, budget: f64) -> Result<()> {
        self.budget = budget.clamp(0.05, 1.0);
        self.apply_budget(spec)
    }

    /// Frames per second the share sends now.
    pub fn fps_now(&self) -> u32 {
        budget_fps(self.config.fps, self.budget)
    }

    fn apply_budget(&self, spec: &EncoderSpec) -> Result<()> {
        if let Some(d) = &self.decimator {
            d.set(self.fps_now());
        }
        match &self.encoder {
            Some(e) => {
                let kbps = ((f64::from(self.config.bitrate_kbps) * self.budget) as u32).max(100);
                encoder::set_bitrate(e, spec, kbps, self.config.gop_frames())
            }
            None => Ok(()),
        }
    }
}

/// The frame rate for a bitrate budget: in proportion, at least 1 fps.
pub fn budget_fps(fps: u32, budget: f64) -> u32 {
    ((f64::from(fps) * budget.clamp(0.0, 1.0)).round() as u32).clamp(1, fps.max(1))
}

/// `raw → leaky queue → appsink`: the share's frames to the meeting's hub, as the box's share
/// (the hub drops them while no composition takes them).
fn meeting_branch(pipeline: &gst::Pipeline, raw: &gst::Element) -> Result<Vec<gst::Element>> {
    let hub = super::meeting::MeetingHub::shared();
    let id = super::meeting::share_id(super::meeting::compose::LOCAL);
    let q = leaky_queue(2)?;
    q.set_property("name", format!("{PREFIX}meeting-queue"));
    let sink: gst::Element = hub.sink(&id, true).upcast();
    sink.set_property("name", format!("{PREFIX}meeting-sink"));
    let branch = vec![q, sink];
    add_chain(pipeline, &branch, "share")?;
    if let Err(e) = raw.link(&branch[0]) {
        remove(pipeline, &branch);
        return Err(MediaError::link("share", e));
    }
    Ok(branch)
}

/// Takes `chain` to NULL, source first (its streaming thread stops before what it feeds), and
/// out of `pipeline`.
fn remove(pipeline: &gst::Pipeline, chain: &[gst::Element]) {
    for e in chain {
        if let Err(err) = e.set_state(gst::State::Null) {
            tracing::warn!("{}: could not stop cleanly: {err}", e.name());
        }
    }
    let _ = pipeline.remove_many(chain);
}

#[cfg(test)]
mod tests {
    use super::budget_fps;

    #[test]
    fn the_frame_rate_follows_the_budget_and_never_stops() {
        assert_eq!(budget_fps(10, 1.0), 10);
        assert_eq!(budget_fps(10, 0.4), 4);
        assert_eq!(budget_fps(5, 0.01), 1);
        assert_eq!(budget_fps(15, 3.0), 15);
    }
}

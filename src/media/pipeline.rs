//! The capture pipeline: one capture and one encode per codec, ending in tees that consumers
//! attach to with appsinks.
//!
//! ```text
//! camera → convert/scale/rate → I420 caps → [camera-off blackout] → convert → H.264 enc → h264parse → vtee
//! mic → convert/resample → caps → [10 ms split → echo canceller] → volume(mute) → rawtee → opusenc → opustee
//!                                                              rawtee → AAC enc → aacparse → aactee  (on demand)
//! ```
//!
//! With `[media.share]`, the share's head and tee sit beside the camera's (see `share`); its
//! capture and encode are added and removed while the pipeline plays.
//!
//! The echo canceller (`echo`) sits before the mute and the raw tee, so every consumer gets the
//! processed mic, and the mute stays the last word on what leaves.
//!
//! Consumers never sit inside this pipeline: each attaches an appsink to a tee and feeds its own
//! pipeline (or a channel), so a consumer's failure (a full disk) cannot stop capture.

use super::consumer::{Feed, KeyframeRequester};
use super::element::{aac_chain, add_chain, leaky_queue, make, opus_chain, parse_caps, set};
use super::encoder::{self, EncoderSpec};

mod meeting;
#[cfg(feature = "test-util")]
mod stamp;
use super::error::{MediaError, Result};
use crate::config::{AudioSource, Config, VideoSource};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use meeting::local_name;
#[cfg(feature = "test-util")]
use stamp::stamp_frames;
#[cfg(feature = "test-util")]
pub use stamp::STAMP_ENV;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A built capture pipeline.
pub struct Capture {
    pub pipeline: gst::Pipeline,
    /// The video encoder, when there is video.
    pub encoder: Option<gst::Element>,
    /// The encoder's spec.
    pub spec: Option<&'static EncoderSpec>,
    /// The mute element, when there is audio.
    pub volume: Option<gst::Element>,
    /// Tee of H.264.
    pub vtee: Option<gst::Element>,
    /// Tee of raw audio (feeds the Opus and AAC encoders).
    pub rawtee: Option<gst::Element>,
    /// Tee of Opus.
    pub opustee: Option<gst::Element>,
    /// Tee of AAC, once a consumer asked for it.
    pub aactee: Option<gst::Element>,
    /// Tees of raw mono PCM by rate, once a consumer asked for them.
    pub pcmtees: std::collections::HashMap<u32, gst::Element>,
    /// Encoded video frames so far.
    pub frames: Arc<AtomicU64>,
    /// Encoded video bytes so far.
    pub video_bytes: Arc<AtomicU64>,
    /// Drops frames after the camera when the encoder is overloaded.
    pub decimator: Option<Arc<super::overload::Decimator>>,
    /// The encoder's load, read once a second.
    pub meter: Option<Arc<super::overload::Meter>>,
    /// Encoded Opus frames so far (the microphone's heartbeat: Opus runs whenever there is a mic).
    pub audio_frames: Arc<AtomicU64>,
    /// False sends black frames instead of the camera's.
    pub camera_on: Arc<AtomicBool>,
    /// The keyframe interval, in frames.
    pub gop_frames: u32,
    /// The share's head and tee, and its chain while a share runs (`[media.share]` set).
    pub share: Option<super::share::Share>,
    /// Which source the program consumers get.
    pub program: Arc<super::share::ProgramSwitch>,
    /// The camera's raw frames (after the camera-off blackout), for compositions.
    pub rawvtee: Option<gst::Element>,
    /// The meeting's composition while a consumer takes a meeting feed.
    pub meeting: Option<super::meeting::compose::Compose>,
    meeting_settings: super::meeting::compose::Settings,
    opus_kbps: u32,
    aac_kbps: u32,
}

fn tee() -> Result<gst::Element> {
    let t = make("tee")?;
    t.set_property("allow-not-linked", true);
    Ok(t)
}

/// Builds (but does not start) the capture pipeline for `config` with `encoder`.
pub fn build(
    config: &Config,
    encoder_name: Option<&str>,
    camera_on: Arc<AtomicBool>,
    mic_muted: bool,
) -> Result<Capture> {
    let pipeline = gst::Pipeline::with_name("roombox-capture");
    let v = &config.media.video;
    let a = &config.media.audio;
    let gop_frames =
        ((v.keyframe_interval.as_millis() as u64 * u64::from(v.fps)) / 1000).max(1) as u32;
    let frames = Arc::new(AtomicU64::new(0));
    let video_bytes = Arc::new(AtomicU64::new(0));
    let mut cap = Capture {
        pipeline: pipeline.clone(),
        encoder: None,
        spec: None,
        volume: None,
        vtee: None,
        rawtee: None,
        opustee: None,
        aactee: None,
        pcmtees: Default::default(),
        frames: frames.clone(),
        video_bytes: video_bytes.clone(),
        audio_frames: Arc::default(),
        decimator: None,
        meter: None,
        camera_on: camera_on.clone(),
        gop_frames,
        share: None,
        program: Arc::default(),
        rawvtee: None,
        meeting: None,
        meeting_settings: super::meeting::compose::Settings {
            kind: config.media.meeting.layout,
            hold: config.media.meeting.speaker_hold,
            size: (v.width, v.height),
            fps: v.fps,
            kbps: v.bitrate_kbps,
            gop_frames,
            rate: a.rate,
            channels: a.channels,
            local_name: local_name(config),
        },
        opus_kbps: a.opus_bitrate_kbps,
        aac_kbps: a.aac_bitrate_kbps,
    };

    if v.source != VideoSource::None {
        let name = encoder_name.ok_or(MediaError::NoEncoder)?;
        let spec =
            encoder::spec(name).ok_or_else(|| MediaError::MissingElement(name.to_string()))?;
        let src = match v.source {
            VideoSource::V4l2 => {
                let s = make("v4l2src")?;
                set(&s, "device", &v.device)?;
                s
            }
            VideoSource::Libcamera => {
                let s = make("libcamerasrc")?;
                if !v.device.is_empty() {
                    set(&s, "camera-name", &v.device)?;
                }
                s
            }
            VideoSource::Argus => {
                let s = make("nvarguscamerasrc")?;
                set(
                    &s,
                    "sensor-id",
                    if v.device.is_empty() { "0" } else { &v.device },
                )?;
                s
            }
            VideoSource::Test => {
                let s = make("videotestsrc")?;
                s.set_property("is-live", true);
                set(&s, "pattern", "smpte")?;
                if v.test_scroll > 0 {
                    s.set_property("horizontal-speed", v.test_scroll as i32);
                }
                #[cfg(feature = "test-util")]
                if std::env::var_os(STAMP_ENV).is_some() {
                    stamp_frames(&s);
                }
                s
            }
            VideoSource::None => unreachable!(),
        };
        src.set_property("name", "camera");
        let decimator = super::overload::Decimator::new(v.fps);
        if let Some(pad) = src.static_pad("src") {
            decimator.install(&pad);
        }
        cap.decimator = Some(decimator);
        let conv = make("videoconvert")?;
        let scale = make("videoscale")?;
        let rate = make("videorate")?;
        set(&rate, "drop-only", "true")?;
        let caps = super::element::raw_video_caps(v.width, v.height, v.fps)?;
        let q = make("queue")?;
        set(&q, "max-size-buffers", "3")?;
        set(&q, "max-size-bytes", "0")?;
        set(&q, "max-size-time", "0")?;
        let conv2 = make("videoconvert")?;
        let enc = make(name)?;
        enc.set_property("name", "venc");
        encoder::configure(&enc, spec, v.bitrate_kbps, gop_frames)?;
        let meter = Arc::new(super::overload::Meter::default());
        meter.install(&enc);
        cap.meter = Some(meter);
        let enc_caps = make("capsfilter")?;
        enc_caps.set_property("caps", parse_caps(spec.caps)?);
        let parse = make("h264parse")?;
        set(&parse, "config-interval", "-1")?;
        let out_caps = make("capsfilter")?;
        out_caps.set_property(
            "caps",
            parse_caps("video/x-h264,stream-format=byte-stream,alignment=au")?,
        );
        let vtee = tee()?;
        vtee.set_property("name", "vtee");
        // `program = "pip"` composes the camera's raw frames into the share's corner.
        let s = &config.media.share;
        let pip = s.configured() && s.program == crate::config::ProgramMode::Pip;
        // Always there (a tee with one branch costs nothing): the meeting's composition, and
        // the share's in pip mode, take the camera's raw frames from it.
        let rawvtee = tee()?;
        rawvtee.set_property("name", "rawvtee");
        let mut chain = vec![src.clone()];
        if v.source == VideoSource::Argus {
            // nvarguscamerasrc gives NVMM buffers: nvvidconv brings them to system memory.
            chain.push(make("nvvidconv")?);
        }
        chain.extend([conv, scale, rate, caps.clone()]);
        chain.push(rawvtee.clone());
        chain.extend([
            q,
            conv2,
            enc.clone(),
            enc_caps,
            parse.clone(),
            out_caps,
            vtee.clone(),
        ]);
        add_chain(&pipeline, &chain, "video")?;

        install_blackout(&caps, camera_on)?;
        let f = frames.clone();
        let b = video_bytes.clone();
        parse
            .static_pad("src")
            .ok_or_else(|| MediaError::link("video", "h264parse has no src pad"))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                f.fetch_add(1, Ordering::Relaxed);
                if let Some(buf) = info.buffer() {
                    b.fetch_add(buf.size() as u64, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        cap.encoder = Some(enc);
        cap.spec = Some(spec);
        cap.vtee = Some(vtee);
        cap.rawvtee = Some(rawvtee.clone());
        if config.media.share.configured() {
            cap.share = Some(super::share::Share::build(
                &pipeline,
                &config.media.share,
                pip.then_some(rawvtee),
            )?);
        }
    }

    if a.source != AudioSource::None {
        let src = match a.source {
            AudioSource::Alsa => {
                let s = make("alsasrc")?;
                set(&s, "device", &a.device)?;
                s
            }
            AudioSource::Test => {
                let s = make("audiotestsrc")?;
                s.set_property("is-live", true);
                set(&s, "freq", "440")?;
                set(&s, "volume", "0.5")?;
                s
            }
            AudioSource::File => super::filemic::source(&a.file, a.rate, a.channels)?,
            AudioSource::Pipe => super::pipemic::source(&a.file, a.rate, a.channels)?,
            AudioSource::None => unreachable!(),
        };
        src.set_property("name", "mic");
        let conv = make("audioconvert")?;
        let res = make("audioresample")?;
        let caps = make("capsfilter")?;
        caps.set_property("caps", crate::media::element::s16_caps(a.rate, a.channels));
        let mut chain = vec![src, conv, res, caps];
        let processing = super::echo::Processing::from_config(config);
        let echo = super::echo::EchoPath::shared();
        echo.configure(Some(processing));
        super::speaker::pin_format(echo.rate());
        if processing.any() {
            // Exactly 10 ms per buffer, so the canceller works in place: no buffering of its own
            // beyond its stages' (8 to 14 ms, BENCHMARKS.md "Echo cancellation").
            let split = make("audiobuffersplit")?;
            split.set_property(
                "output-buffer-duration",
                gst::Fraction::new(1, (1000 / super::echo::FRAME_MS) as i32),
            );
            let processed = make("identity")?;
            processed.set_property("name", "mic-processing");
            processed
                .static_pad("src")
                .ok_or_else(|| MediaError::link("audio", "identity has no src pad"))?
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                        let pts = buffer.pts().map(gst::ClockTime::nseconds);
                        if let Ok(mut map) = buffer.make_mut().map_writable() {
                            echo.capture_s16_at(map.as_mut_slice(), pts);
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
            chain.push(split);
            chain.push(processed);
        }
        let volume = make("volume")?;
        volume.set_property("name", "mic-mute");
        volume.set_property("mute", mic_muted);
        let rawtee = tee()?;
        rawtee.set_property("name", "rawtee");
        chain.push(volume.clone());
        chain.push(rawtee.clone());
        add_chain(&pipeline, &chain, "audio")?;

        cap.volume = Some(volume);
        cap.rawtee = Some(rawtee);
        // Opus is built with the pipeline: rooms need it at once, and its frames are the
        // microphone's heartbeat that the engine watches.
        let opus = cap.tee_for(Feed::Opus)?;
        let n = cap.audio_frames.clone();
        opus.static_pad("sink")
            .ok_or_else(|| MediaError::link("audio", "the Opus tee has no sink pad"))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                n.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    Ok(cap)
}

impl Capture {
    /// The tee of a feed. Opus is built with the pipeline; AAC and PCM are added on first
    /// demand, also while playing, so a box that never records MP4, streams RTMP or transcribes
    /// never runs them.
    pub fn tee_for(&mut self, feed: Feed) -> Result<gst::Element> {
        match feed {
            // The program's split between the two tees is the engine's; alone, it is the camera.
            Feed::H264 | Feed::Program => self.vtee.clone().ok_or(MediaError::NoSource("video")),
            Feed::Share => self
                .share
                .as_ref()
                .map(|s| s.tee.clone())
                .ok_or(MediaError::NoSource("share")),
            Feed::Opus => {
                if let Some(t) = &self.opustee {
                    return Ok(t.clone());
                }
                let raw = self.rawtee.clone().ok_or(MediaError::NoSource("audio"))?;
                let t = self.audio_branch(&raw, opus_chain(self.opus_kbps)?, "opustee")?;
                self.opustee = Some(t.clone());
                Ok(t)
            }
            Feed::Aac => {
                if let Some(t) = &self.aactee {
                    return Ok(t.clone());
                }
                let raw = self.rawtee.clone().ok_or(MediaError::NoSource("audio"))?;
                let t = self.audio_branch(&raw, aac_chain(self.aac_kbps)?, "aactee")?;
                self.aactee = Some(t.clone());
                Ok(t)
            }
            Feed::Meeting => self
                .meeting()?
                .vtee
                .clone()
                .ok_or(MediaError::NoSource("video")),
            Feed::MeetingAac | Feed::MeetingOpus => {
                let aac = feed == Feed::MeetingAac;
                let m = self.meeting()?;
                let have = if aac { &m.aactee } else { &m.opustee };
                if let Some(t) = have {
                    return Ok(t.clone());
                }
                let raw = m.rawtee.clone().ok_or(MediaError::NoSource("audio"))?;
                let (chain, name) = match aac {
                    true => (aac_chain(self.aac_kbps)?, "meetaactee"),
                    false => (opus_chain(self.opus_kbps)?, "meetopustee"),
                };
                let t = self.audio_branch(&raw, chain, name)?;
                let m = self.meeting()?;
                *(if aac { &mut m.aactee } else { &mut m.opustee }) = Some(t.clone());
                Ok(t)
            }
            Feed::Pcm { rate } => {
                if let Some(t) = self.pcmtees.get(&rate) {
                    return Ok(t.clone());
                }
                let caps = make("capsfilter")?;
                caps.set_property("caps", crate::media::element::s16_caps(rate, 1));
                let raw = self.rawtee.clone().ok_or(MediaError::NoSource("audio"))?;
                let t = self.audio_branch(
                    &raw,
                    vec![make("audioconvert")?, make("audioresample")?, caps],
                    &format!("pcm{rate}tee"),
                )?;
                self.pcmtees.insert(rate, t.clone());
                Ok(t)
            }
        }
    }

    /// Adds `rawtee → leaky queue → chain → tee` to the (possibly playing) pipeline and returns
    /// the new tee. The queue is leaky so an encoder that cannot keep up never holds the mic.
    fn audio_branch(
        &self,
        rawtee: &gst::Element,
        chain: Vec<gst::Element>,
        name: &str,
    ) -> Result<gst::Element> {
        let out = tee()?;
        out.set_property("name", name);
        let mut all = vec![leaky_queue(50)?];
        all.extend(chain);
        all.push(out.clone());
        add_chain(&self.pipeline, &all, name)?;
        // Downstream first, and playing before the raw tee pushes into it: a push into a pad
        // still flushing returns FLUSHING, which would stop the microphone's thread for good.
        for e in all.iter().rev() {
            e.sync_state_with_parent()
                .map_err(|_| MediaError::Start(name.to_string()))?;
        }
        rawtee
            .link(&all[0])
            .map_err(|e| MediaError::link(name, e))?;
        Ok(out)
    }

    /// The handle consumers use to ask the shared encoder for keyframes.
    pub fn keyframes(&self) -> KeyframeRequester {
        KeyframeRequester::new(self.encoder.clone())
    }

    /// Asks the video encoder for a keyframe (with SPS/PPS).
    pub fn request_keyframe(&self) {
        if let Some(enc) = &self.encoder {
            let ev = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if let Some(pad) = enc.static_pad("src") {
                pad.send_event(ev);
            }
        }
    }

    /// Sets the pipeline PLAYING. When it will not, the element's own error from the bus says
    /// why (which device, what failed), and the pipeline goes back to NULL.
    pub fn play(&self) -> Result<()> {
        let Err(e) = self.pipeline.set_state(gst::State::Playing) else {
            return Ok(());
        };
        let why = self
            .pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(err) => Some(format!(
                    "{}: {}",
                    m.src().map(|s| s.name().to_string()).unwrap_or_default(),
                    err.error()
                )),
                _ => None,
            })
            .unwrap_or_else(|| e.to_string());
        let _ = self.pipeline.set_state(gst::State::Null);
        Err(MediaError::Start(format!("capture ({why})")))
    }

    /// Stops the pipeline and lets go of its devices. The sources go to NULL first (a camera
    /// that vanished fails its PAUSED→READY step, and a v4l2src left in READY keeps the device
    /// node open, so a replugged camera would come back under another name), then the rest, and
    /// every element leaves the pipeline so nothing keeps the device alive.
    pub fn release(mut self) {
        if self.meeting.take().is_some() {
            // The pipeline goes whole; only the hub must hear of it.
            super::meeting::MeetingHub::shared().set_open(false);
        }
        let pipeline = &self.pipeline;
        let mut sources = Vec::new();
        let mut it = pipeline.iterate_sources();
        while let Ok(Some(src)) = it.next() {
            sources.push(src);
        }
        for src in &sources {
            if let Err(e) = src.set_state(gst::State::Null) {
                tracing::warn!("{}: could not stop cleanly: {e}", src.name());
            }
        }
        if let Err(e) = pipeline.set_state(gst::State::Null) {
            tracing::warn!("capture pipeline did not reach NULL: {e}");
        }
        let children = pipeline.children();
        for child in &children {
            if child.current_state() != gst::State::Null {
                tracing::warn!(
                    "{} is still {:?}; forcing NULL",
                    child.name(),
                    child.current_state()
                );
                let _ = child.set_state(gst::State::Null);
            }
        }
        let _ = pipeline.remove_many(&children);
        for src in &sources {
            tracing::debug!(element = %src.name(), refs = src.ref_count(), "released source");
        }
    }
}

/// Replaces frames by black while the camera is off, keeping timestamps (and the encoder)
/// running so every consumer stays valid.
fn install_blackout(caps: &gst::Element, camera_on: Arc<AtomicBool>) -> Result<()> {
    let pad = caps
        .static_pad("src")
        .ok_or_else(|| MediaError::link("video", "capsfilter has no src pad"))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if camera_on.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Ok;
        }
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(vinfo) = gst_video::VideoInfo::from_caps(&caps) else {
            return gst::PadProbeReturn::Ok;
        };
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            let buffer = buffer.make_mut();
            if let Ok(mut frame) =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &vinfo)
            {
                for plane in 0..frame.n_planes() {
                    let fill = if plane == 0 { 16 } else { 128 };
                    if let Ok(data) = frame.plane_data_mut(plane) {
                        data.fill(fill);
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

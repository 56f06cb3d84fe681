//! Plays the remote participants: their audio decoded and mixed to one sink (ALSA on a box),
//! their video decoded and laid out in a grid on one display sink (kmssink on a bare console).
//!
//! One GStreamer pipeline, separate from the capture pipeline: a `compositor` and an
//! `audiomixer` (whose output is the speaker's chain, `media::speaker`, where the echo
//! canceller takes its reference), each fed by a silent live background so the outputs run with nobody in the
//! room, and one branch per remote track, created on its first RTP packet and removed when the
//! participant leaves. Frames are counted and audio levels measured (the `level` element), for
//! active-speaker detection, tests and benchmarks.
//!
//! A box with no remote video to show (`video_sink = "none"`, or a display sink that would not
//! start) neither decodes nor composites video: its video branches end after `h264parse`, which
//! still counts whole frames. Decoding (libavcodec) and the 1280x720 compositor cost about
//! 16 MiB of RSS for nothing there (`bench_call_memory` in `tests/quality.rs`).

use super::{RemoteStats, RoomStats};
use crate::config::PlaybackConfig;
use crate::media::echo::EchoPath;
use crate::media::element::{add_chain, make, set};
use crate::media::pcm::PcmHub;
use crate::media::MediaError;
use crate::model::StreamKind;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

mod bus;
mod meeting_tap;
pub mod placeholder;
mod screen;
mod speech_tap;
use bus::watch_bus;
use screen::screen_layout;

/// The playback pipeline.
pub struct Playback {
    pipeline: gst::Pipeline,
    /// The video compositor; None when there is no remote video to show.
    vmix: Option<gst::Element>,
    amix: gst::Element,
    size: (u32, u32),
    /// (participant, kind) → branch.
    branches: HashMap<(String, StreamKind), Branch>,
    stats: Arc<Mutex<RoomStats>>,
    bus_thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Where each participant's decoded speech goes while transcription runs.
    speech: PcmHub,
}

struct Branch {
    /// Where its RTP enters; None for a placeholder tile (`placeholder`).
    src: Option<gst_app::AppSrc>,
    elements: Vec<gst::Element>,
    /// Its pad on the compositor or mixer; None for video that is counted, not shown.
    mixer_pad: Option<gst::Pad>,
    /// The meeting feed's tap, until it is made (the first time the feed runs).
    tap: Option<(gst::Element, meeting_tap::Tapped, &'static str)>,
}

/// Whether remote video is shown: not with `video_sink = "none"`, nor when the display sink
/// failed to start and playback fell back to discarding.
fn shows_video(config: &PlaybackConfig, fake: bool) -> bool {
    !fake && config.video_sink.trim() != "none"
}

/// The H.264 decoder for remote video: hardware first (Pi 4, Jetson), then avdec_h264, then
/// openh264dec for images without libav. openh264dec would save the 30 MB of RSS that
/// libavcodec and its codec libraries cost, but here (GStreamer 1.22, libopenh264 2.3.1) it
/// decoded none of an x264 constrained-baseline stream whose sender repeats SPS/PPS in-band
/// before each keyframe (`rtph264pay config-interval=-1`, as the test participants do): every
/// frame failed with "error decoding nal, return code: 32". Without the repeat it decoded them
/// all. A sender's habits are not the box's to choose, so it stays last.
fn h264_decoder(registered: impl Fn(&str) -> bool) -> &'static str {
    ["v4l2h264dec", "nvv4l2decoder", "avdec_h264", "openh264dec"]
        .into_iter()
        .find(|f| registered(f))
        .unwrap_or("avdec_h264")
}

/// The sink a `[room.playback]` setting names (`video_sink`, or `audio_sink` with its
/// `audio_device`), as the room's playback makes it; tests build the box's speaker with it.
pub fn sink(desc: &str, video: bool, device: &str) -> Result<gst::Element, MediaError> {
    let desc = match (desc, video) {
        ("none", _) => "fakesink",
        ("auto", true) => {
            let desktop = std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some();
            if desktop {
                "autovideosink"
            } else {
                "kmssink"
            }
        }
        ("auto", false) => "autoaudiosink",
        ("kms", true) => "kmssink",
        ("window", true) => "autovideosink",
        ("alsa", false) => "alsasink",
        (other, _) => other,
    };
    let mut parts = desc.split_whitespace();
    let factory = parts.next().unwrap_or("fakesink");
    let el = make(factory)?;
    for prop in parts {
        if let Some((k, v)) = prop.split_once('=') {
            set(&el, k, v)?;
        }
    }
    if factory == "alsasink" && el.find_property("device").is_some() && !desc.contains("device=") {
        el.set_property("device", device);
    }
    if factory == "fakesink" {
        el.set_property("sync", false);
    }
    // A speaker on a file or pipe (a room simulator's end) is written as it plays: filesink's
    // default buffering hands a pipe's reader bursts of many blocks, a jittering delay that
    // took the echo canceller from 30 dB to 14 in tests/echo_call.rs.
    if factory == "filesink" && !video && !desc.contains("buffer-mode=") {
        set(&el, "buffer-mode", "unbuffered")?;
    }
    Ok(el)
}

impl Playback {
    /// Builds and starts the pipeline. A display or sound sink that cannot start (no DRM
    /// device, no sound card) is replaced by a fakesink with a warning, so the room still works.
    /// Each participant's decoded audio is also tapped, at 16 kHz mono, into `speech` for the
    /// transcriber.
    pub fn new(
        config: &PlaybackConfig,
        stats: Arc<Mutex<RoomStats>>,
        speech: PcmHub,
    ) -> Result<Playback, MediaError> {
        match Playback::build(config, stats.clone(), false, speech.clone()) {
            Ok(p) => Ok(p),
            Err(e) => {
                tracing::warn!(error = %e, "playback: sinks failed to start; discarding remote media instead");
                Playback::build(config, stats, true, speech)
            }
        }
    }

    fn build(
        config: &PlaybackConfig,
        stats: Arc<Mutex<RoomStats>>,
        fake: bool,
        speech: PcmHub,
    ) -> Result<Playback, MediaError> {
        gst::init().map_err(|_| MediaError::Start("GStreamer".into()))?;
        let pipeline = gst::Pipeline::with_name("room-playback");
        let (w, h) = (config.width & !1, config.height & !1);
        let vmix = if shows_video(config, fake) {
            Some(Self::video_output(&pipeline, config, (w, h))?)
        } else {
            None
        };
        let abg = make("audiotestsrc")?;
        abg.set_property("is-live", true);
        abg.set_property_from_str("wave", "silence");
        let amix = make("audiomixer")?;
        let asink = if fake {
            sink("none", false, "")?
        } else {
            sink(&config.audio_sink, false, &config.audio_device)?
        };
        // The speaker's chain takes the echo canceller's reference right before the sink.
        let speaker = crate::media::speaker::chain(asink, &EchoPath::shared())?;
        let mut output = vec![abg, amix.clone()];
        output.extend(speaker);
        add_chain(&pipeline, &output, "the audio output")?;
        let started = pipeline.set_state(gst::State::Playing).is_ok()
            && pipeline.state(gst::ClockTime::from_seconds(5)).0.is_ok();
        if !started {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(MediaError::Start("the playback pipeline".into()));
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bus_thread = pipeline.bus().map(|bus| {
            let stats = stats.clone();
            let stop = stop.clone();
            std::thread::spawn(move || watch_bus(bus, stats, stop))
        });
        Ok(Playback {
            pipeline,
            vmix,
            amix,
            size: (w, h),
            branches: HashMap::new(),
            stats,
            bus_thread,
            stop,
            speech,
        })
    }

    /// The screen: a black live background at 15 fps, the compositor, and the display sink,
    /// added to `pipeline`. Returns the compositor.
    fn video_output(
        pipeline: &gst::Pipeline,
        config: &PlaybackConfig,
        (w, h): (u32, u32),
    ) -> Result<gst::Element, MediaError> {
        let vbg = make("videotestsrc")?;
        vbg.set_property("is-live", true);
        vbg.set_property_from_str("pattern", "black");
        // I420 throughout: left to itself the compositor blends in AYUV, which cost a third of
        // the box's CPU (1280x720 at 15 fps of black) before any remote video arrived.
        let vbg_caps = make("capsfilter")?;
        vbg_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("framerate", gst::Fraction::new(15, 1))
                .build(),
        );
        let vmix = make("compositor")?;
        vmix.set_property_from_str("background", "black");
        let vmix_caps = make("capsfilter")?;
        vmix_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        );
        let vconv = make("videoconvert")?;
        let vsink = sink(&config.video_sink, true, "")?;
        add_chain(
            pipeline,
            &[vbg, vbg_caps, vmix.clone(), vmix_caps, vconv, vsink],
            "the video output",
        )?;
        Ok(vmix)
    }

    /// Feeds one RTP packet of a participant's track; the branch is made on the first one.
    pub fn push(&mut self, participant: &str, kind: StreamKind, payload_type: u8, rtp: &[u8]) {
        let key = (participant.to_string(), kind);
        if !self.branches.contains_key(&key) {
            match self.add_branch(participant, kind, payload_type) {
                Ok(b) => {
                    self.branches.insert(key.clone(), b);
                    self.layout();
                }
                Err(e) => {
                    tracing::warn!(participant, ?kind, error = %e, "playback: cannot play this track");
                    return;
                }
            }
        }
        if let Some(b) = self.branches.get(&key) {
            if let Some(src) = &b.src {
                let _ = src.push_buffer(gst::Buffer::from_slice(rtp.to_vec()));
            }
        }
    }

    fn add_branch(
        &mut self,
        participant: &str,
        kind: StreamKind,
        pt: u8,
    ) -> Result<Branch, MediaError> {
        let what = format!("{participant}'s {kind:?} branch");
        let video = kind != StreamKind::Audio;
        let caps = if video {
            gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("encoding-name", "H264")
                .field("clock-rate", 90000i32)
                .field("payload", i32::from(pt))
                .build()
        } else {
            gst::Caps::builder("application/x-rtp")
                .field("media", "audio")
                .field("encoding-name", "OPUS")
                .field("clock-rate", 48000i32)
                .field("payload", i32::from(pt))
                .build()
        };
        let src = gst_app::AppSrc::builder()
            .caps(&caps)
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .build();
        src.set_property("max-bytes", 4_000_000u64);
        let jb = make("rtpjitterbuffer")?;
        jb.set_property("latency", 60u32);
        let mut chain: Vec<gst::Element> = vec![src.clone().upcast(), jb];
        let shown = video && self.vmix.is_some();
        let decoder = h264_decoder(|f| gst::ElementFactory::find(f).is_some());
        // Each video branch has a tee for the meeting's tap: after the decoder when the frames
        // are decoded for the screen, else after the parser (the tap decodes only while the
        // meeting feed runs).
        let names: Vec<&str> = match (video, shown) {
            (true, true) => vec![
                "rtph264depay",
                "h264parse",
                decoder,
                "videoconvert",
                "tee",
                "queue",
            ],
            // Nothing to show: whole frames are counted, never decoded.
            (true, false) => vec!["rtph264depay", "h264parse", "tee", "fakesink"],
            (false, _) => vec![
                "rtpopusdepay",
                "opusdec",
                "audioconvert",
                "audioresample",
                "level",
                // The transcriber's tap leaves here (speech_tap); the mixer's path goes on.
                "tee",
                "queue",
            ],
        };
        for n in &names {
            chain.push(make(n)?);
        }
        if let Some(level) = chain
            .iter()
            .find(|e| e.factory().is_some_and(|f| f.name() == "level"))
        {
            level.set_property("interval", 100_000_000u64);
            level.set_property("post-messages", true);
            level.set_property("name", format!("level|{participant}"));
        }
        if let Some(last) = chain.last().filter(|_| video && !shown) {
            last.set_property("sync", false);
            last.set_property("async", false);
        }
        add_chain(&self.pipeline, &chain, &what)?;
        let mixer = if video {
            self.vmix.as_ref()
        } else {
            Some(&self.amix)
        };
        let mixer_pad = match mixer {
            Some(mixer) => {
                let pad = mixer
                    .request_pad_simple("sink_%u")
                    .ok_or_else(|| MediaError::link(&what, "the mixer gave no pad"))?;
                let last = chain
                    .last()
                    .ok_or_else(|| MediaError::link(&what, "the branch is empty"))?;
                last.static_pad("src")
                    .ok_or_else(|| MediaError::link(&what, "the branch has no src pad"))?
                    .link(&pad)
                    .map_err(|e| MediaError::link(&what, e))?;
                Some(pad)
            }
            None => None,
        };
        if video {
            // Whole frames out of h264parse (chain[3]); decoded ones out of the decoder.
            self.count(&chain[3], participant, |s| &mut s.video_frames);
            if shown {
                self.count(&chain[4], participant, |s| &mut s.decoded_frames);
            }
        }
        let mut elements = chain;
        let tee = elements
            .iter()
            .find(|e| e.factory().is_some_and(|f| f.name() == "tee"))
            .cloned()
            .ok_or_else(|| MediaError::link(&what, "the branch has no tee"))?;
        if !video {
            elements.extend(speech_tap::add(
                &self.pipeline,
                &self.speech,
                &tee,
                participant,
            )?);
        }
        let tapped = match (video, shown) {
            (false, _) => meeting_tap::Tapped::Audio,
            (true, true) => meeting_tap::Tapped::Decoded,
            (true, false) => meeting_tap::Tapped::Encoded,
        };
        for e in &elements {
            e.sync_state_with_parent()
                .map_err(|_| MediaError::Start(what.clone()))?;
        }
        Ok(Branch {
            src: Some(src),
            elements,
            mixer_pad,
            tap: Some((tee, tapped, decoder)),
        })
    }

    /// Shows a tile saying that `participant`'s `kind` video cannot be shown (see
    /// `placeholder`), where the video would be, until the participant's branches go.
    pub fn placeholder(&mut self, participant: &str, kind: StreamKind, text: &str) {
        let key = (participant.to_string(), kind);
        let Some(vmix) = self.vmix.clone() else {
            return;
        };
        if self.branches.contains_key(&key) {
            return;
        }
        let made = placeholder::chain(&self.pipeline, text).and_then(|elements| {
            let what = "the placeholder tile";
            let pad = vmix
                .request_pad_simple("sink_%u")
                .ok_or_else(|| MediaError::link(what, "the compositor gave no pad"))?;
            let last = elements.last().and_then(|e| e.static_pad("src"));
            last.ok_or_else(|| MediaError::link(what, "no src pad"))?
                .link(&pad)
                .map_err(|e| MediaError::link(what, e))?;
            for e in elements.iter().rev() {
                e.sync_state_with_parent()
                    .map_err(|_| MediaError::Start(what.into()))?;
            }
            Ok(Branch {
                src: None,
                elements,
                mixer_pad: Some(pad),
                tap: None,
            })
        });
        match made {
            Ok(b) => {
                tracing::warn!(participant, ?kind, "playback: {text}");
                self.branches.insert(key, b);
                self.layout();
            }
            Err(e) => tracing::warn!(participant, error = %e, "playback: no placeholder tile"),
        }
    }

    /// Once the meeting feed runs (its hub open), taps each branch for it; until then a box
    /// pays nothing for it (no decoder made, no libav loaded where video is not shown).
    pub fn sync_meeting(&mut self) {
        if !crate::media::meeting::MeetingHub::shared().is_open() {
            return;
        }
        for ((participant, kind), b) in self.branches.iter_mut() {
            let Some((tee, tapped, decoder)) = b.tap.take() else {
                continue;
            };
            // A share is a member of the meeting of its own, beside the presenter's camera.
            let id = match kind {
                StreamKind::Share => crate::media::meeting::share_id(participant),
                _ => participant.clone(),
            };
            match meeting_tap::add(&self.pipeline, &tee, &id, tapped, decoder) {
                Ok(els) => b.elements.extend(els),
                Err(e) => tracing::warn!(participant, error = %e, "playback: no meeting tap"),
            }
        }
    }

    /// Counts the buffers leaving `element` into the participant's stats field `field`.
    fn count(
        &self,
        element: &gst::Element,
        participant: &str,
        field: fn(&mut RemoteStats) -> &mut u64,
    ) {
        let Some(pad) = element.static_pad("src") else {
            return;
        };
        let stats = self.stats.clone();
        let who = participant.to_string();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if let Ok(mut s) = stats.lock() {
                *field(s.participants.entry(who.clone()).or_default()) += 1;
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Removes a participant's branches.
    pub fn remove(&mut self, participant: &str) {
        let keys: Vec<_> = self
            .branches
            .keys()
            .filter(|(p, _)| p == participant)
            .cloned()
            .collect();
        for k in keys {
            if let Some(b) = self.branches.remove(&k) {
                for e in b.elements.iter().rev() {
                    let _ = e.set_state(gst::State::Null);
                }
                let _ = self.pipeline.remove_many(b.elements.iter());
                if let Some(pad) = &b.mixer_pad {
                    if let Some(parent) = pad.parent_element() {
                        parent.release_request_pad(pad);
                    }
                }
            }
        }
        if let Ok(mut s) = self.stats.lock() {
            s.participants.remove(participant);
        }
        self.layout();
    }

    /// Places the video tiles: a grid of the cameras, or, while someone shares, the share as
    /// the main picture with the cameras in a strip below it.
    fn layout(&self) {
        let mut tiles: Vec<(StreamKind, &gst::Pad)> = self
            .branches
            .iter()
            .filter(|((_, k), _)| *k != StreamKind::Audio)
            .filter_map(|((_, k), b)| b.mixer_pad.as_ref().map(|p| (*k, p)))
            .collect();
        tiles.sort_by_key(|(k, p)| (*k != StreamKind::Share, p.name()));
        let kinds: Vec<StreamKind> = tiles.iter().map(|(k, _)| *k).collect();
        for ((_, pad), r) in tiles.iter().zip(screen_layout(&kinds, self.size)) {
            pad.set_property("xpos", r.x as i32);
            pad.set_property("ypos", r.y as i32);
            pad.set_property("width", r.w as i32);
            pad.set_property("height", r.h as i32);
            pad.set_property("zorder", if r.main { 2u32 } else { 1u32 });
        }
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_speaker_on_a_file_is_written_unbuffered_unless_told_otherwise() {
        gst::init().unwrap();
        let mode = |desc: &str| {
            let el = sink(desc, false, "").unwrap();
            let v = el.property_value("buffer-mode");
            gst::glib::EnumValue::from_value(&v)
                .map(|(_, e)| e.nick().to_string())
                .unwrap()
        };
        assert_eq!(mode("filesink location=/dev/null sync=true"), "unbuffered");
        assert_eq!(mode("filesink location=/dev/null buffer-mode=full"), "full");
    }

    #[test]
    fn hardware_decoders_come_first_and_openh264_last() {
        let only = |names: &'static [&'static str]| move |f: &str| names.contains(&f);
        assert_eq!(
            h264_decoder(only(&["avdec_h264", "openh264dec"])),
            "avdec_h264"
        );
        assert_eq!(h264_decoder(only(&["openh264dec"])), "openh264dec");
        assert_eq!(
            h264_decoder(only(&["avdec_h264", "openh264dec", "v4l2h264dec"])),
            "v4l2h264dec"
        );
    }

    #[test]
    fn a_sink_property_the_sink_lacks_or_cannot_take_is_an_error_not_a_panic() {
        gst::init().unwrap();
        assert!(sink("fakesink sync=true", true, "").is_ok());
        for desc in ["fakesink no-such=1", "fakesink sync=maybe"] {
            assert!(
                matches!(sink(desc, true, ""), Err(MediaError::Property { .. })),
                "{desc}"
            );
        }
        assert_eq!(
            sink("nosuchsink", false, "").err(),
            Some(MediaError::MissingElement("nosuchsink".into()))
        );
    }

    #[test]
    fn video_is_shown_only_with_a_working_display_sink() {
        let mut c = PlaybackConfig {
            video_sink: "fakesink".into(),
            ..PlaybackConfig::default()
        };
        assert!(shows_video(&c, false));
        assert!(
            !shows_video(&c, true),
            "a sink that failed falls back to nothing"
        );
        c.video_sink = "none".into();
        assert!(!shows_video(&c, false));
    }
}

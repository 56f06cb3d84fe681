//! The local recorder: its own pipeline, fed from the capture pipeline's tees, writing segment
//! files with splitmuxsink.
//!
//! Each segment is MP4 whose header is rewritten every fragment (qtmux's robust muxing), or
//! Matroska with short clusters, and the segment being written is flushed to disk every fragment,
//! so a SIGKILL or a power cut loses at most about one fragment. A failure here (a full disk) ends this pipeline only; capture carries on.

use super::encoder::{make, set};
use super::pipeline::{Capture, Feed};
use super::sink::{self, Attached};
use crate::config::{RecordingConfig, RecordingFormat};
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What the recorder's pipeline reports.
#[derive(Debug, Clone, PartialEq)]
pub enum RecEvent {
    /// A segment file was opened.
    Opened(PathBuf),
    /// A segment file was closed and is complete.
    Closed(PathBuf),
    /// Every stream ended and the last segment is finalised.
    Finished,
    /// Writing failed.
    Failed(String),
}

/// A running recorder.
pub struct Recorder {
    pipeline: gst::Pipeline,
    feeds: Vec<(gst_app::AppSrc, Attached)>,
}

/// Prefix of segment file names; retention only ever deletes files that carry it.
pub const SEGMENT_PREFIX: &str = "roombox-";

/// A segment file name for now: `roombox-2026-11-23T20-31-05Z-0003.mp4`.
pub fn segment_name(index: u32, ext: &str) -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    format!("{SEGMENT_PREFIX}{t}-{index:04}.{ext}")
}

impl Recorder {
    /// Builds the recorder pipeline, attaches it to the capture's tees and starts it. `events`
    /// receives what happens to it.
    pub fn start(
        capture: &mut Capture,
        cfg: &RecordingConfig,
        dir: &Path,
        events: mpsc::UnboundedSender<RecEvent>,
    ) -> Result<Recorder, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let pipeline = gst::Pipeline::with_name("roombox-recorder");
        let split = make("splitmuxsink")?;
        split.set_property("max-size-time", cfg.segment.as_nanos() as u64);
        // splitmuxsink asks for a keyframe at each segment boundary; the probe below forwards
        // the request from the recorder's appsrc to the capture encoder, so segments have the
        // configured length instead of a whole number of GOPs.
        split.set_property("send-keyframe-requests", true);
        let fragment_ms = cfg.fragment.as_millis() as u64;
        let (muxer, audio_feed, audio_parse) = match cfg.format {
            RecordingFormat::Mp4 => {
                // Robust muxing: the moov sits in reserved space at the head of the file and is
                // rewritten every fragment, so a killed file is complete up to its last update
                // and a closed one carries its true duration (fragmented MP4 under splitmuxsink
                // gets the header duration of later segments wrong).
                let m = make("mp4mux")?;
                let reserve = cfg.segment + std::time::Duration::from_secs(60);
                set(&m, "reserved-max-duration", &reserve.as_nanos().to_string())?;
                set(
                    &m,
                    "reserved-moov-update-period",
                    &(fragment_ms * 1_000_000).to_string(),
                )?;
                (m, Feed::Aac, "aacparse")
            }
            RecordingFormat::Mkv => {
                let m = make("matroskamux")?;
                set(
                    &m,
                    "max-cluster-duration",
                    &(fragment_ms * 1_000_000).to_string(),
                )?;
                set(
                    &m,
                    "min-cluster-duration",
                    &(fragment_ms * 1_000_000 / 2).to_string(),
                )?;
                (m, Feed::Opus, "opusparse")
            }
        };
        split.set_property("muxer", &muxer);
        let filesink = make("filesink")?;
        // Unbuffered: nothing sits in a user-space buffer when the process is killed.
        set(&filesink, "buffer-mode", "unbuffered")?;
        split.set_property("sink", &filesink);
        let dir_owned = dir.to_path_buf();
        let ext = cfg.format.extension();
        split.connect("format-location-full", false, move |args| {
            let index = args.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
            let path = dir_owned.join(segment_name(index, ext));
            Some(path.to_string_lossy().to_string().to_value())
        });
        pipeline.add(&split).map_err(|e| e.to_string())?;

        // Timestamps are re-based on the first video keyframe, so each recording starts at 0
        // and begins with a decodable frame.
        let base: Arc<Mutex<Option<gst::ClockTime>>> = Arc::new(Mutex::new(None));
        let mut feeds = Vec::new();
        let mut wanted = Vec::new();
        if capture.vtee.is_some() {
            wanted.push((Feed::H264, "h264parse", "video"));
        }
        if capture.rawtee.is_some() {
            wanted.push((audio_feed, audio_parse, "audio_%u"));
        }
        if wanted.is_empty() {
            return Err("there is nothing to record: no video and no audio source".into());
        }
        let has_video = capture.vtee.is_some();
        for (feed, parser, pad_template) in wanted {
            let appsrc = gst_app::AppSrc::builder()
                .format(gst::Format::Time)
                .is_live(true)
                .do_timestamp(false)
                .max_bytes(32 << 20)
                .block(false)
                .build();
            let _ = set(&appsrc, "leaky-type", "downstream");
            let parse = make(parser)?;
            pipeline
                .add_many([appsrc.upcast_ref(), &parse])
                .map_err(|e| e.to_string())?;
            appsrc.link(&parse).map_err(|e| e.to_string())?;
            let pad = split
                .request_pad_simple(pad_template)
                .ok_or("splitmuxsink gave no pad")?;
            parse
                .static_pad("src")
                .ok_or("parser has no pad")?
                .link(&pad)
                .map_err(|e| format!("cannot link to splitmuxsink: {e:?}"))?;
            if feed == Feed::H264 {
                forward_keyframe_requests(&appsrc, capture.encoder.clone(), base.clone())?;
            }
            let tee = capture.tee_for(feed)?;
            let src = appsrc.clone();
            let base = base.clone();
            let is_video = feed == Feed::H264;
            let attached = sink::attach(&capture.pipeline, &tee, move |sample| {
                if let Some(s) = rebase(sample, &base, is_video, has_video) {
                    let _ = src.push_sample(&s);
                }
            })?;
            feeds.push((appsrc, attached));
        }

        let bus = pipeline.bus().ok_or("recorder has no bus")?;
        let mut stream = bus.stream();
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let ev = match msg.view() {
                    gst::MessageView::Element(e) => {
                        let Some(s) = e.structure() else { continue };
                        let loc = s.get::<String>("location").ok().map(PathBuf::from);
                        match (s.name().as_str(), loc) {
                            ("splitmuxsink-fragment-opened", Some(p)) => RecEvent::Opened(p),
                            ("splitmuxsink-fragment-closed", Some(p)) => RecEvent::Closed(p),
                            _ => continue,
                        }
                    }
                    gst::MessageView::Eos(_) => RecEvent::Finished,
                    gst::MessageView::Error(e) => {
                        let detail = e.debug().map(|d| d.to_string()).unwrap_or_default();
                        let reason = if detail.contains("No space left")
                            || e.error().to_string().contains("No space left")
                        {
                            format!("disk full: {}", e.error())
                        } else {
                            e.error().to_string()
                        };
                        RecEvent::Failed(reason)
                    }
                    _ => continue,
                };
                let last = matches!(ev, RecEvent::Finished | RecEvent::Failed(_));
                if events.send(ev).is_err() || last {
                    break;
                }
            }
        });

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| "the recorder pipeline did not start".to_string())?;
        capture.request_keyframe();
        Ok(Recorder { pipeline, feeds })
    }

    /// Ends every stream so the last segment is finalised; [`RecEvent::Finished`] follows.
    pub fn finish(&mut self) {
        for (src, attached) in self.feeds.drain(..) {
            attached.detach();
            let _ = src.end_of_stream();
        }
    }

    /// Stops at once (after a failure, or once finished), detaching from capture.
    pub fn shutdown(mut self) {
        for (_, attached) in self.feeds.drain(..) {
            attached.detach();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Forwards upstream force-key-unit requests that reach `appsrc` (from splitmuxsink) to the
/// capture pipeline's encoder, which is in another pipeline and would never see them.
/// splitmuxsink asks ahead, for the running time of the next boundary: that time is moved back
/// onto the capture's clock (adding the recording's origin) so the keyframe lands on the boundary.
fn forward_keyframe_requests(
    appsrc: &gst_app::AppSrc,
    encoder: Option<gst::Element>,
    origin: Arc<Mutex<Option<gst::ClockTime>>>,
) -> Result<(), String> {
    let Some(encoder) = encoder else {
        return Ok(());
    };
    let pad = appsrc.static_pad("src").ok_or("appsrc has no pad")?;
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(req) = gstreamer_video::UpstreamForceKeyUnitEvent::parse(ev) else {
            return gst::PadProbeReturn::Ok;
        };
        let base = origin.lock().ok().and_then(|b| *b);
        let mut fwd = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true);
        if let (Some(rt), Some(base)) = (req.running_time, base) {
            fwd = fwd.running_time(rt + base);
        }
        if let Some(src) = encoder.static_pad("src") {
            src.send_event(fwd.build());
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Shifts a sample's timestamps so the recording starts at its first video keyframe; drops what
/// comes before it.
fn rebase(
    sample: gst::Sample,
    base: &Mutex<Option<gst::ClockTime>>,
    is_video: bool,
    has_video: bool,
) -> Option<gst::Sample> {
    let buffer = sample.buffer()?;
    // Encoders shift their segments (x264enc by 1000 h), so compare running times, not PTS.
    let pts = running_time(&sample, buffer.pts())?;
    let dts = running_time(&sample, buffer.dts());
    let origin = {
        let mut b = base.lock().ok()?;
        match *b {
            Some(t) => t,
            None => {
                let starts = if has_video {
                    is_video && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
                } else {
                    true
                };
                if !starts {
                    return None;
                }
                *b = Some(pts);
                pts
            }
        }
    };
    if pts < origin {
        return None;
    }
    let mut buf = buffer.copy();
    {
        let b = buf.get_mut()?;
        b.set_pts(pts - origin);
        b.set_dts(dts.and_then(|d| d.checked_sub(origin)));
    }
    let caps = sample.caps_owned();
    let mut builder = gst::Sample::builder().buffer(&buf);
    if let Some(caps) = caps.as_ref() {
        builder = builder.caps(caps);
    }
    Some(builder.build())
}

/// A timestamp of a sample as running time (the clock the whole capture shares).
pub fn running_time(sample: &gst::Sample, ts: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    let ts = ts?;
    match sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
    {
        Some(seg) => seg.to_running_time(ts),
        None => Some(ts),
    }
}

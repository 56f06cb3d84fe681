//! The local recorder: a consumer with its own pipeline, writing segment files with
//! splitmuxsink.
//!
//! Each segment is MP4 whose header is rewritten every fragment (qtmux's robust muxing), or
//! Matroska with short clusters, and the segment being written is flushed to disk every fragment,
//! so a SIGKILL or a power cut loses at most about one fragment. A failure here (a full disk)
//! ends this pipeline only; capture carries on. Retention runs here too, and a disk that falls
//! below `stop_free_mb` stops the recording with a [`MediaError::DiskFull`].

use super::consumer::{
    Consumer, ConsumerEvent, Feed, FeedSink, KeyframeRequester, Reporter, StartContext,
};
use super::element::{make, set};
use super::error::{MediaError, Result};
use super::meeting::MeetingHub;
use super::retention;
use super::sink::{feed_input, AppSrcSink};
use super::tracks::{tag_after, TrackPlan, VoiceTracks, MIX_TITLE};
use crate::config::{RecordingConfig, RecordingFormat};
use crate::sync::lock;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often retention runs while recording.
const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// What to record and where.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderSpec {
    /// Format, segment and fragment lengths, retention.
    pub config: RecordingConfig,
    /// Directory of the segments.
    pub dir: PathBuf,
    /// The box's participant id and display name: its own track's name in a Matroska
    /// recording of the meeting (`media::tracks`).
    pub speaker: (String, String),
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

/// The recorder consumer: builds a [`Recorder`] pipeline on each start.
pub struct RecorderConsumer {
    spec: RecorderSpec,
    running: Option<Recorder>,
    /// Whether the running recording has per-participant tracks: fixed at its start, so a
    /// change of source keeps its tracks (`set_source`).
    tracked: Option<bool>,
    /// The segment being written, which retention must not delete and flush makes durable.
    writing: Arc<Mutex<Option<PathBuf>>>,
    reporter: Option<Reporter>,
    last_flush: Instant,
    last_retention: Instant,
}

impl RecorderConsumer {
    /// A recorder for `spec`, not yet started.
    pub fn new(spec: RecorderSpec) -> RecorderConsumer {
        RecorderConsumer {
            spec,
            running: None,
            tracked: None,
            writing: Arc::default(),
            reporter: None,
            last_flush: Instant::now(),
            last_retention: Instant::now(),
        }
    }

    /// True for a Matroska recording of the meeting: one track per participant beside the mix.
    /// A running recording keeps what it started with: its file's tracks cannot change, so one
    /// switched to the meeting has the mix only until it is started again, and one switched to
    /// the room keeps its tracks (the room's mic in the mix's, silence for the remotes).
    fn has_tracks(&self) -> bool {
        self.tracked.unwrap_or(
            self.spec.config.format == RecordingFormat::Mkv
                && self.spec.config.source == crate::model::OutputSource::Meeting,
        )
    }

    fn disk_full(&self) -> MediaError {
        MediaError::DiskFull(format!(
            "less than {} MiB free in {}",
            self.spec.config.stop_free_mb,
            self.spec.dir.display()
        ))
    }
}

impl Consumer for RecorderConsumer {
    fn set_source(&mut self, source: crate::model::OutputSource) -> bool {
        self.spec.config.source = source;
        true
    }

    fn feeds(&self) -> Vec<Feed> {
        // Both follow the program: mp4mux takes the share's new picture size mid-file;
        // matroskamux refuses it, and splitmuxsink starts a new segment there (see
        // `caps_refused`).
        let mut feeds: Vec<Feed> = match self.spec.config.format {
            RecordingFormat::Mp4 => vec![Feed::Program, Feed::Aac],
            RecordingFormat::Mkv => vec![Feed::Program, Feed::Opus],
        }
        .into_iter()
        .map(|f| f.from_source(self.spec.config.source))
        .collect();
        // A Matroska recording of the meeting keeps the box's own mic as a track beside the mix.
        if self.has_tracks() {
            feeds.push(Feed::Opus);
        }
        feeds
    }

    fn start(&mut self, ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>> {
        let dir = &self.spec.dir;
        std::fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
        match retention::enforce(dir, &self.spec.config, None) {
            Ok(plan) if plan.stop => return Err(self.disk_full()),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e}"),
        }
        *lock(&self.writing) = None;
        self.tracked = None;
        let plan = match self.has_tracks() {
            true => TrackPlan {
                local: Some(self.spec.speaker.clone()),
                remotes: MeetingHub::shared()
                    .snapshot()
                    .remotes
                    .into_iter()
                    .map(|r| (r.id, r.name))
                    .collect(),
            },
            false => TrackPlan::default(),
        };
        let (rec, sinks) = Recorder::start(
            &ctx.feeds,
            &plan,
            &self.spec.config,
            dir,
            ctx.keyframes.clone(),
            ctx.reporter.clone(),
            self.writing.clone(),
        )?;
        self.running = Some(rec);
        self.tracked = Some(plan.local.is_some());
        self.reporter = Some(ctx.reporter);
        self.last_flush = Instant::now();
        self.last_retention = Instant::now();
        Ok(sinks)
    }

    fn finish(&mut self) -> bool {
        match &self.running {
            Some(r) => {
                r.finish();
                true
            }
            None => false,
        }
    }

    fn shutdown(&mut self) {
        self.tracked = None;
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }

    fn tick(&mut self) {
        if self.running.is_none() {
            return;
        }
        let writing = self.writing.lock().ok().and_then(|w| w.clone());
        if self.last_flush.elapsed() >= self.spec.config.fragment {
            self.last_flush = Instant::now();
            if let Some(p) = writing.clone() {
                sync_file(p);
            }
        }
        if self.last_retention.elapsed() >= RETENTION_EVERY {
            self.last_retention = Instant::now();
            match retention::enforce(&self.spec.dir, &self.spec.config, writing.as_deref()) {
                Ok(plan) if plan.stop => {
                    let e = self.disk_full();
                    if let Some(r) = &self.reporter {
                        r.send(ConsumerEvent::Failed(e));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("retention: {e}"),
            }
        }
    }
}

/// A running recorder pipeline.
pub struct Recorder {
    pipeline: gst::Pipeline,
    sources: Vec<gst_app::AppSrc>,
    /// The remote participants' tracks, in a recording of the meeting.
    voices: Option<Arc<VoiceTracks>>,
}

impl Recorder {
    /// Builds the recorder pipeline for `feeds` and starts it; returns it with one sink per feed.
    /// `plan` names the participants' tracks: with a local speaker, [`Feed::Opus`] is their
    /// track (and the meeting's Opus the mix); each remote gets a track from the meeting hub.
    pub fn start(
        feeds: &[Feed],
        plan: &TrackPlan,
        cfg: &RecordingConfig,
        dir: &Path,
        keyframes: KeyframeRequester,
        reporter: Reporter,
        writing: Arc<Mutex<Option<PathBuf>>>,
    ) -> Result<(Recorder, Vec<Box<dyn FeedSink>>)> {
        let pipeline = gst::Pipeline::with_name("roombox-recorder");
        let split = make("splitmuxsink")?;
        split.set_property("max-size-time", cfg.segment.as_nanos() as u64);
        // splitmuxsink asks for a keyframe at each segment boundary; the probe below forwards
        // the request from the recorder's appsrc to the capture encoder, so segments have the
        // configured length instead of a whole number of GOPs.
        split.set_property("send-keyframe-requests", true);
        let fragment_ms = cfg.fragment.as_millis() as u64;
        let muxer = match cfg.format {
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
                m
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
                m
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
        pipeline
            .add(&split)
            .map_err(|e| MediaError::link("the recorder", e))?;

        // Timestamps are re-based on the first video keyframe, so each recording starts at 0
        // and begins with a decodable frame.
        let base: Arc<Mutex<Option<gst::ClockTime>>> = Arc::new(Mutex::new(None));
        let has_video = feeds.iter().any(|f| f.is_video());
        let mut sources = Vec::new();
        let mut sinks: Vec<Box<dyn FeedSink>> = Vec::new();
        // The mix comes before the box's own track in `feeds`, so it is the first audio track.
        // The remote participants' tracks come after the feeds' (the mix first); the mix's
        // timeline, which keeps them going, finds them here.
        let voices: Arc<std::sync::OnceLock<Arc<VoiceTracks>>> = Arc::default();
        for &feed in feeds {
            let pad_template = match feed.base() {
                Feed::H264 | Feed::Share | Feed::Program => "video",
                Feed::Aac | Feed::Opus => "audio_%u",
                Feed::Pcm { .. } | Feed::Meeting | Feed::MeetingAac | Feed::MeetingOpus => continue,
            };
            let appsrc = feed_input(
                &pipeline,
                feed,
                &split,
                pad_template,
                32 << 20,
                "the recorder",
            )?;
            if feed.is_video() {
                forward_keyframe_requests(&appsrc, keyframes.clone(), base.clone())?;
            }
            match (feed, &plan.local) {
                (Feed::MeetingOpus, Some(_)) => tag_after(&appsrc, MIX_TITLE, None),
                (Feed::Opus, Some((id, name))) => tag_after(&appsrc, name, Some(id)),
                _ => {}
            }
            let base = base.clone();
            let is_video = feed.is_video();
            // The mix's timeline keeps the quiet participants' tracks going.
            let heartbeat = Some(voices.clone()).filter(|_| feed == Feed::MeetingOpus);
            sinks.push(Box::new(AppSrcSink::with_map(appsrc.clone(), move |s| {
                if let Some(v) = heartbeat.as_ref().and_then(|v| v.get()) {
                    if let Some(t) = s.buffer().and_then(|b| running_time(s, b.pts())) {
                        v.advance(t);
                    }
                }
                rebase(s, &base, is_video, has_video)
            })));
            sources.push(appsrc);
        }
        if sources.is_empty() {
            return Err(MediaError::NoSource("video or audio"));
        }
        if plan.local.is_some() && feeds.contains(&Feed::MeetingOpus) {
            let v = VoiceTracks::build(
                &pipeline,
                &split,
                &plan.remotes,
                MeetingHub::shared(),
                base.clone(),
                has_video,
            )?;
            let _ = voices.set(Arc::new(v));
        }

        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::Start("the recorder's bus".into()))?;
        let mut stream = bus.stream();
        tokio::spawn(async move {
            let mut started = false;
            while let Some(msg) = stream.next().await {
                let ev = match msg.view() {
                    gst::MessageView::Element(e) => {
                        let Some(s) = e.structure() else { continue };
                        let loc = s.get::<String>("location").ok().map(PathBuf::from);
                        match (s.name().as_str(), loc) {
                            ("splitmuxsink-fragment-opened", Some(p)) => {
                                *lock(&writing) = Some(p);
                                if started {
                                    continue;
                                }
                                started = true;
                                ConsumerEvent::Started
                            }
                            ("splitmuxsink-fragment-closed", Some(p)) => {
                                {
                                    let mut w = lock(&writing);
                                    if w.as_ref() == Some(&p) {
                                        *w = None;
                                    }
                                }
                                let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                                sync_file(p.clone());
                                ConsumerEvent::FileClosed {
                                    path: p.display().to_string(),
                                    bytes,
                                }
                            }
                            _ => continue,
                        }
                    }
                    gst::MessageView::Eos(_) => ConsumerEvent::Finished,
                    gst::MessageView::Error(e) if caps_refused(e) => {
                        tracing::info!("recorder: a new picture format starts a new segment");
                        continue;
                    }
                    gst::MessageView::Error(e) => {
                        ConsumerEvent::Failed(MediaError::from_bus(&msg, e))
                    }
                    _ => continue,
                };
                let last = matches!(ev, ConsumerEvent::Finished | ConsumerEvent::Failed(_));
                reporter.send(ev);
                if last {
                    break;
                }
            }
        });

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Start("the recorder pipeline".into()))?;
        Ok((
            Recorder {
                pipeline,
                sources,
                voices: voices.get().cloned(),
            },
            sinks,
        ))
    }

    /// Ends every stream so the last segment is finalised; [`ConsumerEvent::Finished`] follows.
    pub fn finish(&self) {
        let voices = self.voices.iter().flat_map(|v| v.sources.iter());
        for src in self.sources.iter().chain(voices) {
            let _ = src.end_of_stream();
        }
    }

    /// Stops at once (after a failure, or once finished).
    pub fn shutdown(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Matroska's refusal of a new picture size mid-file (the program switched between the camera
/// and the share). splitmuxsink answers it by ending the segment and starting the next with the
/// new format, so it is no failure.
fn caps_refused(e: &gst::message::Error) -> bool {
    e.debug()
        .is_some_and(|d| d.contains("Caps changes are not supported by Matroska"))
}

/// Makes a file's data durable, off the async threads.
pub fn sync_file(path: PathBuf) {
    tokio::task::spawn_blocking(move || {
        if let Ok(f) = std::fs::File::open(&path) {
            let _ = f.sync_data();
        }
    });
}

/// Forwards upstream force-key-unit requests that reach `appsrc` (from splitmuxsink) to the
/// capture pipeline's encoder, which is in another pipeline and would never see them.
/// splitmuxsink asks ahead, for the running time of the next boundary: that time is moved back
/// onto the capture's clock (adding the recording's origin) so the keyframe lands on the boundary.
pub fn forward_keyframe_requests(
    appsrc: &gst_app::AppSrc,
    keyframes: KeyframeRequester,
    origin: Arc<Mutex<Option<gst::ClockTime>>>,
) -> Result<()> {
    let pad = appsrc
        .static_pad("src")
        .ok_or_else(|| MediaError::link("the recorder", "appsrc has no pad"))?;
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(req) = gstreamer_video::UpstreamForceKeyUnitEvent::parse(ev) else {
            return gst::PadProbeReturn::Ok;
        };
        let base = origin.lock().ok().and_then(|b| *b);
        keyframes.request(req.running_time.zip(base).map(|(rt, base)| rt + base));
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Shifts a sample's timestamps (as running time on the capture's clock) so its consumer's
/// timeline starts at 0 at the first video keyframe (the first sample, with no video); drops
/// what comes before it.
pub fn rebase(
    sample: &gst::Sample,
    base: &Mutex<Option<gst::ClockTime>>,
    is_video: bool,
    has_video: bool,
) -> Option<gst::Sample> {
    let buffer = sample.buffer()?;
    // Encoders shift their segments (x264enc by 1000 h), so compare running times, not PTS.
    let pts = running_time(sample, buffer.pts())?;
    let dts = running_time(sample, buffer.dts());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutputSource;

    fn recorder(format: RecordingFormat, source: OutputSource) -> RecorderConsumer {
        let mut config = RecordingConfig {
            format,
            ..Default::default()
        };
        config.source = source;
        RecorderConsumer::new(RecorderSpec {
            config,
            dir: PathBuf::new(),
            speaker: ("me".into(), "Box".into()),
        })
    }

    #[test]
    fn a_matroska_meeting_recording_takes_the_mic_beside_the_mix_and_keeps_its_tracks_when_switched(
    ) {
        use Feed::*;
        let (mkv, mp4) = (RecordingFormat::Mkv, RecordingFormat::Mp4);
        let (room, meeting) = (OutputSource::Room, OutputSource::Meeting);
        assert_eq!(
            recorder(mkv, meeting).feeds(),
            [Meeting, MeetingOpus, Opus],
            "the mix first, then the box's own track"
        );
        assert_eq!(recorder(mkv, room).feeds(), [Program, Opus]);
        assert_eq!(recorder(mp4, meeting).feeds(), [Meeting, MeetingAac]);
        // Running: the file's tracks stay what they were at the start, so a switch moves the
        // same number of feeds.
        let mut r = recorder(mkv, room);
        r.tracked = Some(false);
        assert!(r.set_source(meeting));
        assert_eq!(r.feeds(), [Meeting, MeetingOpus], "the mix only");
        let mut r = recorder(mkv, meeting);
        r.tracked = Some(true);
        assert!(r.set_source(room));
        assert_eq!(
            r.feeds(),
            [Program, Opus, Opus],
            "the room's mic in the mix's track"
        );
        r.shutdown();
        assert_eq!(
            r.feeds(),
            [Program, Opus],
            "started again: as its source says"
        );
    }
}

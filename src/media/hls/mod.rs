//! HLS: a consumer that cuts the shared H.264 and AAC into low-latency HLS — CMAF (fragmented
//! MP4) parts of a fifth of a second, whole segments at keyframes, a playlist with blocking
//! reload and a preload hint — and writes them to a directory the box's HTTP server serves.
//!
//! GStreamer 1.22 has no CMAF muxer (`hlssink2` writes MPEG-TS and whole segments only), so
//! the fragments are built here with `mp4-atom` ([`fmp4`]), cut by a pure [`segmenter`], and
//! listed by a pure [`playlist`]. The segmenter asks the shared encoder for a keyframe ahead of
//! each segment boundary, so segments have the configured length whatever the encoder's
//! keyframe interval.
//!
//! The HTTP server learns where the live edge is from [`edge`], to hold a blocking playlist
//! request or a request for the hinted part until it exists.
//!
//! Imported by the agent's state (the consumer's spec) and by `http`, which serves the files and
//! waits on [`edge`]; the engine runs it as one more consumer and knows nothing else of it.

pub mod fmp4;
pub mod playlist;
pub mod segmenter;

use super::consumer::{
    Consumer, ConsumerEvent, Feed, FeedSink, KeyframeRequester, Pushed, Reporter, StartContext,
};
use super::error::{MediaError, Result};
use super::recorder::rebase;
use crate::sync::lock;
use fmp4::{AudioTrack, VideoTrack};
use gstreamer as gst;
use playlist::{init_name, part_name, segment_name, PartEntry, SegmentEntry};
pub use playlist::{parse_name, HlsFile, INIT, PLAYLIST};
use segmenter::{AudioIn, Part, Segmenter, VideoIn};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Parts held back, at most, while a track's setup has not come (about 2 s): then the stream
/// goes on without that track.
const MAX_PENDING_PARTS: usize = 10;
/// Segments kept on disk after they leave the playlist, for players just behind.
const GRACE_SEGMENTS: usize = 3;

/// Where and how to write HLS.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsSpec {
    /// The directory of the playlist and segments (emptied at each start).
    pub dir: PathBuf,
    /// Segment length, whole seconds.
    pub segment: Duration,
    /// Part length (the part target).
    pub part: Duration,
    /// Complete segments in the playlist.
    pub playlist_length: u32,
    /// The room's own picture and sound, or the meeting's.
    pub source: crate::model::OutputSource,
}

/// Where the live edge of a directory's stream is, for the HTTP server's blocking requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Edge {
    /// HLS runs and its init segment exists.
    pub live: bool,
    /// The stream ended (its playlist has `#EXT-X-ENDLIST`).
    pub ended: bool,
    /// The open segment's media sequence number.
    pub msn: u64,
    /// Parts of the open segment in the playlist.
    pub parts: u32,
}

impl Edge {
    /// True when the playlist holds segment `msn` whole (`part` None) or its part `part`.
    pub fn has(&self, msn: u64, part: Option<u32>) -> bool {
        match part {
            None => self.msn > msn,
            Some(p) => self.msn > msn || (self.msn == msn && self.parts > p),
        }
    }

    /// True when waiting could bring segment `msn` (part `part`): the stream runs, and it is
    /// the open segment or the next.
    pub fn can_bring(&self, msn: u64, part: Option<u32>) -> bool {
        self.live && !self.ended && !self.has(msn, part) && msn <= self.msn + 1
    }
}

type EdgeMap = Mutex<HashMap<PathBuf, Arc<watch::Sender<Edge>>>>;
static EDGES: LazyLock<EdgeMap> = LazyLock::new(Mutex::default);

fn edge_sender(dir: &Path) -> Arc<watch::Sender<Edge>> {
    let mut map = lock(&EDGES);
    map.entry(dir.to_path_buf())
        .or_insert_with(|| Arc::new(watch::channel(Edge::default()).0))
        .clone()
}

/// The live edge of the stream written to `dir` (not live when no HLS writes there).
pub fn edge(dir: &Path) -> watch::Receiver<Edge> {
    edge_sender(dir).subscribe()
}

/// The HLS consumer.
pub struct Hls {
    spec: HlsSpec,
    running: Option<Arc<Mutex<Writer>>>,
}

impl Hls {
    /// HLS for `spec`, not yet started.
    pub fn new(spec: HlsSpec) -> Hls {
        Hls {
            spec,
            running: None,
        }
    }
}

impl Consumer for Hls {
    fn set_source(&mut self, source: crate::model::OutputSource) -> bool {
        self.spec.source = source;
        true
    }

    fn feeds(&self) -> Vec<Feed> {
        // The program (the camera, or the share while there is one) or the meeting. A new
        // picture format starts a new segment behind a discontinuity with its own init segment.
        vec![Feed::Program, Feed::Aac]
            .into_iter()
            .map(|f| f.from_source(self.spec.source))
            .collect()
    }

    fn start(&mut self, mut ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>> {
        self.shutdown();
        // The meeting's feeds are written as the room's.
        ctx.feeds = ctx.feeds.iter().map(|f| f.base()).collect();
        let dir = &self.spec.dir;
        std::fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
        // A new stream starts a new playlist: nothing stale stays playable.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if parse_name(&name).is_some() || name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let video = ctx.feeds.iter().any(|f| f.is_video());
        let audio = ctx.feeds.contains(&Feed::Aac);
        let writer = Arc::new(Mutex::new(Writer::new(
            self.spec.clone(),
            video,
            audio,
            ctx.reporter,
            ctx.keyframes,
        )));
        let base: Arc<Mutex<Option<gst::ClockTime>>> = Arc::default();
        let sinks = ctx
            .feeds
            .iter()
            .map(|&feed| {
                Box::new(HlsSink {
                    feed,
                    has_video: video,
                    base: base.clone(),
                    writer: writer.clone(),
                }) as Box<dyn FeedSink>
            })
            .collect();
        self.running = Some(writer);
        Ok(sinks)
    }

    fn finish(&mut self) -> bool {
        if let Some(w) = self.running.take() {
            lock(&w).finish();
        }
        false
    }

    fn shutdown(&mut self) {
        if let Some(w) = self.running.take() {
            lock(&w).stop();
        }
    }
}

impl Drop for Hls {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One feed's sink: rebases the sample onto the stream's origin (which starts at a keyframe)
/// and hands it to the writer.
struct HlsSink {
    feed: Feed,
    has_video: bool,
    base: Arc<Mutex<Option<gst::ClockTime>>>,
    writer: Arc<Mutex<Writer>>,
}

impl FeedSink for HlsSink {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        let video = self.feed.is_video();
        if let Some(s) = rebase(sample, &self.base, video, self.has_video) {
            if let Ok(mut w) = self.writer.lock() {
                w.push(self.feed, &s);
            }
        }
        Pushed::Ok
    }
}

/// Turns samples into files: parts, segments, the init segment and the playlist.
struct Writer {
    spec: HlsSpec,
    seg: Segmenter,
    video: bool,
    audio: bool,
    vtrack: Option<VideoTrack>,
    atrack: Option<AudioTrack>,
    /// Whether the init segment is written.
    init: bool,
    /// The init segment in use: 0 for `init.mp4`, k after the k-th new picture format.
    init_index: u32,
    /// Parts made before the init segment could be.
    pending: Vec<Part>,
    /// The listed segments, the last one open.
    segments: VecDeque<SegmentEntry>,
    /// The open segment's bytes so far.
    open: Vec<u8>,
    /// Segments out of the playlist, still on disk: (msn, parts).
    expired: VecDeque<(u64, u32)>,
    /// The wall clock at the stream's origin.
    origin: Option<SystemTime>,
    edge: Arc<watch::Sender<Edge>>,
    reporter: Reporter,
    keyframes: KeyframeRequester,
    started: bool,
    done: bool,
}

impl Writer {
    fn new(
        spec: HlsSpec,
        video: bool,
        audio: bool,
        reporter: Reporter,
        keyframes: KeyframeRequester,
    ) -> Writer {
        let edge = edge_sender(&spec.dir);
        edge.send_replace(Edge::default());
        Writer {
            seg: Segmenter::new(spec.part, spec.segment, video, audio.then_some(48_000)),
            spec,
            video,
            audio,
            vtrack: None,
            atrack: None,
            init: false,
            init_index: 0,
            pending: Vec::new(),
            segments: VecDeque::from([SegmentEntry {
                msn: 0,
                parts: Vec::new(),
                date: None,
                init: 0,
            }]),
            open: Vec::new(),
            expired: VecDeque::new(),
            origin: None,
            edge,
            reporter,
            keyframes,
            started: false,
            done: false,
        }
    }

    fn push(&mut self, feed: Feed, sample: &gst::Sample) {
        if self.done {
            return;
        }
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Some(pts) = buffer.pts() else { return };
        let pts = pts.nseconds();
        if self.origin.is_none() {
            self.origin = SystemTime::now().checked_sub(Duration::from_nanos(pts));
        }
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let caps = sample.caps().and_then(|c| c.structure(0));
        let result = match feed {
            f if f.is_video() => {
                let c = fmp4::convert(map.as_slice());
                let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let track = match (c.sps, c.pps, caps) {
                    (Some(sps), Some(pps), Some(s)) => Some(VideoTrack {
                        width: s.get::<i32>("width").unwrap_or(0) as u16,
                        height: s.get::<i32>("height").unwrap_or(0) as u16,
                        sps,
                        pps,
                    }),
                    _ => None,
                };
                match (&self.vtrack, track) {
                    (None, Some(t)) => self.vtrack = Some(t),
                    (Some(old), Some(t)) if key && self.init && *old != t => {
                        if let Err(e) = self.new_format(t) {
                            return self.fail(e);
                        }
                    }
                    _ => {}
                }
                if self.vtrack.is_none() || c.data.is_empty() {
                    return;
                }
                let dts = buffer.dts().map_or(pts, |d| d.nseconds());
                self.seg.push_video(VideoIn {
                    pts,
                    dts,
                    key,
                    data: c.data,
                })
            }
            Feed::Aac => {
                if self.atrack.is_none() {
                    let s = caps;
                    let config = s
                        .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                        .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()));
                    if let (Some(s), Some(config)) = (s, config) {
                        let rate = s.get::<i32>("rate").unwrap_or(48_000).max(1) as u32;
                        self.atrack = Some(AudioTrack {
                            rate,
                            channels: s.get::<i32>("channels").unwrap_or(1).max(1) as u16,
                            config,
                        });
                        if rate != 48_000 {
                            self.seg.set_audio_rate(rate);
                        }
                    }
                }
                if self.atrack.is_none() {
                    return;
                }
                self.seg.push_audio(AudioIn {
                    pts,
                    data: map.to_vec(),
                })
            }
            _ => return,
        };
        match result {
            Ok(p) => {
                if p.want_keyframe {
                    self.keyframes.request(None);
                }
                if let Some(part) = p.part {
                    self.take(part);
                }
            }
            Err(e) => self.fail(MediaError::Start(e.to_string())),
        }
    }

    /// The picture's format changed at a keyframe (the program switched between the camera and
    /// the share): its init segment is written, and the open segment ends at this keyframe so
    /// the next starts behind a discontinuity with the new init. Players keep playing.
    fn new_format(&mut self, track: VideoTrack) -> Result<()> {
        let k = self.init_index + 1;
        let bytes = fmp4::init(Some(&track), self.atrack.as_ref())
            .map_err(|e| MediaError::Start(e.to_string()))?;
        self.write(&init_name(k), &bytes)?;
        tracing::info!(
            "HLS: new picture format {}x{} from segment {}: {}",
            track.width,
            track.height,
            self.seg.next_part().0 + 1,
            init_name(k)
        );
        self.init_index = k;
        self.vtrack = Some(track);
        self.seg.break_at_next_keyframe();
        Ok(())
    }

    /// Writes the init segment once every track's setup has come; a part made before waits,
    /// and a track whose setup never comes is left out.
    fn take(&mut self, part: Part) {
        if !self.init {
            self.pending.push(part);
            let late = self.pending.len() >= MAX_PENDING_PARTS;
            if self.audio && self.atrack.is_none() && late {
                tracing::warn!("HLS: no audio came; the stream goes on without it");
                self.audio = false;
                self.seg.drop_audio();
            }
            if self.video && self.vtrack.is_none() {
                return;
            }
            if self.audio && self.atrack.is_none() {
                return;
            }
            let bytes = match fmp4::init(self.vtrack.as_ref(), self.atrack.as_ref()) {
                Ok(b) => b,
                Err(e) => return self.fail(MediaError::Start(e.to_string())),
            };
            if let Err(e) = self.write(INIT, &bytes) {
                return self.fail(e);
            }
            self.init = true;
            for p in std::mem::take(&mut self.pending) {
                self.write_part(p);
            }
            return;
        }
        self.write_part(part);
    }

    fn write_part(&mut self, p: Part) {
        if self.done {
            return;
        }
        if let Err(e) = self.write(&part_name(p.msn, p.index), &p.bytes) {
            return self.fail(e);
        }
        self.open.extend_from_slice(&p.bytes);
        let origin = self.origin;
        let Some(entry) = self.segments.back_mut() else {
            return;
        };
        if entry.parts.is_empty() {
            entry.date = origin.map(|o| o + Duration::from_secs_f64(p.start));
        }
        entry.parts.push(PartEntry {
            duration: p.duration,
            independent: p.independent,
        });
        if p.ends_segment {
            let bytes = std::mem::take(&mut self.open);
            if let Err(e) = self.write(&segment_name(p.msn), &bytes) {
                return self.fail(e);
            }
            self.segments.push_back(SegmentEntry {
                msn: p.msn + 1,
                parts: Vec::new(),
                date: None,
                init: self.init_index,
            });
            while self.segments.len() > self.spec.playlist_length as usize + 1 {
                if let Some(old) = self.segments.pop_front() {
                    self.expired.push_back((old.msn, old.parts.len() as u32));
                }
            }
            while self.expired.len() > GRACE_SEGMENTS {
                if let Some((msn, parts)) = self.expired.pop_front() {
                    let _ = std::fs::remove_file(self.spec.dir.join(segment_name(msn)));
                    for k in 0..parts {
                        let _ = std::fs::remove_file(self.spec.dir.join(part_name(msn, k)));
                    }
                }
            }
        }
        if let Err(e) = self.write_playlist(false) {
            return self.fail(e);
        }
        if p.ends_segment && !self.started {
            self.started = true;
            self.reporter.send(ConsumerEvent::Started);
        }
    }

    fn write_playlist(&mut self, ended: bool) -> Result<()> {
        let list: Vec<SegmentEntry> = self
            .segments
            .iter()
            .filter(|s| !ended || !s.parts.is_empty())
            .cloned()
            .collect();
        let text = playlist::render(
            &list,
            self.spec.part.as_secs_f64(),
            self.spec.segment.as_secs(),
            self.seg.next_part(),
            ended,
        );
        self.write(PLAYLIST, text.as_bytes())?;
        let (msn, parts) = match self.segments.back() {
            Some(s) => (s.msn, s.parts.len() as u32),
            None => (0, 0),
        };
        self.edge.send_replace(Edge {
            live: true,
            ended,
            msn,
            parts,
        });
        Ok(())
    }

    /// Writes a file whole: a reader sees the old one or the new one, never a part of it.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.spec.dir.join(name);
        let tmp = self.spec.dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| MediaError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| MediaError::io(&path, e))
    }

    fn fail(&mut self, e: MediaError) {
        if !self.done {
            self.done = true;
            self.edge.send_modify(|e| e.live = false);
            self.reporter.send(ConsumerEvent::Failed(e));
        }
    }

    /// Ends the stream: the open part closes and the playlist gets `#EXT-X-ENDLIST`.
    fn finish(&mut self) {
        if self.done {
            return;
        }
        if self.init {
            match self.seg.finish() {
                Ok(Some(p)) => self.write_part(p),
                Ok(None) => {}
                Err(e) => return self.fail(MediaError::Start(e.to_string())),
            }
            if let Err(e) = self.write_playlist(true) {
                return self.fail(e);
            }
        }
        self.done = true;
        self.edge.send_modify(|e| e.ended = true);
    }

    /// Stops at once: nothing more is written, and blocked requests are released.
    fn stop(&mut self) {
        self.done = true;
        self.edge.send_modify(|e| e.live = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_says_what_the_playlist_holds_and_what_waiting_can_bring() {
        let e = Edge {
            live: true,
            ended: false,
            msn: 5,
            parts: 2,
        };
        assert!(e.has(4, None) && e.has(5, Some(1)) && e.has(4, Some(9)));
        assert!(!e.has(5, None) && !e.has(5, Some(2)));
        assert!(e.can_bring(5, Some(2)) && e.can_bring(6, Some(0)) && e.can_bring(5, None));
        assert!(!e.can_bring(7, Some(0)), "two segments ahead");
        assert!(!e.can_bring(5, Some(1)), "already there");
        assert!(!Edge { live: false, ..e }.can_bring(5, Some(2)));
        assert!(!Edge { ended: true, ..e }.can_bring(5, Some(2)));
    }
}

//! HLS: a consumer that cuts the shared H.264 and AAC into MPEG-TS segments with `hlssink2` and
//! keeps a short live playlist on disk, which the box's HTTP server serves.
//!
//! GStreamer 1.22 has no CMAF muxer, so this is classic HLS: whole-second segments, and players
//! start about three segments behind the live edge. `hlssink2` asks for a keyframe at each
//! segment boundary; the request is forwarded to the shared encoder (as the recorder does), so
//! segments have the configured length whatever the encoder's keyframe interval.

use super::consumer::{Consumer, ConsumerEvent, Feed, FeedSink, StartContext};
use super::element::{make, set};
use super::error::{MediaError, Result};
use super::recorder::{forward_keyframe_requests, rebase};
use super::sink::{feed_input, AppSrcSink};
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The playlist's file name in the HLS directory.
pub const PLAYLIST: &str = "index.m3u8";

/// Where and how to write HLS.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsSpec {
    /// The directory of the playlist and segments (emptied at each start).
    pub dir: PathBuf,
    /// Segment length, whole seconds.
    pub segment: Duration,
    /// Segments in the playlist.
    pub playlist_length: u32,
}

/// True for a name this consumer writes (the playlist or a segment), so a server can refuse
/// anything else.
pub fn is_hls_file(name: &str) -> bool {
    name == PLAYLIST
        || (name.starts_with("segment")
            && name.ends_with(".ts")
            && name["segment".len()..name.len() - 3]
                .chars()
                .all(|c| c.is_ascii_digit())
            && name.len() > "segment.ts".len())
}

/// The HLS consumer.
pub struct Hls {
    spec: HlsSpec,
    running: Option<(gst::Pipeline, Vec<gst_app::AppSrc>)>,
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
    fn feeds(&self) -> Vec<Feed> {
        vec![Feed::H264, Feed::Aac]
    }

    fn start(&mut self, ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>> {
        self.shutdown();
        let dir = &self.spec.dir;
        std::fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
        // A new stream starts a new playlist: nothing stale stays playable.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if is_hls_file(&e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let pipeline = gst::Pipeline::with_name("roombox-hls");
        let sink = make("hlssink2")?;
        set(
            &sink,
            "location",
            &dir.join("segment%05d.ts").to_string_lossy(),
        )?;
        set(
            &sink,
            "playlist-location",
            &dir.join(PLAYLIST).to_string_lossy(),
        )?;
        set(
            &sink,
            "target-duration",
            &self.spec.segment.as_secs().to_string(),
        )?;
        set(
            &sink,
            "playlist-length",
            &self.spec.playlist_length.to_string(),
        )?;
        // Segments stay on disk a little longer than they are listed, for players just behind.
        set(
            &sink,
            "max-files",
            &(self.spec.playlist_length + 3).to_string(),
        )?;
        set(&sink, "send-keyframe-requests", "true")?;
        pipeline
            .add(&sink)
            .map_err(|e| MediaError::link("HLS", e))?;
        let has_video = ctx.feeds.contains(&Feed::H264);
        let base: Arc<Mutex<Option<gst::ClockTime>>> = Arc::default();
        let mut sources = Vec::new();
        let mut sinks: Vec<Box<dyn FeedSink>> = Vec::new();
        for &feed in &ctx.feeds {
            let pad = match feed {
                Feed::H264 => "video",
                Feed::Aac => "audio",
                _ => continue,
            };
            let src = feed_input(&pipeline, feed, &sink, pad, 8 << 20, "HLS")?;
            if feed == Feed::H264 {
                forward_keyframe_requests(&src, ctx.keyframes.clone(), base.clone())?;
            }
            let base = base.clone();
            let video = feed == Feed::H264;
            sinks.push(Box::new(AppSrcSink::with_map(src.clone(), move |s| {
                rebase(s, &base, video, has_video)
            })));
            sources.push(src);
        }
        watch(&pipeline, ctx.reporter.clone(), dir.join(PLAYLIST))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Start("the HLS pipeline".into()))?;
        self.running = Some((pipeline, sources));
        Ok(sinks)
    }

    fn finish(&mut self) -> bool {
        match &self.running {
            Some((_, sources)) => {
                for s in sources {
                    let _ = s.end_of_stream();
                }
                true
            }
            None => false,
        }
    }

    fn shutdown(&mut self) {
        if let Some((p, _)) = self.running.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

impl Drop for Hls {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reports the pipeline's end and errors, and `Started` once the playlist exists.
fn watch(
    pipeline: &gst::Pipeline,
    reporter: super::consumer::Reporter,
    playlist: PathBuf,
) -> Result<()> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Start("the HLS pipeline's bus".into()))?;
    let mut stream = bus.stream();
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        let mut started = false;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { return };
                    match msg.view() {
                        gst::MessageView::Eos(_) => {
                            reporter.send(ConsumerEvent::Finished);
                            return;
                        }
                        gst::MessageView::Error(e) => {
                            reporter.send(ConsumerEvent::Failed(MediaError::from_bus(&msg, e)));
                            return;
                        }
                        _ => {}
                    }
                }
                _ = poll.tick(), if !started => {
                    if playlist.exists() {
                        started = true;
                        reporter.send(ConsumerEvent::Started);
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_playlist_and_segments_are_hls_files() {
        assert!(is_hls_file("index.m3u8"));
        assert!(is_hls_file("segment00012.ts"));
        for bad in [
            "../etc/passwd",
            "segment.ts",
            "segmentx1.ts",
            "segment1.ts/..",
            "a.ts",
            "",
        ] {
            assert!(!is_hls_file(bad), "{bad}");
        }
    }
}

//! One RTMP output: a consumer that muxes the shared H.264 and AAC into FLV and publishes it with
//! `rtmp2sink` (`rtmp://` and `rtmps://`).
//!
//! `rtmp2sink` never reconnects: when the ingest drops or refuses the stream its pipeline stops
//! with an error. This consumer then rebuilds its own pipeline after a jittered backoff, for as
//! long as it is attached; capture and the other outputs never notice. While it is down its
//! sinks drop what they get, and the video resumes at a keyframe.
//!
//! The stream key is a secret: it lives only in [`StreamKey`] (whose `Debug` hides it) and in
//! the sink's `location`. Errors are scrubbed of it before they leave this file.

use super::consumer::{
    Consumer, ConsumerEvent, Feed, FeedSink, KeyframeRequester, Pushed, Reporter, StartContext,
};
use super::element::{make, set};
use super::error::{MediaError, Result};
use super::recorder::rebase;
use super::sink::{feed_input, AppSrcSink};
use crate::backoff::Backoff;
use crate::config::BackoffConfig;
pub use crate::config::{check_url, StreamKey};
use crate::sync::lock;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How long an ingest may take to accept a publish before the output is rebuilt.
const ACCEPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// One RTMP output.
#[derive(Debug, Clone, PartialEq)]
pub struct RtmpSpec {
    /// The output's name, unique on the box.
    pub name: String,
    /// `rtmp://host[:port]/app` or `rtmps://…`, without the key.
    pub url: String,
    /// The stream key appended to the URL.
    pub key: StreamKey,
    /// How soon to retry after the ingest dropped or refused the stream.
    pub reconnect: BackoffConfig,
    /// The room's own picture and sound, or the meeting's.
    pub source: crate::model::OutputSource,
}

impl RtmpSpec {
    /// What people see: the URL with `/****` for the key.
    pub fn redacted(&self) -> String {
        redacted_url(&self.url, !self.key.is_empty())
    }

    fn location(&self) -> String {
        if self.key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{}", self.url.trim_end_matches('/'), self.key.expose())
        }
    }
}

/// `url` as people may see it: with `/****` where the key goes.
pub fn redacted_url(url: &str, has_key: bool) -> String {
    let url = url.trim_end_matches('/');
    if has_key {
        format!("{url}/****")
    } else {
        url.to_string()
    }
}

/// The pipeline currently publishing, shared between the sinks and the supervisor task.
#[derive(Default)]
struct Slot {
    /// The appsrcs of the live output, one per feed; empty while it is down.
    sources: Vec<gst_app::AppSrc>,
    /// The capture running time the live output's timeline starts at (its first keyframe);
    /// each rebuilt output starts its own timeline at 0, as an ingest expects.
    base: Arc<Mutex<Option<gst::ClockTime>>>,
    /// True when the output carries video, so its timeline starts at a keyframe.
    has_video: bool,
}

/// The RTMP consumer.
pub struct Rtmp {
    spec: RtmpSpec,
    slot: Arc<Mutex<Slot>>,
    /// Tells the supervisor to finish (true) or to stop at once (dropped).
    finish_tx: Option<watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Rtmp {
    /// An output for `spec`, not yet started.
    pub fn new(spec: RtmpSpec) -> Rtmp {
        Rtmp {
            spec,
            slot: Arc::default(),
            finish_tx: None,
            task: None,
        }
    }
}

impl Consumer for Rtmp {
    fn set_source(&mut self, source: crate::model::OutputSource) -> bool {
        self.spec.source = source;
        true
    }

    fn feeds(&self) -> Vec<Feed> {
        // The program: the camera, or the share's own encode while there is one.
        vec![Feed::Program, Feed::Aac]
            .into_iter()
            .map(|f| f.from_source(self.spec.source))
            .collect()
    }

    fn start(&mut self, ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>> {
        // Fail now, not in a retry loop, when the elements are missing.
        for f in ["flvmux", "rtmp2sink"] {
            make(f)?;
        }
        self.shutdown();
        let (finish_tx, finish_rx) = watch::channel(false);
        let feeds = ctx.feeds.clone();
        lock(&self.slot).has_video = feeds.iter().any(|f| f.is_video());
        self.task = Some(tokio::spawn(supervise(
            self.spec.clone(),
            feeds.clone(),
            self.slot.clone(),
            ctx.reporter,
            ctx.keyframes,
            finish_rx,
        )));
        self.finish_tx = Some(finish_tx);
        Ok(feeds
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Box::new(SlotSink {
                    slot: self.slot.clone(),
                    index: i,
                    video: f.is_video(),
                }) as Box<dyn FeedSink>
            })
            .collect())
    }

    fn finish(&mut self) -> bool {
        let live = !lock(&self.slot).sources.is_empty();
        match &self.finish_tx {
            Some(tx) if live => tx.send(true).is_ok(),
            _ => {
                self.shutdown();
                false
            }
        }
    }

    fn shutdown(&mut self) {
        self.finish_tx = None;
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let sources = std::mem::take(&mut lock(&self.slot).sources);
        drop(sources);
    }
}

impl Drop for Rtmp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Pushes one feed into whichever output pipeline is live, on that output's timeline; drops
/// while none is.
struct SlotSink {
    slot: Arc<Mutex<Slot>>,
    index: usize,
    video: bool,
}

impl FeedSink for SlotSink {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        let (src, base, has_video) = {
            let slot = lock(&self.slot);
            (
                slot.sources.get(self.index).cloned(),
                slot.base.clone(),
                slot.has_video,
            )
        };
        let Some(src) = src else {
            // Down: the video resumes at a keyframe, asked for when the output is back.
            return Pushed::Idle;
        };
        match rebase(sample, &base, self.video, has_video) {
            Some(s) => AppSrcSink::new(src).push(&s),
            None => Pushed::Ok,
        }
    }
}

/// A built output pipeline that goes to NULL when dropped (also when its task is aborted).
struct Output {
    pipeline: gst::Pipeline,
    sources: Vec<gst_app::AppSrc>,
    /// Buffers that reached the sink; the second one means the ingest accepted the publish
    /// (rtmp2sink renders the first only once connected and publishing).
    rendered: Arc<AtomicU64>,
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn build(spec: &RtmpSpec, feeds: &[Feed]) -> Result<Output> {
    let pipeline = gst::Pipeline::with_name(&format!("roombox-rtmp-{}", spec.name));
    let mux = make("flvmux")?;
    set(&mux, "streamable", "true")?;
    // Video and audio come from one live clock: interleave without waiting long for either.
    set(&mux, "latency", "100000000")?;
    let sink = make("rtmp2sink")?;
    set(&sink, "location", &spec.location())?;
    set(&sink, "async-connect", "false")?;
    sink.set_property("sync", false);
    pipeline
        .add_many([&mux, &sink])
        .map_err(|e| MediaError::link("the RTMP output", e))?;
    mux.link(&sink)
        .map_err(|e| MediaError::link("the RTMP output", e))?;
    let mut sources = Vec::new();
    for &feed in feeds {
        let pad = match feed.base() {
            f if f.is_video() => "video",
            Feed::Aac => "audio",
            _ => continue,
        };
        let src = feed_input(&pipeline, feed, &mux, pad, 8 << 20, "the RTMP output")?;
        sources.push(src);
    }
    let rendered = Arc::new(AtomicU64::new(0));
    if let Some(pad) = sink.static_pad("sink") {
        let r = rendered.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            r.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    Ok(Output {
        pipeline,
        sources,
        rendered,
    })
}

/// How one run of the output pipeline ended.
enum Ended {
    /// It finished cleanly after a finish request.
    Finished,
    /// The ingest dropped or refused it, or it could not start.
    Failed(MediaError),
}

/// Keeps the output publishing: builds it, watches it, rebuilds it with backoff after a failure,
/// and finishes it (EOS, then `Finished`) when asked.
async fn supervise(
    spec: RtmpSpec,
    feeds: Vec<Feed>,
    slot: Arc<Mutex<Slot>>,
    reporter: Reporter,
    keyframes: KeyframeRequester,
    mut finish: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::from_config(&spec.reconnect);
    loop {
        let ended = run_once(
            &spec,
            &feeds,
            &slot,
            &reporter,
            &keyframes,
            &mut finish,
            &mut backoff,
        )
        .await;
        lock(&slot).sources.clear();
        match ended {
            Ended::Finished => {
                reporter.send(ConsumerEvent::Finished);
                return;
            }
            Ended::Failed(error) => {
                let error = scrub(&spec, error);
                if *finish.borrow() {
                    reporter.send(ConsumerEvent::Finished);
                    return;
                }
                let retry_in = backoff.next_delay();
                tracing::warn!(output = %spec.name, url = %spec.redacted(),
                    "RTMP output lost: {error}; retrying in {retry_in:?}");
                reporter.send(ConsumerEvent::Retrying { error, retry_in });
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = finish.changed() => {
                        reporter.send(ConsumerEvent::Finished);
                        return;
                    }
                }
            }
        }
    }
}

async fn run_once(
    spec: &RtmpSpec,
    feeds: &[Feed],
    slot: &Mutex<Slot>,
    reporter: &Reporter,
    keyframes: &KeyframeRequester,
    finish: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Ended {
    let output = match build(spec, feeds) {
        Ok(o) => o,
        Err(e) => return Ended::Failed(e),
    };
    let Some(bus) = output.pipeline.bus() else {
        return Ended::Failed(MediaError::Start("the RTMP output's bus".into()));
    };
    let mut messages = bus.stream();
    // rtmp2sink connects in READY→PAUSED without async-connect, so a dead host fails here; do
    // it off the async threads.
    let pipeline = output.pipeline.clone();
    let started = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Playing))
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    if !started {
        let why = bus
            .pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(MediaError::from_bus(&m, e)),
                _ => None,
            })
            .unwrap_or_else(|| {
                MediaError::Start(format!("the RTMP output to {}", spec.redacted()))
            });
        return Ended::Failed(why);
    }
    {
        let mut slot = lock(slot);
        slot.sources = output.sources.clone();
        slot.base = Arc::default();
    }
    // The new output's stream must start at a keyframe: ask for one now.
    keyframes.request(None);
    let mut reported = false;
    // rtmp2sink waits for ever on a server that accepts the TCP connection and never answers.
    let accept_by = tokio::time::Instant::now() + ACCEPT_TIMEOUT;
    let mut check = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    return Ended::Failed(MediaError::Runtime("the RTMP output's bus closed".into()));
                };
                match msg.view() {
                    gst::MessageView::Eos(_) => return Ended::Finished,
                    gst::MessageView::Error(e) => return Ended::Failed(MediaError::from_bus(&msg, e)),
                    _ => {}
                }
            }
            _ = check.tick(), if !reported => {
                if output.rendered.load(Ordering::Relaxed) >= 2 {
                    reported = true;
                    backoff.reset();
                    reporter.send(ConsumerEvent::Started);
                } else if tokio::time::Instant::now() >= accept_by {
                    return Ended::Failed(MediaError::Stalled(format!(
                        "the ingest accepted no stream within {}s",
                        ACCEPT_TIMEOUT.as_secs()
                    )));
                }
            }
            changed = finish.changed() => {
                if changed.is_err() {
                    return Ended::Finished;
                }
                lock(slot).sources.clear();
                for src in &output.sources {
                    let _ = src.end_of_stream();
                }
                // Wait for the EOS to reach the sink (bounded), then report.
                let deadline = tokio::time::sleep(std::time::Duration::from_secs(3));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                            Some(gst::MessageView::Eos(_)) | None => return Ended::Finished,
                            Some(gst::MessageView::Error(_)) => return Ended::Finished,
                            _ => {}
                        },
                        _ = &mut deadline => return Ended::Finished,
                    }
                }
            }
        }
    }
}

/// `error` with the stream key taken out of its text.
fn scrub(spec: &RtmpSpec, error: MediaError) -> MediaError {
    let text = error.to_string();
    if spec.key.is_empty() || !text.contains(spec.key.expose()) {
        return error;
    }
    MediaError::Runtime(spec.key.scrub(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_key_never_prints() {
        let spec = RtmpSpec {
            name: "yt".into(),
            url: "rtmp://a.example/live2/".into(),
            key: StreamKey::new("abcd-secret"),
            reconnect: BackoffConfig::default(),
            source: Default::default(),
        };
        assert_eq!(spec.redacted(), "rtmp://a.example/live2/****");
        assert!(!format!("{spec:?}").contains("abcd-secret"));
        assert_eq!(spec.location(), "rtmp://a.example/live2/abcd-secret");
        let e = scrub(
            &spec,
            MediaError::Runtime("cannot reach rtmp://a.example/live2/abcd-secret".into()),
        );
        assert_eq!(e.to_string(), "cannot reach rtmp://a.example/live2/****");
    }

    #[test]
    fn urls_are_checked_and_keys_hidden_in_errors() {
        assert!(check_url("rtmp://host/app").is_ok());
        assert!(check_url("rtmps://host:443/app").is_ok());
        let e = check_url("http://host/app/secretkey").unwrap_err();
        assert!(e.contains("not an rtmp"), "{e}");
        assert!(!e.contains("secretkey"), "{e}");
        assert!(check_url("rtmp:///app").unwrap_err().contains("no host"));
        assert!(check_url("rtmp://host")
            .unwrap_err()
            .contains("application"));
    }
}

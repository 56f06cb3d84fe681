//! Attaching and detaching consumer branches on the capture pipeline's tees, while it plays.
//!
//! A branch is `tee → leaky queue → appsink`. The queue gives the branch its own thread and drops
//! its oldest buffers when the consumer falls behind; the appsink hands samples to the consumer's
//! [`FeedSink`]. Whenever video was dropped (by the queue or by the sink), the branch passes
//! nothing until the next keyframe and asks the encoder for one, so the consumer always gets a
//! decodable stream and the others never notice.

use super::consumer::{FeedSink, KeyframeRequester, Pushed};
use super::element::{leaky_queue, set};
use super::error::{MediaError, Result};
use crate::sync::lock;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Buffers a branch may hold before it drops: about a second of video at 30 fps, or 1.5 s of
/// 20 ms audio frames.
const BRANCH_BUFFERS: u32 = 75;

/// Keyframe requests from one branch, at most one per [`KEYFRAME_GAP`]: a consumer that keeps
/// falling behind must not turn the shared encode into all keyframes.
struct Throttled {
    keyframes: KeyframeRequester,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The shortest time between two keyframe requests of one branch.
const KEYFRAME_GAP: std::time::Duration = std::time::Duration::from_millis(500);

impl Throttled {
    fn new(keyframes: KeyframeRequester) -> Throttled {
        Throttled {
            keyframes,
            last: std::sync::Mutex::new(None),
        }
    }

    fn request(&self) {
        let mut last = lock(&self.last);
        if last.is_some_and(|t| t.elapsed() < KEYFRAME_GAP) {
            return;
        }
        *last = Some(std::time::Instant::now());
        self.keyframes.request(None);
    }
}

/// A consumer branch fed by one tee of the capture pipeline.
pub struct Attached {
    tee: gst::Element,
    teepad: gst::Pad,
    queue: gst::Element,
    appsink: gst_app::AppSink,
}

/// Adds a branch on `tee` that hands every sample to `sink`. For video (`video`), the branch
/// starts at a keyframe, asked for at once.
pub fn attach(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    video: bool,
    sink: Box<dyn FeedSink>,
    keyframes: KeyframeRequester,
) -> Result<Attached> {
    let queue = leaky_queue(BRANCH_BUFFERS)?;
    let need_key = Arc::new(AtomicBool::new(video));
    if video {
        let need_key = need_key.clone();
        let keyframes = keyframes.clone();
        queue.connect("overrun", false, move |_| {
            // The consumer fell a second behind: what it gets next must start at a keyframe.
            if !need_key.swap(true, Ordering::Relaxed) {
                keyframes.request(None);
            }
            None
        });
    }
    let on_full = Throttled::new(keyframes.clone());
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .enable_last_sample(false)
        .max_buffers(2)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |appsink| {
                    let Ok(sample) = appsink.pull_sample() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    if video {
                        let key = sample
                            .buffer()
                            .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
                        if need_key.load(Ordering::Relaxed) {
                            if !key {
                                return Ok(gst::FlowSuccess::Ok);
                            }
                            need_key.store(false, Ordering::Relaxed);
                        }
                        match sink.push(&sample) {
                            Pushed::Ok => {}
                            Pushed::Full => {
                                need_key.store(true, Ordering::Relaxed);
                                on_full.request();
                            }
                            Pushed::Idle => need_key.store(true, Ordering::Relaxed),
                        }
                    } else {
                        let _ = sink.push(&sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    pipeline
        .add_many([&queue, appsink.upcast_ref()])
        .map_err(|e| MediaError::link("a consumer branch", e))?;
    queue
        .link(&appsink)
        .map_err(|e| MediaError::link("a consumer branch", e))?;
    // Playing before linked: a tee that pushes into a pad still flushing gets FLUSHING back,
    // and that stops the capture's streaming thread without an error.
    for el in [appsink.upcast_ref::<gst::Element>(), &queue] {
        el.sync_state_with_parent()
            .map_err(|_| MediaError::Start("a consumer branch".into()))?;
    }
    let teepad = tee
        .request_pad_simple("src_%u")
        .ok_or_else(|| MediaError::link("a consumer branch", "the tee gave no pad"))?;
    let sinkpad = queue
        .static_pad("sink")
        .ok_or_else(|| MediaError::link("a consumer branch", "the queue has no pad"))?;
    teepad
        .link(&sinkpad)
        .map_err(|e| MediaError::link("a consumer branch", e))?;
    if video {
        keyframes.request(None);
    }
    Ok(Attached {
        tee: tee.clone(),
        teepad,
        queue,
        appsink,
    })
}

impl Attached {
    /// Unlinks the branch once the tee's pad is idle, then removes it, without disturbing the
    /// tee's other branches.
    pub fn detach(self) {
        let Attached {
            tee,
            teepad,
            queue,
            appsink,
        } = self;
        let sinkpad = queue.static_pad("sink");
        teepad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            if let Some(sp) = &sinkpad {
                let _ = pad.unlink(sp);
            }
            tee.release_request_pad(pad);
            let elements = [queue.clone(), appsink.clone().upcast()];
            queue.call_async(move |_| {
                for el in &elements {
                    let _ = el.set_state(gst::State::Null);
                    if let Some(parent) = el.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) {
                        let _ = parent.remove(el);
                    }
                }
            });
            gst::PadProbeReturn::Remove
        });
    }
}

/// The parser a feed's encoded stream goes through before a muxer, and the muxer pad template
/// it takes (`video` or `audio`-ish, as `pads` names them for this muxer).
fn parser_of(feed: super::consumer::Feed) -> Option<&'static str> {
    use super::consumer::Feed;
    match feed.base() {
        Feed::H264 | Feed::Share | Feed::Program => Some("h264parse"),
        Feed::Aac => Some("aacparse"),
        Feed::Opus => Some("opusparse"),
        Feed::Pcm { .. } | Feed::Meeting | Feed::MeetingAac | Feed::MeetingOpus => None,
    }
}

/// Adds `appsrc → parser → muxer` for one encoded feed to a consumer's own pipeline: the
/// muxer's pad comes from `pad_template`. Returns the appsrc, holding at most `max_bytes`.
/// Every muxing consumer (recorder, RTMP, HLS) builds its inputs this way.
pub fn feed_input(
    pipeline: &gst::Pipeline,
    feed: super::consumer::Feed,
    muxer: &gst::Element,
    pad_template: &str,
    max_bytes: u64,
    what: &str,
) -> Result<gst_app::AppSrc> {
    let parser = parser_of(feed).ok_or(MediaError::Link {
        what: what.into(),
        detail: format!("{feed:?} is not an encoded feed"),
    })?;
    let src = AppSrcSink::appsrc(max_bytes)?;
    let parse = super::element::make(parser)?;
    pipeline
        .add_many([src.upcast_ref(), &parse])
        .map_err(|e| MediaError::link(what, e))?;
    src.link(&parse).map_err(|e| MediaError::link(what, e))?;
    let pad = muxer
        .request_pad_simple(pad_template)
        .ok_or_else(|| MediaError::link(what, format!("{} gave no pad", muxer.name())))?;
    parse
        .static_pad("src")
        .ok_or_else(|| MediaError::link(what, "the parser has no pad"))?
        .link(&pad)
        .map_err(|e| MediaError::link(what, e))?;
    Ok(src)
}

/// What an [`AppSrcSink`] makes of a sample before pushing it (None drops it).
type SampleMap = Box<dyn Fn(&gst::Sample) -> Option<gst::Sample> + Send + Sync>;

/// A [`FeedSink`] that pushes into an appsrc of the consumer's own pipeline, dropping (and
/// saying [`Pushed::Full`]) when that pipeline has fallen `max_bytes` behind.
pub struct AppSrcSink {
    src: gst_app::AppSrc,
    max_bytes: u64,
    map: Option<SampleMap>,
}

impl AppSrcSink {
    /// A live, time-format appsrc that never blocks, holding at most `max_bytes`.
    pub fn appsrc(max_bytes: u64) -> Result<gst_app::AppSrc> {
        let src = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(false)
            .max_bytes(max_bytes)
            .block(false)
            .build();
        set(&src, "leaky-type", "downstream")?;
        Ok(src)
    }

    /// Pushes into `src` unchanged.
    pub fn new(src: gst_app::AppSrc) -> AppSrcSink {
        AppSrcSink {
            max_bytes: src.max_bytes(),
            src,
            map: None,
        }
    }

    /// Pushes into `src` what `map` makes of each sample (None drops it).
    pub fn with_map(
        src: gst_app::AppSrc,
        map: impl Fn(&gst::Sample) -> Option<gst::Sample> + Send + Sync + 'static,
    ) -> AppSrcSink {
        AppSrcSink {
            max_bytes: src.max_bytes(),
            src,
            map: Some(Box::new(map)),
        }
    }
}

impl FeedSink for AppSrcSink {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        let size = sample.buffer().map(|b| b.size() as u64).unwrap_or(0);
        if self.src.current_level_bytes() + size > self.max_bytes {
            return Pushed::Full;
        }
        let pushed = match &self.map {
            Some(map) => match map(sample) {
                Some(s) => self.src.push_sample(&s),
                None => return Pushed::Ok,
            },
            None => self.src.push_sample(sample),
        };
        match pushed {
            Ok(_) => Pushed::Ok,
            Err(_) => Pushed::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};

    /// Counts what reaches it.
    struct Count(Arc<AtomicU64>);

    impl FeedSink for Count {
        fn push(&self, _: &gst::Sample) -> Pushed {
            self.0.fetch_add(1, Ordering::Relaxed);
            Pushed::Ok
        }
    }

    /// Buffers through `pad` so far.
    fn counter(pad: &gst::Pad) -> Arc<AtomicU64> {
        let n = Arc::new(AtomicU64::new(0));
        let c = n.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        n
    }

    fn advances(n: &AtomicU64, within: Duration) -> bool {
        let start = n.load(Ordering::Relaxed);
        let t = Instant::now();
        while t.elapsed() < within {
            if n.load(Ordering::Relaxed) > start {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// A branch attached while its tee is pushing flat out must never hand the source a
    /// FLUSHING (which stops the source's thread for good, with no error): the microphone of a
    /// box fell silent this way when a recording started.
    #[test]
    fn attaching_and_detaching_under_a_busy_tee_never_stops_the_source() {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let src = super::super::element::make("audiotestsrc").unwrap();
        set(&src, "samplesperbuffer", "8").unwrap();
        let tee = super::super::element::make("tee").unwrap();
        tee.set_property("allow-not-linked", true);
        pipeline.add_many([&src, &tee]).unwrap();
        src.link(&tee).unwrap();
        let flowing = counter(&tee.static_pad("sink").unwrap());
        pipeline.set_state(gst::State::Playing).unwrap();
        assert!(advances(&flowing, Duration::from_secs(5)), "never started");

        let mut got = Vec::new();
        for _ in 0..300 {
            let n = Arc::new(AtomicU64::new(0));
            let branch = attach(
                &pipeline,
                &tee,
                false,
                Box::new(Count(n.clone())),
                KeyframeRequester::default(),
            )
            .unwrap();
            assert!(
                advances(&flowing, Duration::from_secs(2)),
                "the source stopped after {} attaches",
                got.len()
            );
            branch.detach();
            got.push(n);
        }
        assert!(
            got.iter().filter(|n| n.load(Ordering::Relaxed) > 0).count() > 250,
            "branches got nothing"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

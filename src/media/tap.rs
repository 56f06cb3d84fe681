//! The tap: a consumer that hands encoded samples to a channel outside GStreamer (a room's
//! WebRTC tracks), from the one shared encode.

use super::consumer::{Consumer, ConsumerEvent, Feed, FeedSink, Pushed, StartContext};
use super::error::Result;
use super::recorder::running_time;
use crate::model::StreamKind;
use gstreamer as gst;
use std::time::Duration;
use tokio::sync::mpsc;

/// One encoded sample from the shared encoders.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSample {
    /// Audio (Opus) or video (H.264).
    pub kind: StreamKind,
    /// The encoded bytes.
    pub data: bytes::Bytes,
    /// Presentation time on the pipeline clock.
    pub pts: Option<Duration>,
    /// Duration, when known.
    pub duration: Option<Duration>,
    /// True for an H.264 IDR access unit.
    pub keyframe: bool,
}

/// The sending side of a tap; equal when it feeds the same channel. When the channel is full,
/// samples are dropped (capture never blocks) and the video restarts at a keyframe.
#[derive(Debug, Clone)]
pub struct TapSender(pub mpsc::Sender<EncodedSample>);

impl PartialEq for TapSender {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

/// The tap consumer: H.264 access units (Annex B byte-stream, constrained baseline, SPS/PPS on
/// every keyframe) and Opus packets.
pub struct Tap {
    sender: TapSender,
    feeds: Vec<Feed>,
}

impl Tap {
    /// A tap feeding `sender` the camera, the mic and the content share (a room's
    /// publication; the share's samples come only while a share runs).
    pub fn new(sender: TapSender) -> Tap {
        Tap::with_feeds(sender, vec![Feed::H264, Feed::Opus, Feed::Share])
    }

    /// A tap feeding `sender` the encoded `feeds` (a share's video comes as
    /// [`StreamKind::Share`]).
    pub fn with_feeds(sender: TapSender, feeds: Vec<Feed>) -> Tap {
        Tap { sender, feeds }
    }
}

impl Consumer for Tap {
    fn feeds(&self) -> Vec<Feed> {
        self.feeds.clone()
    }

    fn start(&mut self, ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>> {
        let sinks = ctx
            .feeds
            .iter()
            .map(|&f| {
                let kind = match f {
                    Feed::Share => StreamKind::Share,
                    f if f.is_video() => StreamKind::Video,
                    _ => StreamKind::Audio,
                };
                Box::new(TapSink {
                    tx: self.sender.0.clone(),
                    kind,
                }) as Box<dyn FeedSink>
            })
            .collect();
        ctx.reporter.send(ConsumerEvent::Started);
        Ok(sinks)
    }
}

struct TapSink {
    tx: mpsc::Sender<EncodedSample>,
    kind: StreamKind,
}

impl FeedSink for TapSink {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        let Some(buffer) = sample.buffer() else {
            return Pushed::Ok;
        };
        let Ok(map) = buffer.map_readable() else {
            return Pushed::Ok;
        };
        let s = EncodedSample {
            kind: self.kind,
            data: bytes::Bytes::copy_from_slice(map.as_slice()),
            pts: running_time(sample, buffer.pts()).map(|t| Duration::from_nanos(t.nseconds())),
            duration: buffer
                .duration()
                .map(|t| Duration::from_nanos(t.nseconds())),
            keyframe: self.kind != StreamKind::Audio
                && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        };
        match self.tx.try_send(s) {
            Ok(()) => Pushed::Ok,
            Err(_) => Pushed::Full,
        }
    }
}

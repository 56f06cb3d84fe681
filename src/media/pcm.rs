//! Speech audio out of GStreamer for the transcriber: 16 kHz mono samples, attributed to a
//! participant, handed to a bounded channel that never blocks the streaming thread.
//!
//! Two places produce it: the [`PcmTap`] consumer on the capture (the local mic, after the
//! mute) and each remote participant's branch in room playback (through a [`PcmHub`]).

use super::consumer::{Consumer, ConsumerEvent, Feed, FeedSink, Pushed, StartContext};
use super::echo::linear::{Linear, LINEAR_RATE};
use super::echo::EchoPath;
use super::error::Result;
use gstreamer as gst;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::mpsc;

/// The rate speech is taken at (Whisper's).
pub const SPEECH_RATE: u32 = 16_000;

/// Some samples of one participant's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct PcmChunk {
    /// Whose voice: a participant id.
    pub source: String,
    /// Wall clock of the first sample (the moment it was handed over, less its length).
    pub at: SystemTime,
    /// Mono samples at [`SPEECH_RATE`], in -1..1.
    pub samples: Vec<f32>,
    /// The echo canceller's linear output for the same samples, and the mic's power, where the
    /// canceller has them (the local mic, with echo cancellation on): what the captions decode
    /// when the room talks over the far end (`transcribe::linear`).
    pub linear: Option<Linear>,
}

impl PcmChunk {
    /// A chunk from S16LE bytes, stamped as ending now.
    pub fn from_s16(source: &str, bytes: &[u8]) -> PcmChunk {
        let samples: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        let len = std::time::Duration::from_secs_f64(samples.len() as f64 / f64::from(SPEECH_RATE));
        let now = SystemTime::now();
        PcmChunk {
            source: source.to_string(),
            at: now.checked_sub(len).unwrap_or(now),
            samples,
            linear: None,
        }
    }

    /// A chunk of the local mic's speech feed: [`PcmChunk::from_s16`] with the canceller's
    /// linear output for the buffer's time, when it has one.
    pub fn from_sample(source: &str, buffer: &gst::BufferRef, bytes: &[u8]) -> PcmChunk {
        let mut chunk = PcmChunk::from_s16(source, bytes);
        if SPEECH_RATE == LINEAR_RATE {
            if let Some(pts) = buffer.pts() {
                chunk.linear = EchoPath::shared().linear(pts.nseconds(), chunk.samples.len());
            }
        }
        chunk
    }
}

/// Where the local mic's speech goes, and whether it may go: the gate is shut while the agent
/// says (or has asked that) the mic is muted, so muted audio is never transcribed even in the
/// moment before the mute element takes effect.
#[derive(Debug, Clone)]
pub struct PcmSender {
    /// The channel; full means the transcriber is behind, and the chunk is dropped.
    pub tx: mpsc::Sender<PcmChunk>,
    /// Participant id the audio is attributed to.
    pub source: String,
    /// Open (true) while the audio may be transcribed.
    pub gate: Arc<AtomicBool>,
}

impl PartialEq for PcmSender {
    fn eq(&self, other: &Self) -> bool {
        self.tx.same_channel(&other.tx)
            && self.source == other.source
            && Arc::ptr_eq(&self.gate, &other.gate)
    }
}

/// The consumer: takes [`Feed::Pcm`] at 16 kHz from the capture's raw tee, which is after the
/// mute, and sends it on.
pub struct PcmTap {
    sender: PcmSender,
}

impl PcmTap {
    /// A tap sending to `sender`.
    pub fn new(sender: PcmSender) -> PcmTap {
        PcmTap { sender }
    }
}

impl Consumer for PcmTap {
    fn feeds(&self) -> Vec<Feed> {
        vec![Feed::Pcm { rate: SPEECH_RATE }]
    }

    fn start(&mut self, ctx: StartContext) -> Result<Vec<Box<dyn FeedSink>>> {
        let sinks = ctx
            .feeds
            .iter()
            .map(|_| Box::new(PcmSink(self.sender.clone())) as Box<dyn FeedSink>)
            .collect();
        ctx.reporter.send(ConsumerEvent::Started);
        Ok(sinks)
    }
}

struct PcmSink(PcmSender);

impl FeedSink for PcmSink {
    fn push(&self, sample: &gst::Sample) -> Pushed {
        if !self.0.gate.load(Ordering::Relaxed) {
            return Pushed::Ok;
        }
        let Some(buffer) = sample.buffer() else {
            return Pushed::Ok;
        };
        let Ok(map) = buffer.map_readable() else {
            return Pushed::Ok;
        };
        match self.0.tx.try_send(PcmChunk::from_sample(
            &self.0.source,
            buffer,
            map.as_slice(),
        )) {
            Ok(()) => Pushed::Ok,
            // Audio has no keyframes: Full only drops this chunk.
            Err(_) => Pushed::Ok,
        }
    }
}

/// Where remote participants' speech goes while transcription runs. Room playback holds one
/// and taps every remote audio branch into it; the agent opens it on `start-transcription` and
/// closes it on stop. Closed, the branches drop their audio before converting it, so a room
/// without transcription pays nothing for it.
#[derive(Debug, Clone, Default)]
pub struct PcmHub {
    open: Arc<AtomicBool>,
    tx: Arc<Mutex<Option<mpsc::Sender<PcmChunk>>>>,
}

impl PcmHub {
    /// Starts sending remote speech to `tx`.
    pub fn open(&self, tx: mpsc::Sender<PcmChunk>) {
        if let Ok(mut t) = self.tx.lock() {
            *t = Some(tx);
        }
        self.open.store(true, Ordering::Relaxed);
    }

    /// Stops sending.
    pub fn close(&self) {
        self.open.store(false, Ordering::Relaxed);
        if let Ok(mut t) = self.tx.lock() {
            *t = None;
        }
    }

    /// True while transcription takes remote speech.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Hands over S16LE mono 16 kHz bytes of participant `source`; never blocks.
    pub fn push_s16(&self, source: &str, bytes: &[u8]) {
        if !self.is_open() {
            return;
        }
        if let Ok(t) = self.tx.lock() {
            if let Some(tx) = t.as_ref() {
                let _ = tx.try_send(PcmChunk::from_s16(source, bytes));
            }
        }
    }
}

/// For test harnesses: taps a capture's speech feed at `rate` as the live captions do. Each
/// buffer becomes a chunk as `PcmSink` makes it (the canceller's linear output beside it),
/// handed to `chunk` on the streaming thread. Call before the capture plays.
#[cfg(feature = "test-util")]
pub fn tap_speech(
    capture: &mut crate::media::pipeline::Capture,
    rate: u32,
    mut chunk: impl FnMut(PcmChunk) + Send + 'static,
) -> crate::media::error::Result<()> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    let appsink = gstreamer_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .build();
    appsink.set_callbacks(
        gstreamer_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Error)?;
                let buf = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
                chunk(PcmChunk::from_sample("room", buf, map.as_slice()));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let tee = capture.tee_for(crate::media::Feed::Pcm { rate })?;
    let link = |m: &str| super::error::MediaError::link("speech tap", m);
    capture
        .pipeline
        .add(&appsink)
        .map_err(|_| link("the tap would not go in"))?;
    appsink
        .sync_state_with_parent()
        .map_err(|_| link("the tap would not start"))?;
    tee.link(&appsink)
        .map_err(|_| link("the tap would not link"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_convert_and_are_stamped_as_ending_now() {
        let c = PcmChunk::from_s16("p", &[0x00, 0x40, 0x00, 0xc0, 0xff]);
        assert_eq!(c.samples, vec![0.5, -0.5]);
        assert!(c.at <= SystemTime::now());
    }

    #[test]
    fn a_closed_hub_sends_nothing() {
        let hub = PcmHub::default();
        let (tx, mut rx) = mpsc::channel(4);
        hub.push_s16("p", &[0, 0]);
        hub.open(tx);
        hub.push_s16("p", &[0, 0]);
        assert_eq!(rx.try_recv().unwrap().source, "p");
        hub.close();
        hub.push_s16("p", &[0, 0]);
        assert!(rx.try_recv().is_err());
    }
}

//! CPU overload: when the encoder cannot keep up, send fewer frames instead of late ones.
//!
//! It works as WebRTC's overuse detection does. Each second the engine reads how busy the encoder
//! was (the time it spent per frame against the time between frames) and how far behind the
//! clock frames reach it. When either stays too high, the frame rate steps down (30 → 20 → 15 →
//! 10, never below the configured floor); when there has been room for a while, it steps back up.
//!
//! Frames are dropped right after the camera, before conversion and encoding, so each step saves
//! the whole per-frame cost. Caps never change, so no consumer (a room, a recording muxer) sees
//! a renegotiation: the stream simply has fewer frames.
//!
//! [`Detector`] is pure, tested without a pipeline; [`Meter`] and [`Decimator`] are the probes.

use crate::sync::lock;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Encoder busier than this share of the frame interval is overuse (WebRTC's default is 85 %).
const HIGH_USAGE: f64 = 0.85;
/// Frames reaching the encoder later than this behind the clock is overuse too.
const HIGH_LAG: Duration = Duration::from_millis(300);
/// Seconds of overuse in a row before stepping down.
const OVER_SECONDS: u32 = 2;
/// A step up must leave the encoder below this share at the higher rate.
const ROOM_USAGE: f64 = 0.6;
/// And frames must be this close to the clock.
const ROOM_LAG: Duration = Duration::from_millis(100);
/// Seconds with room in a row before stepping up; doubled each time a step up had to be undone
/// soon after, so the rate does not see-saw.
const UNDER_SECONDS: u32 = 8;
/// A step up undone within this long counts as a see-saw.
const SEE_SAW: Duration = Duration::from_secs(30);
/// Seconds to wait after any change before judging again (the change needs time to show).
const SETTLE_SECONDS: u32 = 3;

/// One second of measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Time the encoder spent per frame over the frame interval at the current rate (0.5 = half
    /// the time budget).
    pub usage: f64,
    /// How far behind the clock frames reached the encoder, at worst.
    pub lag: Duration,
    /// Frames the encoder took in the second (no frames: nothing to judge).
    pub frames: u32,
}

/// The frame rates the detector steps through for a configured `fps` and a floor `min_fps`:
/// the full rate, then 2/3, 1/2 and 1/3 of it, none below the floor.
pub fn steps(fps: u32, min_fps: u32) -> Vec<u32> {
    let floor = min_fps.clamp(1, fps.max(1));
    let mut out = vec![fps.max(1)];
    for (num, den) in [(2, 3), (1, 2), (1, 3)] {
        let f = (fps * num / den).max(floor);
        if f < *out.last().unwrap_or(&fps) {
            out.push(f);
        }
    }
    out
}

/// Decides the frame rate from the load, step by step.
#[derive(Debug, Clone)]
pub struct Detector {
    steps: Vec<u32>,
    level: usize,
    over: u32,
    under: u32,
    settle: u32,
    under_needed: u32,
    /// When the rate last stepped up.
    raised_at: Option<Instant>,
}

impl Detector {
    /// Starts at the full rate of `steps` (see [`steps`]).
    pub fn new(steps: Vec<u32>) -> Detector {
        Detector {
            steps: if steps.is_empty() { vec![30] } else { steps },
            level: 0,
            over: 0,
            under: 0,
            settle: 0,
            under_needed: UNDER_SECONDS,
            raised_at: None,
        }
    }

    /// The frame rate to send now.
    pub fn fps(&self) -> u32 {
        self.steps[self.level]
    }

    /// The configured (full) rate.
    pub fn full(&self) -> u32 {
        self.steps[0]
    }

    /// True while below the full rate.
    pub fn limited(&self) -> bool {
        self.level > 0
    }

    /// Takes one second's load at `now`; returns the new frame rate when it changes.
    pub fn sample(&mut self, load: Load, now: Instant) -> Option<u32> {
        if self.settle > 0 {
            self.settle -= 1;
            return None;
        }
        if load.frames == 0 {
            // Nothing encoded (camera off, stalled, starting): the stall watchdog judges that.
            return None;
        }
        let overused = load.usage > HIGH_USAGE || load.lag > HIGH_LAG;
        if overused {
            self.under = 0;
            self.over += 1;
            if self.over >= OVER_SECONDS && self.level + 1 < self.steps.len() {
                if self
                    .raised_at
                    .is_some_and(|t| now.duration_since(t) < SEE_SAW)
                {
                    self.under_needed = (self.under_needed * 2).min(UNDER_SECONDS * 8);
                }
                self.level += 1;
                return Some(self.changed());
            }
            return None;
        }
        self.over = 0;
        let next = match self.level.checked_sub(1) {
            Some(l) => self.steps[l],
            None => return None,
        };
        let predicted = load.usage * f64::from(next) / f64::from(self.fps());
        if predicted < ROOM_USAGE && load.lag < ROOM_LAG {
            self.under += 1;
            if self.under >= self.under_needed {
                self.level -= 1;
                self.raised_at = Some(now);
                return Some(self.changed());
            }
        } else {
            self.under = 0;
        }
        None
    }

    fn changed(&mut self) -> u32 {
        self.over = 0;
        self.under = 0;
        self.settle = SETTLE_SECONDS;
        self.fps()
    }
}

/// Drops frames after the camera so that `target` of every `full` frames go on, evenly.
#[derive(Debug)]
pub struct Decimator {
    full: u32,
    target: AtomicU32,
    acc: AtomicU32,
}

impl Decimator {
    /// Passes every frame until told otherwise.
    pub fn new(full: u32) -> Arc<Decimator> {
        let full = full.max(1);
        Arc::new(Decimator {
            full,
            target: AtomicU32::new(full),
            acc: AtomicU32::new(0),
        })
    }

    /// Sends `fps` of every `full` frames from now on.
    pub fn set(&self, fps: u32) {
        self.target
            .store(fps.clamp(1, self.full), Ordering::Relaxed);
    }

    /// True when the next frame goes on.
    pub fn pass(&self) -> bool {
        let target = self.target.load(Ordering::Relaxed);
        if target >= self.full {
            return true;
        }
        // Bresenham: add the target each frame, pass when a whole `full` has built up.
        let acc = self.acc.load(Ordering::Relaxed) + target;
        if acc >= self.full {
            self.acc.store(acc - self.full, Ordering::Relaxed);
            true
        } else {
            self.acc.store(acc, Ordering::Relaxed);
            false
        }
    }

    /// Drops the frames it should on `pad`'s buffers (the camera's output).
    pub fn install(self: &Arc<Self>, pad: &gst::Pad) {
        let d = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if d.pass() {
                gst::PadProbeReturn::Ok
            } else {
                gst::PadProbeReturn::Drop
            }
        });
    }
}

/// Measures, on the encoder's pads, the time each frame takes through it and how late frames
/// reach it.
#[derive(Debug, Default)]
pub struct Meter {
    /// Frames waiting in the encoder: their timestamp and when they went in.
    inside: Mutex<VecDeque<(gst::ClockTime, Instant)>>,
    /// Nanoseconds spent in the encoder since the last reading.
    busy_ns: AtomicU64,
    /// Frames out of the encoder since the last reading.
    frames: AtomicU32,
    /// Worst lag behind the clock since the last reading, ns.
    lag_ns: AtomicU64,
}

/// Frames the meter remembers inside the encoder at most (an encoder with a deep lookahead
/// holds a few; more means it lost track).
const INSIDE_MAX: usize = 64;

impl Meter {
    /// Puts the probes on `encoder`'s sink and src pads.
    pub fn install(self: &Arc<Self>, encoder: &gst::Element) {
        if let Some(sink) = encoder.static_pad("sink") {
            let m = self.clone();
            let el = encoder.clone();
            sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let Some(buf) = info.buffer() {
                    if let Some(pts) = buf.pts() {
                        m.entered(pts, Instant::now());
                        if let Some(lag) = lag_of(&el, pad, pts) {
                            m.lag_ns.fetch_max(lag.as_nanos() as u64, Ordering::Relaxed);
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        if let Some(src) = encoder.static_pad("src") {
            let m = self.clone();
            src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                    m.left(pts, Instant::now());
                }
                gst::PadProbeReturn::Ok
            });
        }
    }

    fn entered(&self, pts: gst::ClockTime, at: Instant) {
        let mut inside = lock(&self.inside);
        if inside.len() >= INSIDE_MAX {
            inside.pop_front();
        }
        inside.push_back((pts, at));
    }

    fn left(&self, pts: gst::ClockTime, at: Instant) {
        let entered = {
            let mut inside = lock(&self.inside);
            // Encoders may shift timestamps (x264enc adds a constant to its output segment but
            // keeps PTS); match the oldest frame with this PTS, or else the oldest frame.
            let i = inside.iter().position(|(p, _)| *p == pts).unwrap_or(0);
            let found = inside.get(i).map(|(_, t)| *t);
            if found.is_some() {
                inside.drain(..=i);
            }
            found
        };
        if let Some(t) = entered {
            self.busy_ns
                .fetch_add(at.duration_since(t).as_nanos() as u64, Ordering::Relaxed);
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The load since the last reading, at a frame rate of `fps`.
    pub fn take(&self, fps: u32) -> Load {
        let busy = self.busy_ns.swap(0, Ordering::Relaxed);
        let frames = self.frames.swap(0, Ordering::Relaxed);
        let lag = Duration::from_nanos(self.lag_ns.swap(0, Ordering::Relaxed));
        let usage = if frames == 0 {
            0.0
        } else {
            let per_frame = busy as f64 / f64::from(frames) / 1e9;
            per_frame * f64::from(fps.max(1))
        };
        Load { usage, lag, frames }
    }
}

/// How far behind the pipeline's clock a frame with `pts` reaches `pad`.
fn lag_of(element: &gst::Element, pad: &gst::Pad, pts: gst::ClockTime) -> Option<Duration> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
    let running = segment.to_running_time(pts)?;
    let now = element.current_running_time()?;
    Some(Duration::from_nanos(
        now.nseconds().saturating_sub(running.nseconds()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(usage: f64, lag_ms: u64) -> Load {
        Load {
            usage,
            lag: Duration::from_millis(lag_ms),
            frames: 20,
        }
    }

    #[test]
    fn steps_go_down_by_thirds_and_halves_to_the_floor() {
        assert_eq!(steps(30, 10), vec![30, 20, 15, 10]);
        assert_eq!(steps(30, 15), vec![30, 20, 15]);
        assert_eq!(steps(15, 10), vec![15, 10]);
        assert_eq!(steps(10, 10), vec![10]);
        assert_eq!(steps(24, 1), vec![24, 16, 12, 8]);
        // A floor above the rate is the rate.
        assert_eq!(steps(5, 10), vec![5]);
    }

    #[test]
    fn sustained_overuse_steps_down_one_level_at_a_time_and_never_below_the_floor() {
        let mut d = Detector::new(steps(30, 10));
        let t = Instant::now();
        assert_eq!(d.sample(load(0.95, 0), t), None, "one second is not enough");
        assert_eq!(d.sample(load(0.95, 0), t), Some(20));
        // It settles before judging again.
        for _ in 0..SETTLE_SECONDS {
            assert_eq!(d.sample(load(0.99, 0), t), None);
        }
        assert_eq!(d.sample(load(0.99, 0), t), None);
        assert_eq!(d.sample(load(0.99, 0), t), Some(15));
        let mut changes = vec![];
        for _ in 0..40 {
            if let Some(f) = d.sample(load(1.5, 900), t) {
                changes.push(f);
            }
        }
        assert_eq!(changes, vec![10], "the floor holds");
        assert_eq!(d.fps(), 10);
        assert!(d.limited());
    }

    #[test]
    fn frames_arriving_late_count_as_overuse_even_when_the_encoder_looks_idle() {
        let mut d = Detector::new(steps(30, 10));
        let t = Instant::now();
        d.sample(load(0.2, 500), t);
        assert_eq!(d.sample(load(0.2, 500), t), Some(20));
    }

    #[test]
    fn room_for_long_enough_steps_back_up_and_a_see_saw_makes_it_wait_longer() {
        let mut d = Detector::new(steps(30, 10));
        let t0 = Instant::now();
        d.sample(load(0.9, 0), t0);
        assert_eq!(d.sample(load(0.9, 0), t0), Some(20));
        let mut secs = 0;
        let up = loop {
            secs += 1;
            if let Some(f) = d.sample(load(0.3, 10), t0) {
                break f;
            }
            assert!(secs < 100);
        };
        assert_eq!(up, 30);
        assert_eq!(secs, SETTLE_SECONDS + UNDER_SECONDS);
        // Overloaded again at once: down, and the next rise takes twice as long.
        let t1 = t0 + Duration::from_secs(5);
        for _ in 0..SETTLE_SECONDS {
            d.sample(load(0.9, 0), t1);
        }
        d.sample(load(0.9, 0), t1);
        assert_eq!(d.sample(load(0.9, 0), t1), Some(20));
        let mut secs = 0;
        while d.sample(load(0.3, 10), t1).is_none() {
            secs += 1;
            assert!(secs < 100);
        }
        assert_eq!(secs + 1, SETTLE_SECONDS + 2 * UNDER_SECONDS);
    }

    #[test]
    fn no_step_up_when_the_higher_rate_would_overload_again() {
        let mut d = Detector::new(steps(30, 10));
        let t = Instant::now();
        d.sample(load(0.9, 0), t);
        d.sample(load(0.9, 0), t);
        assert_eq!(d.fps(), 20);
        // 0.5 at 20 fps is 0.75 at 30: not enough room.
        for _ in 0..60 {
            assert_eq!(d.sample(load(0.5, 10), t), None);
        }
    }

    #[test]
    fn seconds_without_frames_are_not_judged() {
        let mut d = Detector::new(steps(30, 10));
        let t = Instant::now();
        let idle = Load {
            usage: 0.0,
            lag: Duration::from_secs(5),
            frames: 0,
        };
        for _ in 0..10 {
            assert_eq!(d.sample(idle, t), None);
        }
    }

    #[test]
    fn the_decimator_passes_the_target_share_evenly() {
        let d = Decimator::new(30);
        assert!((0..30).all(|_| d.pass()));
        d.set(20);
        let passed: Vec<bool> = (0..30).map(|_| d.pass()).collect();
        assert_eq!(passed.iter().filter(|p| **p).count(), 20);
        // Never two drops in a row at 2/3.
        assert!(passed.windows(2).all(|w| w[0] || w[1]));
        d.set(10);
        assert_eq!((0..30).filter(|_| d.pass()).count(), 10);
        d.set(15);
        assert_eq!((0..300).filter(|_| d.pass()).count(), 150);
    }

    #[test]
    fn the_meter_reads_time_per_frame_against_the_frame_interval() {
        let m = Meter::default();
        let t = Instant::now();
        for i in 0..10u64 {
            let pts = gst::ClockTime::from_mseconds(i * 33);
            m.entered(pts, t + Duration::from_millis(i * 33));
            m.left(pts, t + Duration::from_millis(i * 33 + 20));
        }
        let l = m.take(30);
        assert_eq!(l.frames, 10);
        assert!((l.usage - 0.6).abs() < 0.01, "{l:?}");
        // Read once: the next reading starts from nothing.
        assert_eq!(m.take(30).frames, 0);
    }
}

//! What speech recognition takes from the canceller beside the processed mic: the output of its
//! linear filter (the mic less the echo its adaptive filter predicts, before the residual echo
//! suppressor, noise suppression and gain control), at 16 kHz, and the mic's own power, for
//! each 10 ms capture frame, stamped with the capture buffer's time.
//!
//! Why: in double talk the residual echo suppressor keeps the near-end talker's level but masks
//! the bands where the far end is loud, and what is left of their words is half recognisable
//! (BENCHMARKS.md, "Double talk"). The linear output keeps the near-end voice whole, with the
//! far end's echo taken down by the filter but not masked. Listeners get the processed mic;
//! the live captions decode the linear output where the room speaks (the processed mic decides
//! when, `transcribe::linear` which signal). WebRTC's audio processing can export the same
//! signal (`export_linear_aec_output`).

use std::collections::VecDeque;

/// The linear output's rate (AEC3's, whatever the mic's).
pub const LINEAR_RATE: u32 = 16_000;
/// Samples of the linear output in one 10 ms frame.
pub const LINEAR_FRAME: usize = (LINEAR_RATE / 100) as usize;
/// Nanoseconds in one 10 ms frame.
const FRAME_NS: u64 = 10_000_000;
/// Frames kept: the speech tap reads within milliseconds of the capture, so 3 s is plenty
/// (a tap that falls further behind gets the processed mic alone).
const KEEP: usize = 300;

/// One capture frame's share.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearFrame {
    /// The capture buffer's presentation time, ns.
    pub pts: u64,
    /// The linear filter's output, [`LINEAR_FRAME`] mono samples in -1..1.
    pub linear: Vec<f32>,
    /// The mic's mean square over the frame, before any processing.
    pub mic_power: f32,
}

/// The linear output and the mic's power over a stretch of the speech feed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Linear {
    /// At [`LINEAR_RATE`], one per sample of the stretch.
    pub samples: Vec<f32>,
    /// The mic's mean square over the frames the stretch touches.
    pub mic_power: f32,
}

/// The last few seconds of frames, in capture order.
#[derive(Debug, Default)]
pub struct LinearRing {
    frames: VecDeque<LinearFrame>,
}

impl LinearRing {
    /// Adds the newest frame. A frame stamped before the last (a restarted capture's clock)
    /// starts the ring afresh.
    pub fn push(&mut self, frame: LinearFrame) {
        if frame.linear.len() != LINEAR_FRAME {
            return;
        }
        if self.frames.back().is_some_and(|b| frame.pts <= b.pts) {
            self.frames.clear();
        }
        self.frames.push_back(frame);
        while self.frames.len() > KEEP {
            self.frames.pop_front();
        }
    }

    /// The linear output for `n` samples at [`LINEAR_RATE`] from `pts` (ns), if frames cover all
    /// of them without a gap (a frame that passed unprocessed leaves one).
    pub fn take(&self, pts: u64, n: usize) -> Option<Linear> {
        if n == 0 {
            return None;
        }
        // The first frame that ends after `pts`.
        let first = self.frames.partition_point(|f| f.pts + FRAME_NS <= pts);
        let mut out = Vec::with_capacity(n);
        let (mut power, mut touched) = (0f64, 0u32);
        let mut t = pts;
        for f in self.frames.range(first..) {
            if f.pts > t + FRAME_NS / LINEAR_FRAME as u64 {
                return None; // a gap
            }
            let from = ((t.saturating_sub(f.pts)) * LINEAR_FRAME as u64 / FRAME_NS) as usize;
            let take = (LINEAR_FRAME - from.min(LINEAR_FRAME)).min(n - out.len());
            out.extend_from_slice(&f.linear[from.min(LINEAR_FRAME)..from.min(LINEAR_FRAME) + take]);
            power += f64::from(f.mic_power);
            touched += 1;
            if out.len() == n {
                return Some(Linear {
                    samples: out,
                    mic_power: (power / f64::from(touched)) as f32,
                });
            }
            t = f.pts + FRAME_NS;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u64, power: f32) -> LinearFrame {
        LinearFrame {
            pts: 1_000_000_000 + i * FRAME_NS,
            linear: (0..LINEAR_FRAME)
                .map(|k| (i * 1000 + k as u64) as f32)
                .collect(),
            mic_power: power,
        }
    }

    #[test]
    fn a_stretch_across_frames_comes_back_sample_for_sample() {
        let mut ring = LinearRing::default();
        for i in 0..5 {
            ring.push(frame(i, i as f32));
        }
        // From 5 ms into frame 1, 20 ms long: the second half of 1, all of 2, the first of 3.
        let got = ring.take(1_000_000_000 + 15_000_000, 320).unwrap();
        assert_eq!(got.samples.len(), 320);
        assert_eq!(got.samples[0], 1080.0);
        assert_eq!(got.samples[80], 2000.0);
        assert_eq!(got.samples[319], 3079.0);
        assert_eq!(got.mic_power, 2.0, "frames 1, 2 and 3");
    }

    #[test]
    fn a_gap_or_a_stretch_beyond_the_frames_gives_nothing() {
        let mut ring = LinearRing::default();
        for i in [0, 1, 3] {
            ring.push(frame(i, 1.0));
        }
        assert!(ring.take(1_000_000_000, 320).is_some());
        assert_eq!(ring.take(1_000_000_000, 480), None, "frame 2 is missing");
        assert_eq!(
            ring.take(1_000_000_000 + 30_000_000, 320),
            None,
            "past the end"
        );
        assert_eq!(ring.take(0, 160), None, "before the first frame");
    }

    #[test]
    fn a_clock_that_goes_back_starts_afresh_and_the_ring_stays_bounded() {
        let mut ring = LinearRing::default();
        for i in 0..(KEEP as u64 + 50) {
            ring.push(frame(i, 1.0));
        }
        assert_eq!(ring.frames.len(), KEEP);
        ring.push(frame(3, 1.0));
        assert_eq!(ring.frames.len(), 1);
        ring.push(LinearFrame {
            linear: vec![0.0; 3],
            ..frame(4, 1.0)
        });
        assert_eq!(
            ring.frames.len(),
            1,
            "a frame of the wrong size is not kept"
        );
    }
}

//! Which signal an utterance of the local mic is decoded from: the processed mic, or the echo
//! canceller's linear output beside it (`media::echo::linear`).
//!
//! The processed mic decides when the room speaks: the VAD cuts it, so the far end's echo,
//! which the suppressor takes down, makes no utterance, and the mute (before the tap) is
//! honoured. Within an utterance, the linear output carries the near-end voice whole where the
//! suppressor would have masked the bands the far end is loud in; so it is what Whisper hears,
//! unless the utterance is mostly echo. How much the linear filter took off the mic tells:
//! little when the room talks (alone, or over the far end), much when what the VAD found is
//! residual echo (the gain control may lift that over the VAD's threshold), whose linear output
//! still holds the far end's words. Then the processed mic is decoded, as without a canceller.

use super::vad::Speech;
use crate::media::echo::linear::Linear;
use std::collections::VecDeque;

/// An utterance whose linear output is this far under the mic (dB) is mostly echo. Measured in
/// the simulated room (tests/echo.rs): the room's talker alone 0 dB, over the far end at the
/// same level −2 to −3 dB, the far end alone −11 dB.
pub const MOSTLY_ECHO_DB: f64 = -6.0;

/// The linear output kept beside one speaker's VAD: enough for its longest utterance.
const KEEP_SAMPLES: u64 = 16_000 * 25;

/// One speaker's linear output, by the index of the VAD's samples.
#[derive(Debug, Default)]
pub struct LinearTrack {
    /// (first sample's index, the linear output from there), in order.
    pieces: VecDeque<(u64, Linear)>,
}

impl LinearTrack {
    /// The linear output of the samples from `start` on, if the chunk had one.
    pub fn push(&mut self, start: u64, linear: Option<Linear>) {
        if let Some(l) = linear.filter(|l| !l.samples.is_empty()) {
            self.pieces.push_back((start, l));
        }
        while self
            .pieces
            .front()
            .is_some_and(|(s, l)| s + l.samples.len() as u64 + KEEP_SAMPLES < start)
        {
            self.pieces.pop_front();
        }
    }

    /// What `speech` should be decoded from: the linear output of the same samples, when it
    /// covers all of them and is not mostly echo; otherwise None (the processed mic).
    pub fn pick(&self, speech: &Speech) -> Option<Vec<f32>> {
        let (from, to) = (speech.start, speech.start + speech.pcm.len() as u64);
        if from == to {
            return None;
        }
        let mut out = Vec::with_capacity(speech.pcm.len());
        let (mut mic, mut at) = (0f64, from);
        for (s, l) in &self.pieces {
            let end = s + l.samples.len() as u64;
            if end <= at {
                continue;
            }
            if *s > at {
                return None; // a gap: a chunk without one
            }
            let a = (at - s) as usize;
            let b = (to.min(end) - s) as usize;
            out.extend_from_slice(&l.samples[a..b]);
            mic += f64::from(l.mic_power) * (b - a) as f64;
            at = s + b as u64;
            if at == to {
                break;
            }
        }
        if at != to {
            return None;
        }
        let n = out.len() as f64;
        let lin = out
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            / n;
        let mic = mic / n;
        let db = 10.0 * ((lin + 1e-12) / (mic + 1e-12)).log10();
        (db >= MOSTLY_ECHO_DB).then_some(out)
    }

    /// `speech` as it is to be decoded: its samples replaced by the linear output's where
    /// [`LinearTrack::pick`] says so.
    pub fn chosen(&self, speech: Speech) -> Speech {
        match self.pick(&speech) {
            Some(pcm) => Speech { pcm, ..speech },
            None => speech,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(n: usize, amp: f32, mic_power: f32) -> Option<Linear> {
        Some(Linear {
            samples: (0..n)
                .map(|i| if i % 2 == 0 { amp } else { -amp })
                .collect(),
            mic_power,
        })
    }

    fn speech(start: u64, n: usize) -> Speech {
        Speech {
            start,
            pcm: vec![0.5; n],
        }
    }

    #[test]
    fn the_room_talking_is_decoded_from_the_linear_output_across_chunks() {
        let mut t = LinearTrack::default();
        // The mic at 0.01 power; the linear output 0.09² ≈ 0.0081, −0.9 dB: the room talks.
        for k in 0..10 {
            t.push(k * 160, linear(160, 0.09, 0.01));
        }
        let got = t.pick(&speech(80, 800)).expect("the linear output");
        assert_eq!(got.len(), 800);
        assert_eq!(got[0], 0.09, "sample 80 is even");
        let chosen = t.chosen(speech(80, 800));
        assert_eq!((chosen.start, chosen.pcm), (80, got));
    }

    #[test]
    fn residual_echo_is_decoded_from_the_processed_mic() {
        let mut t = LinearTrack::default();
        // The linear filter took 11 dB off: what the VAD found is the far end's echo.
        for k in 0..10 {
            t.push(k * 160, linear(160, 0.028, 0.01));
        }
        assert_eq!(t.pick(&speech(0, 1600)), None);
        assert_eq!(
            t.chosen(speech(0, 1600)),
            speech(0, 1600),
            "the processed mic, as it was"
        );
    }

    #[test]
    fn a_chunk_without_a_linear_output_leaves_the_processed_mic() {
        let mut t = LinearTrack::default();
        t.push(0, linear(160, 0.1, 0.01));
        t.push(160, None);
        t.push(320, linear(160, 0.1, 0.01));
        assert!(t.pick(&speech(0, 160)).is_some());
        assert_eq!(t.pick(&speech(0, 480)), None, "the middle chunk had none");
        assert_eq!(t.pick(&speech(320, 320)), None, "past the end");
        assert_eq!(t.pick(&speech(0, 0)), None);
    }

    #[test]
    fn old_pieces_are_dropped() {
        let mut t = LinearTrack::default();
        for k in 0..3000u64 {
            t.push(k * 160, linear(160, 0.1, 0.01));
        }
        assert!(t.pieces.len() as u64 * 160 <= KEEP_SAMPLES + 320);
        assert_eq!(t.pick(&speech(0, 160)), None, "long gone");
        assert!(t.pick(&speech(2990 * 160, 1600)).is_some());
    }
}

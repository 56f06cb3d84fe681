//! Voice activity detection: cuts a stream of 16 kHz mono samples into utterances, so silence is
//! never transcribed and each caption is one stretch of speech.
//!
//! An energy detector with an adaptive noise floor. Each 20 ms frame's level (dBFS) is compared
//! with the quietest frame of the last two seconds: speech is a frame well above that floor (and
//! above an absolute minimum, so a silent room does not turn its own hiss into speech). Speech
//! pauses between words, so the floor follows the room's noise even while someone talks, and a
//! steady fan or hum raises the floor instead of becoming an endless utterance.
//!
//! An utterance starts at the first speech frame (with a little audio before it, so the first
//! consonant is kept), ends after a hangover of non-speech, is dropped if it holds too little
//! speech (a cough, a click), and is cut at its quietest recent frame when it grows too long.
//! Pure code: no model, no I/O.

use std::collections::VecDeque;
use std::time::Duration;

use super::SAMPLE_RATE;

/// Samples per analysis frame: 20 ms.
const FRAME: usize = SAMPLE_RATE as usize / 50;
/// Frames the noise floor looks back over: 2 s.
const FLOOR_WINDOW: usize = 100;
/// Trailing non-speech kept at an utterance's end: enough for a final consonant's decay.
const TAIL_FRAMES: usize = 10;
/// When an utterance reaches its maximum, the cut goes at the quietest frame in this many last
/// frames (2 s), not mid-word.
const CUT_SEARCH: usize = 100;

/// How utterances are cut.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Less speech than this (summed speech frames) is not an utterance: coughs, clicks, a door.
    pub min_utterance: Duration,
    /// An utterance is cut when it reaches this length: Whisper's window is 30 s, and a caption
    /// should not wait longer than this.
    pub max_utterance: Duration,
    /// This much non-speech ends an utterance: shorter pauses are inside a sentence.
    pub hangover: Duration,
    /// Audio kept before the first speech frame, so a soft onset is not clipped.
    pub pre_roll: Duration,
    /// A frame is speech when it is this many dB above the noise floor.
    pub threshold_db: f32,
    /// A frame below this level (dBFS) is never speech.
    pub min_level_dbfs: f32,
}

impl Default for VadConfig {
    /// The values measured best on the test clips (docs/transcription.md).
    fn default() -> Self {
        VadConfig {
            min_utterance: Duration::from_millis(250),
            max_utterance: Duration::from_secs(20),
            hangover: Duration::from_millis(600),
            pre_roll: Duration::from_millis(200),
            threshold_db: 12.0,
            min_level_dbfs: -50.0,
        }
    }
}

/// One utterance cut from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// Index of its first sample in the stream (samples since the VAD started).
    pub start: u64,
    /// Its samples.
    pub pcm: Vec<f32>,
}

impl Speech {
    /// Where it starts in the stream.
    pub fn offset(&self) -> Duration {
        samples_to_duration(self.start)
    }
}

/// A duration of `n` samples at [`SAMPLE_RATE`].
pub fn samples_to_duration(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / f64::from(SAMPLE_RATE))
}

fn to_frames(d: Duration) -> usize {
    (d.as_secs_f64() * f64::from(SAMPLE_RATE) / FRAME as f64).round() as usize
}

/// The utterance being collected.
struct Open {
    /// Stream index of its first sample.
    start: u64,
    /// Its samples so far, pre-roll included.
    pcm: Vec<f32>,
    /// The level of each whole frame in `pcm`, for the cut of an over-long utterance.
    levels: Vec<f32>,
    /// Frames judged speech so far.
    speech_frames: usize,
    /// Non-speech frames since the last speech frame.
    quiet_frames: usize,
}

/// The streaming energy VAD: feed it samples with [`EnergyVad::push`], take utterances as they end.
pub struct EnergyVad {
    /// Its settings, in frames where that is how they are used.
    min_speech: usize,
    max_frames: usize,
    hangover: usize,
    pre_roll: usize,
    threshold_db: f32,
    min_level_dbfs: f32,
    /// Samples not yet a whole frame.
    partial: Vec<f32>,
    /// Samples consumed in whole frames.
    consumed: u64,
    /// The last frames' levels, for the noise floor.
    recent: VecDeque<f32>,
    /// The last `pre_roll` samples before an utterance.
    history: VecDeque<f32>,
    /// The utterance being collected, if speech is going on.
    open: Option<Open>,
}

impl EnergyVad {
    /// A VAD cutting by `config`.
    pub fn new(config: &VadConfig) -> EnergyVad {
        EnergyVad {
            min_speech: to_frames(config.min_utterance).max(1),
            max_frames: to_frames(config.max_utterance).max(CUT_SEARCH + 1),
            hangover: to_frames(config.hangover).max(1),
            pre_roll: to_frames(config.pre_roll) * FRAME,
            threshold_db: config.threshold_db,
            min_level_dbfs: config.min_level_dbfs,
            partial: Vec::with_capacity(FRAME),
            consumed: 0,
            recent: VecDeque::with_capacity(FLOOR_WINDOW + 1),
            history: VecDeque::new(),
            open: None,
        }
    }

    /// Takes more samples; returns the utterances that ended within them.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Speech> {
        let mut out = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME {
                let frame = std::mem::take(&mut self.partial);
                if let Some(s) = self.frame(&frame) {
                    out.push(s);
                }
                self.partial = frame;
                self.partial.clear();
            }
        }
        out
    }

    /// Ends the stream: the utterance in progress, if it holds enough speech.
    pub fn flush(&mut self) -> Option<Speech> {
        let partial = std::mem::take(&mut self.partial);
        let mut open = self.open.take()?;
        open.pcm.extend_from_slice(&partial);
        self.finish(open)
    }

    /// Whether speech is going on (an utterance is open).
    pub fn in_speech(&self) -> bool {
        self.open.is_some()
    }

    fn finish(&self, open: Open) -> Option<Speech> {
        (open.speech_frames >= self.min_speech).then_some(Speech {
            start: open.start,
            pcm: open.pcm,
        })
    }

    fn frame(&mut self, frame: &[f32]) -> Option<Speech> {
        let energy = frame.iter().map(|x| x * x).sum::<f32>() / FRAME as f32;
        let level = 10.0 * (energy + 1e-10).log10();
        self.recent.push_back(level);
        if self.recent.len() > FLOOR_WINDOW {
            self.recent.pop_front();
        }
        let floor = self.recent.iter().copied().fold(f32::INFINITY, f32::min);
        let speech = level >= self.min_level_dbfs && level >= floor + self.threshold_db;
        let start = self.consumed;
        self.consumed += FRAME as u64;

        let Some(open) = self.open.as_mut() else {
            if speech {
                let mut pcm: Vec<f32> = self.history.drain(..).collect();
                let start = start - pcm.len() as u64;
                pcm.extend_from_slice(frame);
                self.open = Some(Open {
                    start,
                    levels: vec![f32::NEG_INFINITY; pcm.len() / FRAME - 1]
                        .into_iter()
                        .chain([level])
                        .collect(),
                    pcm,
                    speech_frames: 1,
                    quiet_frames: 0,
                });
            } else {
                self.history.extend(frame);
                while self.history.len() > self.pre_roll {
                    self.history.pop_front();
                }
            }
            return None;
        };

        open.pcm.extend_from_slice(frame);
        open.levels.push(level);
        if speech {
            open.speech_frames += 1;
            open.quiet_frames = 0;
        } else {
            open.quiet_frames += 1;
        }

        if open.quiet_frames >= self.hangover {
            let mut open = self.open.take()?;
            let keep = open.levels.len() - open.quiet_frames + TAIL_FRAMES.min(open.quiet_frames);
            // The quiet frames after the kept tail are dropped, not used as the next utterance's
            // pre-roll: the next speech starts at least a hangover later, and its own pre-roll
            // comes from the frames before it.
            open.pcm.truncate(keep * FRAME);
            self.history.clear();
            return self.finish(open);
        }

        if open.levels.len() >= self.max_frames {
            // Cut at the quietest frame of the last CUT_SEARCH; what follows it starts the next
            // utterance.
            let open_ref = self.open.as_mut()?;
            let n = open_ref.levels.len();
            let (cut, _) = open_ref.levels[n - CUT_SEARCH..].iter().enumerate().fold(
                (0, f32::INFINITY),
                |best, (i, &l)| {
                    if l < best.1 {
                        (i, l)
                    } else {
                        best
                    }
                },
            );
            let cut = n - CUT_SEARCH + cut + 1;
            let rest_pcm = open_ref.pcm.split_off(cut * FRAME);
            let rest_levels = open_ref.levels.split_off(cut);
            let rest_start = open_ref.start + (cut * FRAME) as u64;
            let rest_speech = rest_levels
                .iter()
                .filter(|&&l| l >= self.min_level_dbfs && l >= floor + self.threshold_db)
                .count();
            let mut done = self.open.take()?;
            done.speech_frames = done.speech_frames.saturating_sub(rest_speech);
            self.open = Some(Open {
                start: rest_start,
                pcm: rest_pcm,
                levels: rest_levels,
                speech_frames: rest_speech,
                quiet_frames: if speech { 0 } else { 1 },
            });
            return self.finish(done);
        }
        None
    }
}

/// Cuts a whole buffer into utterances (post transcription of a recording).
pub fn split(config: &VadConfig, pcm: &[f32]) -> Vec<Speech> {
    let mut vad = EnergyVad::new(config);
    let mut out = vad.push(pcm);
    out.extend(vad.flush());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: usize = SAMPLE_RATE as usize;

    /// A deterministic noise generator (xorshift), so the tests do not depend on a crate's RNG.
    struct Noise(u32);
    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
        }
    }

    /// `secs` of a "voice": a 200 Hz tone with syllable-rate amplitude modulation (4 Hz), which
    /// has the short dips real speech has.
    fn voice(secs: f64, amp: f32) -> Vec<f32> {
        let n = (secs * SR as f64) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / SR as f32;
                let syllable = (t * 4.0 * std::f32::consts::TAU).sin().abs();
                amp * syllable * (t * 200.0 * std::f32::consts::TAU).sin()
            })
            .collect()
    }

    fn silence(secs: f64) -> Vec<f32> {
        vec![0.0; (secs * SR as f64) as usize]
    }

    fn add_noise(pcm: &mut [f32], amp: f32) {
        let mut rng = Noise(0x1234_5678);
        for x in pcm {
            *x += amp * rng.next();
        }
    }

    fn secs(n: u64) -> f64 {
        n as f64 / SR as f64
    }

    #[test]
    fn speech_between_pauses_becomes_one_utterance_each() {
        let mut pcm = silence(1.0);
        pcm.extend(voice(2.0, 0.3));
        pcm.extend(silence(1.5));
        pcm.extend(voice(1.5, 0.3));
        pcm.extend(silence(1.0));
        add_noise(&mut pcm, 0.003);
        let cuts = split(&VadConfig::default(), &pcm);
        assert_eq!(
            cuts.len(),
            2,
            "{:?}",
            cuts.iter()
                .map(|c| (secs(c.start), c.pcm.len()))
                .collect::<Vec<_>>()
        );
        // Each starts a little before its voice (pre-roll) and lasts about as long, plus its tail.
        assert!(
            (0.75..=1.0).contains(&secs(cuts[0].start)),
            "{}",
            secs(cuts[0].start)
        );
        assert!((2.0..=2.6).contains(&secs(cuts[0].pcm.len() as u64)));
        assert!(
            (4.25..=4.5).contains(&secs(cuts[1].start)),
            "{}",
            secs(cuts[1].start)
        );
        assert!((1.5..=2.1).contains(&secs(cuts[1].pcm.len() as u64)));
    }

    #[test]
    fn a_pause_shorter_than_the_hangover_stays_inside_the_utterance() {
        let mut pcm = silence(0.5);
        pcm.extend(voice(1.0, 0.3));
        pcm.extend(silence(0.3));
        pcm.extend(voice(1.0, 0.3));
        pcm.extend(silence(1.0));
        assert_eq!(split(&VadConfig::default(), &pcm).len(), 1);
    }

    #[test]
    fn silence_noise_and_clicks_are_not_speech() {
        assert!(split(&VadConfig::default(), &silence(5.0)).is_empty());
        let mut hiss = silence(5.0);
        add_noise(&mut hiss, 0.01);
        assert!(split(&VadConfig::default(), &hiss).is_empty());
        // A 60 ms click: shorter than min_utterance.
        let mut click = silence(1.0);
        click.extend(voice(0.06, 0.5));
        click.extend(silence(1.0));
        assert!(split(&VadConfig::default(), &click).is_empty());
    }

    #[test]
    fn speech_in_steady_noise_is_found_once_the_floor_has_learned_the_noise() {
        let mut pcm = silence(2.5);
        pcm.extend(voice(2.0, 0.3));
        pcm.extend(silence(2.0));
        add_noise(&mut pcm, 0.03);
        let cuts = split(&VadConfig::default(), &pcm);
        assert_eq!(cuts.len(), 1);
        assert!((2.2..=2.5).contains(&secs(cuts[0].start)));
    }

    #[test]
    fn a_long_monologue_is_cut_at_the_maximum_and_nothing_is_lost() {
        let config = VadConfig {
            max_utterance: Duration::from_secs(5),
            ..VadConfig::default()
        };
        let mut pcm = silence(0.5);
        pcm.extend(voice(12.0, 0.3));
        pcm.extend(silence(1.0));
        let cuts = split(&config, &pcm);
        assert_eq!(
            cuts.len(),
            3,
            "{:?}",
            cuts.iter()
                .map(|c| (secs(c.start), c.pcm.len()))
                .collect::<Vec<_>>()
        );
        for c in &cuts {
            assert!(c.pcm.len() <= 5 * SR);
        }
        // Contiguous: each cut starts where the previous ended.
        for w in cuts.windows(2) {
            assert_eq!(w[0].start + w[0].pcm.len() as u64, w[1].start);
        }
    }

    #[test]
    fn the_stream_can_come_in_any_chunk_size() {
        let mut pcm = silence(0.7);
        pcm.extend(voice(1.3, 0.2));
        pcm.extend(silence(1.2));
        pcm.extend(voice(0.8, 0.2));
        let whole = split(&VadConfig::default(), &pcm);
        let mut vad = EnergyVad::new(&VadConfig::default());
        let mut pieces = Vec::new();
        for chunk in pcm.chunks(137) {
            pieces.extend(vad.push(chunk));
        }
        assert!(
            vad.in_speech(),
            "the last voice runs to the end of the stream"
        );
        pieces.extend(vad.flush());
        assert_eq!(whole, pieces);
        assert_eq!(pieces.len(), 2);
    }
}

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
//! The hangover shrinks as the utterance grows: a short one ends only at a real pause, so a
//! sentence is not split at a breath, while a monologue that has run several seconds ends at its
//! next pause between sentences or clauses, so its caption does not wait for the speaker to stop.
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
    /// An utterance that has run longer than this when a pause begins ends at a shorter pause:
    /// the hangover shrinks linearly from `hangover` here to `long_hangover` at `long_until`.
    pub long_from: Duration,
    /// The length from which the pause that ends an utterance is `long_hangover`.
    pub long_until: Duration,
    /// The pause that ends an utterance of `long_until` or more (never more than `hangover`):
    /// a pause between sentences, longer than those between words.
    pub long_hangover: Duration,
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
            long_from: Duration::from_millis(7500),
            long_until: Duration::from_secs(10),
            long_hangover: Duration::from_millis(240),
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

/// The pause that ends an utterance, in frames, by how long the utterance was when it began.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hangover {
    short: usize,
    long_from: usize,
    long_until: usize,
    long: usize,
}

impl Hangover {
    fn new(config: &VadConfig) -> Hangover {
        let short = to_frames(config.hangover).max(1);
        let long_from = to_frames(config.long_from);
        Hangover {
            short,
            long_from,
            long_until: to_frames(config.long_until).max(long_from),
            long: to_frames(config.long_hangover).clamp(1, short),
        }
    }

    /// The non-speech frames that end an utterance which was `frames` long when its pause began.
    fn after(&self, frames: usize) -> usize {
        if frames <= self.long_from {
            self.short
        } else if frames >= self.long_until {
            self.long
        } else {
            // Linear between the two (long_until > frames > long_from here).
            self.short
                - (self.short - self.long) * (frames - self.long_from)
                    / (self.long_until - self.long_from)
        }
    }
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
    hangover: Hangover,
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
            hangover: Hangover::new(config),
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

        let before_pause = open.levels.len() - open.quiet_frames;
        if open.quiet_frames >= self.hangover.after(before_pause) {
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

    /// Speech of `sentences` seconds each, separated by pauses of `pause` seconds, after 0.5 s of
    /// silence and followed by 1.5 s of it, with a little noise.
    fn monologue(sentences: &[f64], pause: f64) -> Vec<f32> {
        let mut pcm = silence(0.5);
        for (i, &s) in sentences.iter().enumerate() {
            if i > 0 {
                pcm.extend(silence(pause));
            }
            pcm.extend(voice(s, 0.3));
        }
        pcm.extend(silence(1.5));
        add_noise(&mut pcm, 0.003);
        pcm
    }

    #[test]
    fn a_long_monologue_ends_at_its_first_pause_between_sentences_after_several_seconds() {
        // Pauses of 300 ms: at 3.2 s and 6.5 s into the utterance the hangover is still 600 ms;
        // at 9.8 s it is 280 ms (600 ms shrinking to 240 ms between 7.5 s and 10 s).
        let pcm = monologue(&[3.0, 3.0, 3.0, 2.0, 1.5], 0.3);
        let cuts = split(&VadConfig::default(), &pcm);
        let spans: Vec<_> = cuts
            .iter()
            .map(|c| (secs(c.start), secs(c.pcm.len() as u64)))
            .collect();
        assert_eq!(cuts.len(), 2, "{spans:?}");
        // The first holds the first three sentences and ends in the third pause, within its
        // kept tail; the second starts just before the fourth sentence and holds the rest.
        assert!((9.9..=10.3).contains(&spans[0].1), "{spans:?}");
        assert!((10.2..=10.5).contains(&spans[1].0), "{spans:?}");
        assert!((3.8..=4.3).contains(&spans[1].1), "{spans:?}");
        // Nothing but a pause between them.
        assert!(spans[0].0 + spans[0].1 <= spans[1].0 + 0.2, "{spans:?}");

        // The same speech with the hangover fixed at 600 ms (the recordings' rule, and the VAD
        // of before) is one utterance.
        let fixed = VadConfig {
            long_hangover: Duration::from_millis(600),
            ..VadConfig::default()
        };
        assert_eq!(split(&fixed, &pcm).len(), 1);
    }

    #[test]
    fn pauses_between_words_never_end_an_utterance() {
        // 120 ms gaps (between words) in 12 s of speech: shorter than the shortest hangover.
        let pcm = monologue(&[0.5; 21], 0.12);
        let cuts = split(&VadConfig::default(), &pcm);
        assert_eq!(cuts.len(), 1, "{}", cuts.len());
        assert!(secs(cuts[0].pcm.len() as u64) >= 12.5);
    }

    #[test]
    fn the_hangover_shrinks_linearly_with_the_utterance_and_never_grows() {
        let h = Hangover::new(&VadConfig::default());
        let frames = |s: f64| (s * 50.0) as usize;
        assert_eq!(h.after(frames(1.0)), 30);
        assert_eq!(h.after(frames(7.5)), 30);
        assert_eq!(h.after(frames(8.75)), 22);
        assert_eq!(h.after(frames(10.0)), 12);
        assert_eq!(h.after(frames(19.0)), 12);
        let mut last = usize::MAX;
        for f in 0..1000 {
            assert!(h.after(f) <= last);
            last = h.after(f);
        }
        // A long hangover above the hangover is the hangover: it never grows; a zero one is a
        // frame; an empty ramp is a step.
        let odd = Hangover::new(&VadConfig {
            long_hangover: Duration::from_secs(5),
            long_until: Duration::from_secs(1),
            ..VadConfig::default()
        });
        assert_eq!((odd.after(0), odd.after(1000)), (30, 30));
        let zero = Hangover::new(&VadConfig {
            long_hangover: Duration::ZERO,
            ..VadConfig::default()
        });
        assert_eq!(zero.after(1000), 1);
        let step = Hangover::new(&VadConfig {
            long_until: Duration::from_millis(7500),
            ..VadConfig::default()
        });
        assert_eq!((step.after(375), step.after(376)), (30, 12));
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

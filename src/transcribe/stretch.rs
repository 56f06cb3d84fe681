//! Where a recording is cut for its transcript. Offline Whisper (faster-whisper without its VAD)
//! decodes the whole file in 30 s windows, each seeking to the last complete segment's end; a
//! cut inside speech, or the silence before a sentence trimmed off, moves those windows and
//! changes words. So the VAD's speech is only used to skip silences long enough to fill a window
//! ([`MAX_GAP`]): every shorter pause, and the file's start, stay in the audio decoded.

use std::ops::Range;
use std::time::Duration;

use super::SAMPLE_RATE;

/// A silence at least this long (a whole Whisper window) is skipped; a shorter one is decoded
/// with the speech around it.
pub const MAX_GAP: Duration = Duration::from_secs(30);
/// Silence kept on each side of a skipped one, so speech fading in or out is not clipped.
pub const PAD: Duration = Duration::from_secs(1);
/// A stretch is not made longer than this by joining speech across a pause (the VAD itself
/// bounds each piece of speech), so progress is reported every few minutes of audio.
pub const MAX_STRETCH: Duration = Duration::from_secs(300);

fn samples(d: Duration) -> u64 {
    (d.as_secs_f64() * f64::from(SAMPLE_RATE)).round() as u64
}

/// The stretches of a recording of `total` samples to decode, in order, given the `speech` the
/// VAD found in it (sample ranges, in order, not overlapping): speech separated by less than
/// `max_gap` of silence is joined with the silence between it; a longer silence is skipped but
/// for `pad` on each side; the file's start and end count as silences too. A stretch grows no
/// longer than `max_stretch` by a join (a piece of speech longer than it stays whole).
pub fn stretches(
    speech: &[Range<u64>],
    total: u64,
    max_gap: u64,
    pad: u64,
    max_stretch: u64,
) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut prev_end = 0u64;
    for s in speech {
        let (start, end) = (s.start.min(total), s.end.min(total));
        if start >= end {
            continue;
        }
        let gap = start.saturating_sub(prev_end);
        let next = match out.last_mut() {
            // A short pause: join, unless the stretch would grow too long; then the next one
            // starts where this speech does, and the pause stays with the one before.
            Some(last) if gap < max_gap => {
                if end - last.start <= max_stretch {
                    last.end = end;
                    None
                } else {
                    last.end = start;
                    Some(start..end)
                }
            }
            Some(last) => {
                last.end = (prev_end + pad).min(start);
                Some(start.saturating_sub(pad).max(last.end)..end)
            }
            // The first speech: from the file's start unless a long silence comes before it.
            None if gap < max_gap => Some(0..end),
            None => Some(start - pad.min(start)..end),
        };
        out.extend(next);
        prev_end = end;
    }
    if let Some(last) = out.last_mut() {
        last.end = if total - prev_end < max_gap {
            total
        } else {
            prev_end + pad
        };
    }
    out
}

/// [`stretches`] with the recording's constants, in samples at [`SAMPLE_RATE`].
pub fn recording_stretches(speech: &[Range<u64>], total: u64) -> Vec<Range<u64>> {
    stretches(
        speech,
        total,
        samples(MAX_GAP),
        samples(PAD),
        samples(MAX_STRETCH),
    )
}

#[cfg(test)]
// One range of speech is meant here, not a range of numbers.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn short_pauses_and_the_files_ends_are_decoded_with_the_speech() {
        // Speech at 5-10 and 12-40 in 50: pauses of 5, 2 and 10, all under 30.
        assert_eq!(stretches(&[5..10, 12..40], 50, 30, 1, 300), vec![0..50]);
    }

    #[test]
    fn a_silence_as_long_as_a_window_is_skipped_but_for_its_padding() {
        // 40 silent at the start, 50 between, 45 at the end.
        assert_eq!(
            stretches(&[40..60, 110..120], 165, 30, 2, 300),
            vec![38..62, 108..122]
        );
    }

    #[test]
    fn a_join_stops_at_the_longest_stretch() {
        // Joining 0..10 with 15..25 would make 25 > 20: the pause stays with the first.
        assert_eq!(
            stretches(&[0..10, 15..25], 25, 30, 1, 20),
            vec![0..15, 15..25]
        );
        // A piece of speech longer than the limit is kept whole.
        assert_eq!(stretches(&[0..40], 40, 30, 1, 20), vec![0..40]);
    }

    #[test]
    fn nothing_heard_nothing_decoded() {
        assert!(stretches(&[], 100, 30, 1, 300).is_empty());
        assert!(stretches(&[5..5], 100, 30, 1, 300).is_empty());
    }

    #[test]
    fn padding_never_overlaps_the_next_speech() {
        // A gap of exactly 30 with a pad of 20 on each side: the pads meet, they do not cross.
        let s = stretches(&[0..10, 40..50], 50, 30, 20, 300);
        assert_eq!(s, vec![0..30, 30..50]);
    }
}

//! Repetition: the guard against Whisper saying the same thing twice.
//!
//! Whisper, decoding a short utterance greedily, sometimes ends it by repeating its last sentence
//! ("It was the age of foolishness. It was the age of foolishness."), and given the speaker's
//! previous words as its prompt it sometimes starts by saying them again. Offline Whisper
//! (faster-whisper, whisper.cpp's CLI) catches the worst of this by the text's compression ratio
//! and decodes again at a higher temperature; the engine does that too (`whisper.rs`). What is
//! left is removed here: a clause (of at least [`MIN_WORDS`] words) or a run of up to
//! [`MAX_RUN`] clauses that follows an identical one, within an utterance or across the end of the
//! same speaker's previous utterance, is dropped. A person who really says a whole sentence twice
//! in a row loses the second one in the captions; that is rarer than Whisper's loops.
//!
//! Pure text handling, no model.

use std::io::Write;

use super::Piece;

/// A repeated clause shorter than this is kept: "No, no." and "Thank you. Thank you." are
/// speech, not loops.
pub const MIN_WORDS: usize = 3;
/// The longest run of clauses compared as a unit ("A. B. A. B." drops the second "A. B.").
pub const MAX_RUN: usize = 3;
/// faster-whisper's `compression_ratio_threshold`: text that gzip shrinks more than this is
/// taken for a loop.
pub const COMPRESSION_RATIO_MAX: f64 = 2.4;

/// The words of `text` as compared: lower case, letters and digits only.
fn norm(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Splits `text` into clauses, each keeping its closing punctuation (`.`, `,`, `?`, `!`, `;`,
/// `:`); whatever follows the last mark is a clause too.
pub fn clauses(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | ',' | '?' | '!' | ';' | ':') {
            // "3.5" and "1,000" are numbers, not clause ends.
            let next = text[i + c.len_utf8()..].chars().next();
            if next.is_some_and(|n| n.is_ascii_digit()) {
                continue;
            }
            let end = i + c.len_utf8();
            if !text[start..end].trim().is_empty() {
                out.push(text[start..end].trim());
            }
            start = end;
        }
    }
    if !text[start..].trim().is_empty() {
        out.push(text[start..].trim());
    }
    out
}

/// A run of words said this many times in a row, with no punctuation between ("press zero press
/// zero press zero"), is a loop: Whisper's, not the speaker's.
pub const LOOP_TIMES: usize = 3;
/// The longest run of words checked for such a loop.
const LOOP_WORDS: usize = 8;

/// Removes word loops from one clause: a run of 2 to [`LOOP_WORDS`] words repeated
/// [`LOOP_TIMES`] times or more in a row is kept once. Returns the clause unchanged when it has
/// none.
fn unloop(clause: &str) -> String {
    let words: Vec<&str> = clause.split_whitespace().collect();
    let key: Vec<String> = words.iter().map(|w| norm(w).concat()).collect();
    let mut keep = vec![true; words.len()];
    let mut i = 0;
    while i < words.len() {
        let mut skipped = false;
        for n in 2..=LOOP_WORDS {
            let mut times = 1;
            while i + (times + 1) * n <= words.len()
                && key[i..i + n] == key[i + times * n..i + (times + 1) * n]
            {
                times += 1;
            }
            if times >= LOOP_TIMES {
                for k in keep.iter_mut().skip(i + n).take((times - 1) * n) {
                    *k = false;
                }
                i += times * n;
                skipped = true;
                break;
            }
        }
        if !skipped {
            i += 1;
        }
    }
    if keep.iter().all(|k| *k) {
        return clause.to_string();
    }
    words
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(w, _)| *w)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One clause being kept or dropped.
struct Clause {
    /// Which piece it came from; `None` for the previous utterance's clauses, which are only
    /// compared with.
    piece: Option<usize>,
    text: String,
    words: Vec<String>,
}

/// Whether the last `k` clauses of `kept` repeat the `k` before them (and are long enough to
/// count).
fn repeats(kept: &[Clause], k: usize) -> bool {
    let n = kept.len();
    if n < 2 * k {
        return false;
    }
    let (a, b) = (&kept[n - 2 * k..n - k], &kept[n - k..]);
    let words: usize = b.iter().map(|c| c.words.len()).sum();
    words >= MIN_WORDS && a.iter().zip(b).all(|(x, y)| x.words == y.words)
}

/// Removes repeated clauses from an utterance's `pieces`, comparing its first clauses with the
/// end of `before` (the same speaker's previous text; empty for none). Pieces left with no words
/// are dropped; times are kept.
pub fn dedupe(before: &str, pieces: Vec<Piece>) -> Vec<Piece> {
    let mut kept: Vec<Clause> = clauses(before)
        .into_iter()
        .rev()
        .take(MAX_RUN)
        .rev()
        .map(|c| Clause {
            piece: None,
            text: c.to_string(),
            words: norm(c),
        })
        .collect();
    let seeded = kept.len();
    let mut new_count = 0;
    for (i, p) in pieces.iter().enumerate() {
        for c in clauses(&p.text) {
            let c = unloop(c);
            let words = norm(&c);
            if words.is_empty() {
                continue;
            }
            kept.push(Clause {
                piece: Some(i),
                text: c,
                words,
            });
            new_count += 1;
            for k in 1..=MAX_RUN.min(new_count) {
                if repeats(&kept, k) {
                    kept.truncate(kept.len() - k);
                    new_count -= k;
                    break;
                }
            }
        }
    }
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); pieces.len()];
    for c in kept.into_iter().skip(seeded) {
        if let Some(i) = c.piece {
            texts[i].push(c.text);
        }
    }
    pieces
        .into_iter()
        .zip(texts)
        .filter(|(_, t)| !t.is_empty())
        .map(|(p, t)| Piece {
            text: t.join(" "),
            ..p
        })
        .collect()
}

/// Whether `text` holds a repeat [`dedupe`] would remove.
pub fn has_repeat(text: &str) -> bool {
    let piece = Piece {
        start: std::time::Duration::ZERO,
        end: std::time::Duration::ZERO,
        text: text.to_string(),
    };
    let out = dedupe("", vec![piece]);
    norm(&out.first().map(|p| p.text.clone()).unwrap_or_default()) != norm(text)
}

/// The text's length over its zlib-compressed length, as faster-whisper computes it; 1 for
/// text too short to tell.
pub fn compression_ratio(text: &str) -> f64 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 1.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let packed = z.write_all(bytes).and_then(|()| z.finish());
    match packed {
        Ok(p) if !p.is_empty() => bytes.len() as f64 / p.len() as f64,
        _ => 1.0,
    }
}

/// Whether a decode's text looks like a loop: a repeated clause or a compression ratio above
/// faster-whisper's threshold.
pub fn looks_looped(text: &str) -> bool {
    has_repeat(text) || compression_ratio(text) > COMPRESSION_RATIO_MAX
}

/// The last `max_chars` (or fewer) of `text`, starting at a word: the prompt carried to the
/// speaker's next utterance.
pub fn tail(text: &str, max_chars: usize) -> &str {
    let t = text.trim();
    if t.len() <= max_chars {
        return t;
    }
    let mut cut = t.len() - max_chars;
    while !t.is_char_boundary(cut) {
        cut += 1;
    }
    if t[..cut].ends_with(' ') {
        return &t[cut..];
    }
    match t[cut..].find(' ') {
        Some(sp) => t[cut + sp..].trim_start(),
        None => &t[cut..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn piece(text: &str, at: u64) -> Piece {
        Piece {
            start: Duration::from_secs(at),
            end: Duration::from_secs(at + 1),
            text: text.into(),
        }
    }

    fn texts(p: &[Piece]) -> Vec<&str> {
        p.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn a_sentence_said_twice_in_one_utterance_is_said_once() {
        let out = dedupe(
            "",
            vec![piece(
                "It was the age of wisdom, it was the age of foolishness. It was the age of foolishness.",
                0,
            )],
        );
        assert_eq!(
            texts(&out),
            ["It was the age of wisdom, it was the age of foolishness."]
        );
    }

    #[test]
    fn a_repeat_in_the_next_piece_or_a_two_sentence_loop_goes_too() {
        let out = dedupe(
            "",
            vec![
                piece("We had everything before us.", 0),
                piece("We had everything before us.", 2),
                piece("We had nothing before us.", 4),
            ],
        );
        assert_eq!(
            texts(&out),
            ["We had everything before us.", "We had nothing before us."]
        );
        assert_eq!(out[1].start, Duration::from_secs(4));
        let out = dedupe(
            "",
            vec![piece(
                "Press one for sales. Press two for support. Press one for sales. Press two for support.",
                0,
            )],
        );
        assert_eq!(texts(&out), ["Press one for sales. Press two for support."]);
    }

    #[test]
    fn the_previous_utterance_said_again_at_the_start_is_dropped() {
        let before = "It was the best of times. It was the worst of times.";
        let out = dedupe(
            before,
            vec![piece(
                "It was the worst of times. It was the age of wisdom.",
                0,
            )],
        );
        assert_eq!(texts(&out), ["It was the age of wisdom."]);
        // The whole utterance was the prompt said again: nothing is left.
        assert!(dedupe(before, vec![piece("It was the worst of times.", 0)]).is_empty());
    }

    #[test]
    fn a_loop_of_words_without_punctuation_is_said_once() {
        let out = dedupe(
            "",
            vec![piece(
                "For an operator press zero press zero press zero press zero for a company directory press four",
                0,
            )],
        );
        assert_eq!(
            texts(&out),
            ["For an operator press zero for a company directory press four"]
        );
        assert!(has_repeat("to be or not to be or not to be or not"));
        // Twice is speech ("very very", "bye bye, bye bye").
        assert!(!has_repeat("it is very very good, bye bye bye bye"));
    }

    #[test]
    fn short_or_different_clauses_are_speech_and_stay() {
        for text in [
            "No, no. Thank you. Thank you.",
            "It was the best of times, it was the worst of times.",
            "The price went from 3.5 to 3.5 percent.",
        ] {
            let out = dedupe("", vec![piece(text, 0)]);
            assert_eq!(texts(&out), [text], "{text}");
            assert!(!has_repeat(text), "{text}");
        }
        // And what the previous utterance said is only compared with, never output.
        let out = dedupe("Good morning everyone.", vec![piece("Let us begin.", 0)]);
        assert_eq!(texts(&out), ["Let us begin."]);
    }

    #[test]
    fn loops_compress_and_speech_does_not() {
        let speech =
            "It was the best of times, it was the worst of times, it was the age of wisdom.";
        assert!(compression_ratio(speech) < COMPRESSION_RATIO_MAX);
        assert!(!looks_looped(speech));
        let lp = "and then and then and then and then and then and then and then and then and then";
        assert!(compression_ratio(lp) > COMPRESSION_RATIO_MAX);
        assert!(looks_looped(lp));
        assert!(looks_looped(
            "We were all going direct to Heaven. We were all going direct to Heaven."
        ));
    }

    #[test]
    fn the_prompt_is_the_texts_tail_from_a_word() {
        assert_eq!(tail("short", 100), "short");
        assert_eq!(tail("one two three four", 9), "four");
        assert_eq!(tail("one two three four", 10), "three four");
        assert_eq!(tail("héllo wörld", 6), "wörld");
    }
}

#!/usr/bin/env python3
"""Word error rate of transcripts against the clips' reference text.

    wer.py CLIPS_DIR [--per-file] < results.jsonl   # lines from transcribe_file or fw_transcribe.py

Prints JSON: total reference words, errors (substitutions + deletions + insertions, by edit
distance over words), WER, audio and compute seconds summed (RTF = compute / audio), and
repeats: clauses of three words or more said twice in a row (Whisper's loop), which the
edit distance counts as insertions. `--per-file` prints one such line per file instead, with its
"file".
Normalized as tests/transcribe.rs does: lower case, punctuation and hyphens to spaces, numbers
below 100 spelled out (Whisper writes "30" where the clip says "thirty").
"""
import json
import re
import sys
from pathlib import Path

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n):
    n = int(n)
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    return str(n)


def words(text):
    text = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " "))
    text = re.sub(r"\d+", lambda m: " " + spell(m.group()) + " ", text)
    return text.replace("'", "").split()


def distance(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def repeats(text):
    """Clauses (split at . , ? ! ; :) of three words or more that repeat the one before."""
    clauses = [words(c) for c in re.split(r"[.,?!;:](?!\d)", text)]
    clauses = [c for c in clauses if c]
    return sum(1 for a, b in zip(clauses, clauses[1:]) if a == b and len(b) >= 3)


def score_loop(captions, sentences):
    """Captions of a looping source against the sentences it says, in order (tests/support/speech.rs
    `score`): the captions' words against the run of whole sentences, from any one and wrapping
    around, that fits them best; a caption said twice costs its words. Returns (errors, words)."""
    said = [w for c in captions for w in words(c)]
    each = [words(s) for s in sentences]
    longest = max(len(e) for e in each)
    best = None
    for start in range(len(each)):
        ref, k = [], 0
        while True:
            ref += each[(start + k) % len(each)]
            k += 1
            e = distance(ref, said)
            if best is None or e < best[0] or (e == best[0] and len(ref) > best[1]):
                best = (e, len(ref))
            if len(ref) > 2 * len(said) + longest:
                break
    return best


def summary(ref_words, errors, audio, compute, reps):
    return {"words": ref_words, "errors": errors, "wer": errors / max(ref_words, 1),
            "audio": audio, "compute": compute, "rtf": compute / max(audio, 1e-9), "repeats": reps}


def main():
    clips = Path(sys.argv[1])
    per_file = "--per-file" in sys.argv[2:]
    ref_words = errors = audio = compute = reps = 0
    for line in sys.stdin:
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        ref = words((clips / (Path(r["file"]).stem + ".txt")).read_text())
        e = distance(ref, words(r["text"]))
        if per_file:
            print(json.dumps({"file": Path(r["file"]).stem,
                              **summary(len(ref), e, r["audio"], r["compute"], repeats(r["text"]))}))
        ref_words += len(ref)
        errors += e
        audio += r["audio"]
        compute += r["compute"]
        reps += repeats(r["text"])
    if not per_file:
        print(json.dumps(summary(ref_words, errors, audio, compute, reps)))


if __name__ == "__main__":
    main()

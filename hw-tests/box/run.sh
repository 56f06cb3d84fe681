#!/usr/bin/env bash
# hw-tests/box/run.sh — the booted box: the product as a board runs it. Builds the .deb
# (scripts/package.sh, dev profile unless told), boots the rig's kernel with the box root
# (hw-tests/box/setup.sh) and its own systemd as PID 1, and runs hw-tests/box/in-box.sh there:
# install with the README's line, the README's board commands as typed, reload onto the virtual
# camera and sound card, record, transcribe, the worker's priority from /proc, restart, and no
# sandbox denials in the journal.
#
# Usage: hw-tests/box/run.sh [--profile dev|release] [--deb FILE] [--keep]
# Needs hw-tests/setup.sh (which runs box/setup.sh) and the Whisper model from scripts/setup.sh.
# Prints "1 passed, 0 failed" or "0 passed, 1 failed" for scripts/test.sh's tally.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${ROOMBOX_HW_CACHE:-/var/cache/roombox-hw}
MODEL=${ROOMBOX_MODEL:-$HOME/.cache/roombox-models/ggml-tiny.en-q8_0.bin}
profile=dev
deb=""
keep=0
while (($#)); do
  case $1 in
    --profile) profile=${2:?}; shift 2 ;;
    --deb) deb=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--profile dev|release] [--deb FILE] [--keep]" >&2; exit 2 ;;
  esac
done
[ -f "$CACHE/box-root/.rbx-stamp" ] || { echo "box: no box root: run hw-tests/setup.sh" >&2; exit 1; }
[ -s "$MODEL" ] || { echo "box: no Whisper model at $MODEL: run scripts/setup.sh" >&2; exit 1; }
if [ -z "$deb" ]; then
  deb=$(bash scripts/package.sh amd64 --profile "$profile" | tail -n 1)
fi
[ -f "$deb" ] || { echo "box: no package at '$deb'" >&2; exit 1; }
# The update steps: the same package at the next Debian revision, served and installed as a
# signed update, and a broken one (its agent exits at once) that must be rolled back. cargo-deb
# replaces the first package in its output directory: keep a copy.
first=$(mktemp -d)
cp "$deb" "$first/"
deb="$first/$(basename "$deb")"
rev=$(dpkg-deb -f "$deb" Version)
next=$(bash scripts/package.sh amd64 --profile "$profile" --deb-revision $((${rev##*-} + 1)) | tail -n 1)
[ -f "$next" ] || { echo "box: no second package" >&2; exit 1; }

# Not under /tmp: the box's systemd-tmpfiles empties /tmp at boot, and the results dir is shared.
mkdir -p "$CACHE/box-runs"
results=$(mktemp -d "$CACHE/box-runs/run.XXXXXX")
# Under Debian's own file name, which the README's install line globs.
cp "$deb" "$results/$(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version)_$(dpkg-deb -f "$deb" Architecture).deb"
cp README.md hw-tests/box/in-box.sh "$MODEL" "$results/"
cp "$next" "$results/update-good.deb"
broken=$(mktemp -d)
dpkg-deb -R "$next" "$broken"
printf '#!/bin/sh\necho "roombox: deliberately broken" >&2\nexit 1\n' >"$broken/usr/bin/roombox"
chmod 755 "$broken/usr/bin/roombox"
good_version=$(dpkg-deb -f "$next" Version)
sed -i "s/^Version: .*/Version: ${good_version%-*}-$((${good_version##*-} + 1))/" "$broken/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -b "$broken" "$results/update-broken.deb" >/dev/null
rm -rf "$broken" "$first"
# The "room" the microphone hears: one sentence, raw S16LE 48 kHz stereo, and 4 s of silence
# (long chunks: under emulation each `cat` the feeder runs costs a noticeable moment).
espeak-ng -w "$results/speech.wav" "The quick brown fox jumps over the lazy dog." 2>/dev/null
gst-launch-1.0 -q filesrc location="$results/speech.wav" ! wavparse ! audioconvert \
  ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=2 \
  ! filesink location="$results/speech.raw" >/dev/null
head -c 768000 /dev/zero >"$results/silence.raw"

set +e
bash hw-tests/run-in-guest.sh --boot "$CACHE/box-root" --results "$results" --timeout 1200 \
  -- bash in-box.sh
rc=$?
set -e
if [ "$rc" = 0 ]; then
  echo "1 passed, 0 failed"
  ((keep)) || rm -rf "$results"
else
  echo "box: FAILED (exit $rc); the run's files are in $results"
  echo "0 passed, 1 failed"
fi
exit "$rc"

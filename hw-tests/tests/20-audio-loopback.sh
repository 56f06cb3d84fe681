#!/usr/bin/env bash
# Sound: real ALSA capture of a tone played into a loopback (snd-aloop, or a cable on a board).
# Proves: capturing $ROOMBOX_HW_MIC alone measures silence (a control), and while a 1 kHz sine
# at half scale plays into $ROOMBOX_HW_MIC_FEED the capture's RMS level is that tone's (-9 dBFS
# on snd-aloop; a wider window on real hardware, where the analog path has gain and noise).
# Windows: ROOMBOX_HW_SILENCE_MAX_DB, ROOMBOX_HW_TONE_MIN_DB, ROOMBOX_HW_TONE_MAX_DB.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "${ROOMBOX_HW_LIB:-$(dirname "$0")/../lib.sh}"

CAPS=audio/x-raw,format=S16LE,rate=48000,channels=2
if hw_sim; then
  silence_max=${ROOMBOX_HW_SILENCE_MAX_DB:--60} tone_min=${ROOMBOX_HW_TONE_MIN_DB:--12}
  tone_max=${ROOMBOX_HW_TONE_MAX_DB:--6}
else
  silence_max=${ROOMBOX_HW_SILENCE_MAX_DB:--50} tone_min=${ROOMBOX_HW_TONE_MIN_DB:--40}
  tone_max=${ROOMBOX_HW_TONE_MAX_DB:-0}
fi

# print the per-interval RMS of channel 0 in dBFS, one a line (level posts every 100 ms)
capture_rms() { # DEVICE NUM_BUFFERS
  gst-launch-1.0 -m alsasrc device="$1" num-buffers="$2" ! "$CAPS" \
    ! level interval=100000000 ! fakesink </dev/null 2>&1 |
    sed -n 's/.*rms=(GValueArray)< *\([-0-9.e+]*\),.*/\1/p'
}

silence=$(capture_rms "$ROOMBOX_HW_MIC" 30)
echo "silence control, rms dBFS: ${silence//$'\n'/ }"
[ -n "$silence" ] || { echo "FAIL: no level measured on $ROOMBOX_HW_MIC"; exit 1; }
awk -v max="$silence_max" '$1 > max { bad = 1 } END { exit bad }' <<<"$silence" ||
  { echo "FAIL: $ROOMBOX_HW_MIC is not silent with nothing playing"; exit 1; }

gst-launch-1.0 -q audiotestsrc is-live=true wave=sine freq=1000 volume=0.5 ! "$CAPS" \
  ! alsasink device="$ROOMBOX_HW_MIC_FEED" </dev/null >/dev/null 2>&1 &
player=$!
trap 'kill "$player" 2>/dev/null || true' EXIT
hw_sleep 1
tone=$(capture_rms "$ROOMBOX_HW_MIC" 100)
echo "tone capture, rms dBFS: ${tone//$'\n'/ }"
kill "$player" 2>/dev/null || true
# at least 5 intervals at the tone's level (-9.03 dBFS for a half-scale sine)
n=$(awk -v lo="$tone_min" -v hi="$tone_max" '$1 > lo && $1 < hi { n++ } END { print n + 0 }' <<<"$tone")
[ "$n" -ge 5 ] || { echo "FAIL: only $n intervals at the tone's level"; exit 1; }
echo "PASS ($n intervals at the tone's level)"

#!/usr/bin/env bash
# The speaker and the mic paired against snd-aloop's real driver (issue 17's bad input): while
# the speaker's loopback is held at 48 kHz stereo by its other side, `roombox check` with a
# 16 kHz mono mic and the canceller on fails the `speaker` line (the box's speaker plays S16LE
# mono at the mic's rate, the canceller's reference); once it is free, the line is ok.
# The echo canceller's own measurement on these devices is a bench, hw-tests/bench/echo-aloop.sh:
# under TCG the guest cannot run the canceller in real time, so it cannot be a test here.
# Needs: cargo build --bin roombox
set -euo pipefail
. "$ROOMBOX_HW_LIB"

target=${CARGO_TARGET_DIR:-target}
roombox=${ROOMBOX_BIN:-$target/debug/roombox}
for b in "$roombox"; do
	[ -x "$b" ] || {
		echo "FAIL: no $b: cargo build --bin roombox"
		exit 1
	}
done
if ! hw_sim; then accel="none (a board)"; elif dmesg | grep -q 'Hypervisor detected: KVM'; then accel=kvm; else accel=tcg; fi
echo "accel: $accel"

dir=${ROOMBOX_HW_RESULTS:-/tmp}/70-speaker-pairing
mkdir -p "$dir"
cat >"$dir/roombox.toml" <<CFG
[device]
id = "rig"
state_dir = "$dir/state"

[room]
backend = "janus"
url = "ws://127.0.0.1:8188"
room_id = "1"

[room.playback]
audio_sink = "alsa"
audio_device = "$ROOMBOX_HW_SPEAKER"

[media.video]
source = "none"

[media.audio]
source = "alsa"
device = "$ROOMBOX_HW_MIC"
rate = 16000
channels = 1

[media.audio.processing]
echo_cancel = true
CFG
speaker_line() { "$roombox" check --config "$dir/roombox.toml" 2>/dev/null | grep -E '^[a-z]+ +speaker ' || true; }

arecord -q -D "$ROOMBOX_HW_SPEAKER_TAP" -f S16_LE -r 48000 -c 2 -t raw >/dev/null 2>&1 &
holder=$!
trap 'kill "$holder" 2>/dev/null || true' EXIT
hw_sleep 1
line=$(speaker_line)
echo "$line"
case $line in
failed*refuses*mono*16000\ Hz*) echo "ok - check: a speaker held at 48 kHz stereo cannot be paired with a 16 kHz mono mic" ;;
*) echo "FAIL: check did not fail the speaker held at 48 kHz stereo"; exit 1 ;;
esac
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
line=$(speaker_line)
echo "$line"
case $line in
ok*plays\ S16LE\ mono\ at\ 16000\ Hz*) echo "ok - check: the free speaker plays S16LE mono at the mic's 16 kHz" ;;
*) echo "FAIL: check did not pass the free speaker"; exit 1 ;;
esac


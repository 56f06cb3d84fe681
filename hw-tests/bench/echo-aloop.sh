#!/usr/bin/env bash
# Echo cancellation, tier 2 (issue 17), on snd-aloop's real clocks and buffers:
#   1. `roombox check` pairs the speaker with the mic against the real driver: while the
#      speaker's loopback is held at 48 kHz stereo by its other side, a 16 kHz mono mic with
#      the canceller on is a failed `speaker` line (the box's speaker plays S16LE mono at the
#      mic's rate, the canceller's reference); once it is free, the line is ok.
#   2. examples/echo_aloop/: the box's real speaker chain plays far-end speech into its ALSA
#      speaker ($ROOMBOX_HW_SPEAKER); the room simulator hears it at $ROOMBOX_HW_SPEAKER_TAP,
#      delays it, saturates it a little, convolves it with a room's impulse response, adds noise
#      and a near-end talker, and plays that into $ROOMBOX_HW_MIC_FEED, which the box's real
#      capture takes from its ALSA mic ($ROOMBOX_HW_MIC) through the canceller. Twice in the
#      same run: the control with no canceller (the echo must come through whole), then aec3
#      (ERLE after convergence >= ROOMBOX_ECHO_MIN_ERLE, default 20 dB; the near-end talker
#      alone passes). Under TCG the guest may not run aec3 in real time: a run that fell
#      only a little behind is tried once more; one behind says SKIP (with what aec3 costs),
#      unless ROOMBOX_ECHO_REQUIRE=1. ROOMBOX_ECHO_AUDIO_SINK sets the speaker's audio_sink.
# A bench, not one of the rig's tests (under TCG the guest rarely runs aec3 in real time):
#   hw-tests/run-in-guest.sh -- bash hw-tests/bench/echo-aloop.sh
# 60 to 140 s of guest time. Needs: cargo build --bin roombox && cargo build --features test-util
# --example echo_aloop
set -euo pipefail
. "$ROOMBOX_HW_LIB"

target=${CARGO_TARGET_DIR:-target}
bin=${ROOMBOX_ECHO_ALOOP_BIN:-$target/debug/examples/echo_aloop}
roombox=${ROOMBOX_BIN:-$target/debug/roombox}
for b in "$bin" "$roombox"; do
	[ -x "$b" ] || {
		echo "FAIL: no $b: cargo build --bin roombox && cargo build --features test-util --example echo_aloop"
		exit 1
	}
done
# First the pairing check the rig's tests make (it says whether the guest has KVM).
bash "$(dirname "$0")/../tests/70-speaker-pairing.sh"
"$bin"

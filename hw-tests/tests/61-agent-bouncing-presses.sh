#!/usr/bin/env bash
# 50 presses with bouncing contacts on both edges give exactly 50 actions. The camera button's
# short press is `identify` in the rig config, which emits one event per command run, so the
# events count the actions the agent ran. gpiolib-cdev debounces in the kernel (gpio-sim has no
# debounce of its own), so the agent's software debounce stands down.
set -euo pipefail
. "$ROOMBOX_HW_LIB"
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/61-agent-bouncing-presses
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"
trap 'agent_stop; hw_cleanup' EXIT

cfg=$AGENT_DIR/roombox.toml
agent_config "$cfg"
# GPIO only: no camera (lighter under TCG, and independent of the camera tests before it).
sed -i 's/^source = "v4l2"/source = "none"/' "$cfg"
# Under TCG on a busy host a vCPU can stall for 100-300 ms, even between two back-to-back
# writes of a burst; a stall longer than the debounce inside a bounce is a real release as far as
# any debounce can tell. A long debounce (and long holds and gaps) keeps the count about the
# agent, not about the host's load.
debounce_ms=200
sed -i "s/^debounce = .*/debounce = \"${debounce_ms}ms\"/" "$cfg"
agent_start "$cfg"
agent_wait '.media.state == "PLAYING"' 90

# burst NAME LEVELS...: write the levels back to back (contacts chattering well under 1 ms
# apart) and note the burst's length: a stall longer than the debounce inside a burst (TCG on a
# busy host can stall a vCPU that long) is a real press as far as any debounce can tell.
longest=0
burst() {
	local name=$1 t0 l dt
	shift
	t0=${EPOCHREALTIME/./}
	if hw_sim; then
		_hw_lookup "$name" PULL
		for l in "$@"; do
			if [ "$l" = 0 ]; then echo pull-down >"$REPLY"; else echo pull-up >"$REPLY"; fi
		done
	else
		for l in "$@"; do if [ "$l" = 0 ]; then press "$name"; else release "$name"; fi; done
	fi
	dt=$((${EPOCHREALTIME/./} - t0))
	((dt > longest)) && longest=$dt
	return 0
}
for ((i = 0; i < 50; i++)); do
	burst btn-camera 0 1 0 1 0 1 0 # a bouncing press, settling pressed
	hw_sleep 0.5
	burst btn-camera 1 0 1 0 1 # a bouncing release, settling released
	hw_sleep 0.5
done
echo "longest bounce burst: $((longest / 1000)) ms (debounce $debounce_ms ms)"
agent_wait_events '"event":"identify"' 50 120
hw_sleep 2 # anything late would show up now
n=$(agent_events_count '"event":"identify"')
if [ "$n" != 50 ]; then
	((longest / 1000 < debounce_ms)) ||
		echo "note: a burst stalled $((longest / 1000)) ms, past the debounce: the host is too loaded for this test" >&2
	agent_fail "50 bouncing presses gave $n actions"
fi
echo "ok - 50 bouncing presses gave exactly 50 actions"

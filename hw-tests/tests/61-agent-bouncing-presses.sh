#!/usr/bin/env bash
# 50 presses with bouncing contacts on both edges give exactly 50 actions. The camera button's
# short press is `identify` in the rig config, which emits one event per command run, so the
# events count the actions the agent ran. Kernel debounce (gpiolib-cdev's, as gpio-sim has
# none) and the agent's software lockout both apply.
set -euo pipefail
. "$ROOMBOX_HW_LIB"
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/61-agent-bouncing-presses
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"
trap 'agent_stop; hw_cleanup' EXIT

cfg=$AGENT_DIR/roombox.toml
agent_config "$cfg"
agent_start "$cfg"
agent_wait '.media.state == "PLAYING"' 90

for ((i = 0; i < 50; i++)); do
	bounce btn-camera 6 # 7 edges ~1-3 ms apart, settling pressed
	hw_sleep 0.1
	release btn-camera # and a bouncing release
	hw_sleep 0.002
	press btn-camera
	hw_sleep 0.002
	release btn-camera
	hw_sleep 0.12
done
agent_wait_events '"event":"identify"' 50 90
hw_sleep 2 # anything late would show up now
n=$(agent_events_count '"event":"identify"')
[ "$n" = 50 ] || agent_fail "50 bouncing presses gave $n actions"
echo "ok - 50 bouncing presses gave exactly 50 actions"

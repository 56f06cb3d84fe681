#!/usr/bin/env bash
# Guest side of benches/controls-rig.sh: button release edge (a gpio-sim pull write) to the red
# LED line changing, through the kernel (irq_sim, gpiolib-cdev debounce), the agent's gpiocdev
# reader, classifier, command queue, agent, media engine and LED driver. Two agents in turn:
# debounce 0 (the baseline: no debounce anywhere) and the default 20 ms.
set -euo pipefail
. "$ROOMBOX_HW_LIB"
ROUNDS=${ROUNDS:-30}
here=${BASH_SOURCE[0]%/*}

measure() { # DEBOUNCE -> prints sorted microseconds, one per line
	AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/bench-controls-$1
	. "$here/../hw-tests/agent-lib.sh"
	local cfg=$AGENT_DIR/roombox.toml value before v t0 t1 i
	agent_config "$cfg"
	sed -i "s/^debounce = .*/debounce = \"$1\"/" "$cfg"
	agent_start "$cfg"
	agent_wait '.media.state == "PLAYING" and .localParticipant.micOn' 120
	_hw_lookup led-red VALUE
	value=$REPLY
	: >"$AGENT_DIR/us.txt"
	for ((i = 0; i < ROUNDS; i++)); do
		read -r before <"$value"
		press btn-mute
		hw_sleep 0.1
		t0=${EPOCHREALTIME/./}
		release btn-mute
		while :; do
			read -r v <"$value"
			[ "$v" != "$before" ] && break
			((${EPOCHREALTIME/./} - t0 < 10000000)) || agent_fail "LED unchanged after 10 s"
		done
		t1=${EPOCHREALTIME/./}
		echo $((t1 - t0)) >>"$AGENT_DIR/us.txt"
		hw_sleep 0.3
	done
	agent_stop
	sort -n "$AGENT_DIR/us.txt"
}

pct() { # FILE P -> value in ms
	awk -v p="$2" '{ a[NR] = $1 } END { i = int((NR - 1) * p + 0.5) + 1; printf "%.1f", a[i] / 1000 }' "$1"
}

d0=$(mktemp) d20=$(mktemp)
measure 0s >"$d0"
measure 20ms >"$d20"
b50=$(pct "$d0" 0.5) b99=$(pct "$d0" 0.99) m50=$(pct "$d20" 0.5) m99=$(pct "$d20" 0.99)
cat >"${ROOMBOX_HW_RESULTS:-/tmp}/controls-rig.md" <<MD
## Buttons and LEDs: edge to LED in the QEMU rig (under emulation)

Debian 6.1 kernel under QEMU TCG (software CPU emulation, 2 vCPUs): gpio-sim button, gpiocdev,
the real agent and media engine (vivid camera, snd-aloop mic), LED read back from gpio-sim.
$ROUNDS mute presses per row; time from the release edge (the pull write) to the red LED line
changing. Emulation makes every figure several times slower than on a board.

| path | p50 | p99 | p50 ratio | p99 ratio |
|---|---|---|---|---|
| baseline: debounce 0 | $b50 ms | $b99 ms | 1.00 | 1.00 |
| debounce 20 ms (gpiolib-cdev kernel debounce) | $m50 ms | $m99 ms | $(awk -v a="$m50" -v b="$b50" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="$m99" -v b="$b99" 'BEGIN{printf "%.2f", a/b}') |
MD

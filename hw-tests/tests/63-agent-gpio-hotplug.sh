#!/usr/bin/env bash
# The GPIO chip goes away under the running agent and comes back: the agent notices, carries on
# without buttons, reopens the chip (found by its label) with backoff, shows its state on the
# LEDs again at once and takes presses again. No agent restart. gpio-sim only (the chip is taken
# down and brought back through configfs).
set -euo pipefail
. "$ROOMBOX_HW_LIB"
hw_sim || { echo "SKIP: needs gpio-sim"; exit 0; }
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/63-agent-gpio-hotplug
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"
trap 'agent_stop; hw_cleanup' EXIT
G=/sys/kernel/config/gpio-sim/roombox
[ -d "$G" ] || agent_fail "no gpio-sim configfs device at $G"

cfg=$AGENT_DIR/roombox.toml
agent_config "$cfg"
# GPIO only: no camera (lighter under TCG, and independent of the camera tests before it).
sed -i 's/^source = "v4l2"/source = "none"/' "$cfg"
sed -i 's|^chip = .*|chip = "roombox-sim"|' "$cfg" # by label: the chip number may change
agent_start "$cfg"
agent_wait '.media.state == "PLAYING" and .localParticipant.micOn' 90
pid=$AGENT_PID

press btn-mute 300
wait_led led-red 1 10 || agent_fail "mute did not light red"

echo 0 >"$G/live"
deadline_ok=0
for ((i = 0; i < 100; i++)); do
	if grep -q "GPIO lost" "$AGENT_LOG"; then deadline_ok=1; break; fi
	hw_sleep 0.2
done
((deadline_ok)) || agent_fail "the agent did not notice the chip going away"
agent_state >/dev/null || agent_fail "the agent stopped answering without its GPIO chip"
echo "ok - chip gone: the agent noticed and carries on"

echo 1 >"$G/live"
# Point lib.sh at the new device's lines, and release the buttons as the rig's setup does.
read -r chip <"$G/bank0/chip_name"
read -r dev <"$G/dev_name"
simdir=/sys/devices/platform/$dev/$chip
for name in $ROOMBOX_HW_BUTTONS $ROOMBOX_HW_LEDS; do
	v=$(hw_line_var "$name")
	off_var=${v}_OFFSET
	export "${v}_PULL=$simdir/sim_gpio${!off_var}/pull" "${v}_VALUE=$simdir/sim_gpio${!off_var}/value"
done
for name in $ROOMBOX_HW_BUTTONS; do release "$name"; done
wait_led led-red 1 30 || agent_fail "the agent did not reopen the chip and show muted again"
[ "$AGENT_PID" = "$pid" ] && kill -0 "$pid" || agent_fail "the agent restarted"
echo "ok - chip back as $chip: reopened by label, red shows muted again at once"

press btn-mute 300
wait_led led-red 0 10 || agent_fail "buttons do not work after the chip came back"
agent_wait '.localParticipant.micOn' 10
echo "ok - presses work again after the chip came back"

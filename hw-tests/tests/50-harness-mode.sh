#!/usr/bin/env bash
# lib.sh's real-board mode (ROOMBOX_HW_MODE=real), checked against a simulated loopback harness.
# A second gpio-sim chip plays the harness, and a "wire" loop copies levels across: each harness
# output drives the matching agent button (through its sim pull), each agent LED output drives
# the matching harness input. Then 30-gpio.sh runs in real mode: press/release/bounce go through
# gpioset on harness pins, `led` through gpioget on harness pins, as on a Pi or Jetson.
# Skipped (passes) when not under the rig's gpio-sim.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "${ROOMBOX_HW_LIB:-$(dirname "$0")/../lib.sh}"

if ! hw_sim || [ -z "${ROOMBOX_HW_GPIO_SIM_DIR:-}" ]; then
  echo "SKIP: needs the rig's gpio-sim"
  exit 0
fi
fail() { echo "FAIL: $*"; exit 1; }

G=/sys/kernel/config/gpio-sim/harness
HLINES=(h-btn-join h-btn-mute h-btn-camera h-led-red h-led-green h-led-blue)
wire=""
cleanup() {
  [ -z "$wire" ] || kill "$wire" 2>/dev/null || true
  if [ -d "$G" ]; then
    echo 0 >"$G/live" || true
    rmdir "$G"/bank0/line* "$G/bank0" "$G" || true
  fi
}
trap cleanup EXIT

mkdir "$G" "$G/bank0"
echo "${#HLINES[@]}" >"$G/bank0/num_lines"
for i in "${!HLINES[@]}"; do
  mkdir "$G/bank0/line$i"
  echo "${HLINES[$i]}" >"$G/bank0/line$i/name"
done
echo 1 >"$G/live"
read -r hchip <"$G/bank0/chip_name"
read -r hdev <"$G/dev_name"
HS=/sys/devices/platform/$hdev/$hchip
# the agent's pull-ups reach the harness pins through the wires: released buttons idle high
for i in 0 1 2; do echo pull-up >"$HS/sim_gpio$i/pull"; done

read -ra buttons <<<"$ROOMBOX_HW_BUTTONS"
read -ra leds <<<"$ROOMBOX_HW_LEDS"
bpull=() lvalue=()
for b in "${buttons[@]}"; do _hw_lookup "$b" PULL; bpull+=("$REPLY"); done
for l in "${leds[@]}"; do _hw_lookup "$l" VALUE; lvalue+=("$REPLY"); done

wire_loop() {
  local i v last=()
  while :; do
    for i in 0 1 2; do # harness output i -> agent button i
      read -r v <"$HS/sim_gpio$i/value"
      if [ "$v" != "${last[$i]:-}" ]; then
        if [ "$v" = 1 ]; then echo pull-up >"${bpull[$i]}"; else echo pull-down >"${bpull[$i]}"; fi
        last[i]=$v
      fi
    done
    for i in 0 1 2; do # agent LED i -> harness input 3+i
      read -r v <"${lvalue[$i]}"
      if [ "$v" != "${last[$((3 + i))]:-}" ]; then
        if [ "$v" = 1 ]; then echo pull-up >"$HS/sim_gpio$((3 + i))/pull"; else echo pull-down >"$HS/sim_gpio$((3 + i))/pull"; fi
        last[3 + i]=$v
      fi
    done
    hw_sleep 0.005 # real-mode edges are gpioset starts, far slower than this
  done
}
wire_loop &
wire=$!
echo "harness chip $hchip wired to $(hw_agent_chip)"

state=$(mktemp -d)
st=0
env ROOMBOX_HW_MODE=real ROOMBOX_HW_HARNESS_CHIP="$hchip" ROOMBOX_HW_STATE="$state" \
  ROOMBOX_HW_HARNESS_BTN_JOIN=0 ROOMBOX_HW_HARNESS_BTN_MUTE=1 ROOMBOX_HW_HARNESS_BTN_CAMERA=2 \
  ROOMBOX_HW_HARNESS_LED_RED=3 ROOMBOX_HW_HARNESS_LED_GREEN=4 ROOMBOX_HW_HARNESS_LED_BLUE=5 \
  bash "$(dirname "$0")/30-gpio.sh" || st=$?
left=$(find "$state" -name '*.pid' | wc -l)
rm -rf "$state"
[ "$st" = 0 ] || fail "30-gpio.sh failed in real mode (exit $st)"
[ "$left" = 0 ] || fail "real mode left $left gpioset holders behind"
echo "PASS (30-gpio.sh in real mode through the harness)"

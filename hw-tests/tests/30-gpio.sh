#!/usr/bin/env bash
# Buttons and LEDs through the GPIO character device (gpio-sim, or a board on a harness).
# Proves: gpioget reads each button released (1) and pressed (0) as press/release drive it;
# gpiomon sees every edge of a bounce (on gpio-sim: the out-of-tree irq_sim delivers
# interrupts); what gpioset drives on each LED line is what `led` reads, both levels.
# Uses libgpiod v1 tools (Debian 12, Raspberry Pi OS bookworm, Jetson L4T).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "${ROOMBOX_HW_LIB:-$(dirname "$0")/../lib.sh}"

chip=$(hw_agent_chip)
fail() { echo "FAIL: $*"; exit 1; }
offset() { _hw_lookup "$1" OFFSET && echo "$REPLY"; }
trap hw_cleanup EXIT

for b in $ROOMBOX_HW_BUTTONS; do
  if hw_sim; then # gpio-sim lines carry the names; a board's usually do not
    [ "$(gpiofind "$b")" = "$chip $(offset "$b")" ] || fail "gpiofind $b"
  fi
  [ "$(button "$b")" = 1 ] || fail "$b should read 1 (released) at start"
  press "$b"
  [ "$(button "$b")" = 0 ] || fail "$b should read 0 when pressed"
  release "$b"
  [ "$(button "$b")" = 1 ] || fail "$b should read 1 after release"
  press "$b" 50
  [ "$(button "$b")" = 1 ] || fail "$b should read 1 after a 50 ms press"
  echo "$b: released 1, pressed 0"
done

# bounce: 4 transitions then settle pressed = 5 edges: falling rising falling rising falling
off=$(offset btn-mute)
timeout 20 gpiomon --num-events=5 --format='%e' "$chip" "$off" >"${ROOMBOX_HW_RESULTS:-/tmp}/bounce.txt" &
mon=$!
for _ in $(seq 100); do # wait until gpiomon holds the line
  info=$(gpioinfo "$chip")
  grep -q "line *$off:.*\[used" <<<"$info" && break
  hw_sleep 0.05
done
t0=$EPOCHREALTIME
bounce btn-mute 4
t1=$EPOCHREALTIME
wait "$mon" || fail "gpiomon did not see 5 edges (saw: $(tr '\n' ' ' <"${ROOMBOX_HW_RESULTS:-/tmp}/bounce.txt"))"
edges=$(tr '\n' ' ' <"${ROOMBOX_HW_RESULTS:-/tmp}/bounce.txt")
echo "bounce btn-mute 4: edges $edges in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }') ms"
[ "$edges" = "0 1 0 1 0 " ] || fail "edges were '$edges', wanted falling/rising alternating"
[ "$(button btn-mute)" = 0 ] || fail "btn-mute should have settled pressed"
release btn-mute

for l in $ROOMBOX_HW_LEDS; do
  off=$(offset "$l")
  if hw_sim; then
    [ "$(led "$l")" = 0 ] || fail "$l should be off when nobody drives it"
  fi
  gpioset --mode=signal "$chip" "$off=1" &
  setter=$!
  wait_led "$l" 1 10 || fail "$l did not follow gpioset 1"
  kill "$setter"
  wait "$setter" || true
  if hw_sim; then
    wait_led "$l" 0 10 || fail "$l did not fall back to 0 when released"
    # the other level: pull the line up, so that 0 can only come from gpioset
    _hw_lookup "$l" PULL
    echo pull-up >"$REPLY"
    wait_led "$l" 1 2 || fail "$l should read its pull-up"
  fi
  gpioset --mode=signal "$chip" "$off=0" &
  setter=$!
  wait_led "$l" 0 10 || fail "$l did not follow gpioset 0"
  kill "$setter"
  wait "$setter" || true
  if hw_sim; then
    _hw_lookup "$l" PULL
    echo pull-down >"$REPLY"
  fi
  echo "$l: follows gpioset 1 and 0"
done
echo PASS

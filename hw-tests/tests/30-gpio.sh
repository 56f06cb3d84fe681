#!/usr/bin/env bash
# Buttons and LEDs through the GPIO character device (gpio-sim, or a board on a harness).
# Proves: gpioget reads each button released (1) and pressed (0) as press/release drive it;
# gpiomon gets edge events in order (on gpio-sim: the out-of-tree irq_sim delivers interrupts)
# and a bounce ends on a falling edge; what gpioset drives on each LED line is what `led`
# reads, both levels.
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

R=${ROOMBOX_HW_RESULTS:-/tmp}
off=$(offset btn-mute)
monitor() { # start gpiomon on btn-mute (extra args first) and wait until it holds the line
  timeout 30 gpiomon "$@" --format='%e' "$chip" "$off" >"$R/edges.txt" &
  mon=$!
  for _ in $(seq 200); do
    info=$(gpioinfo "$chip")
    grep -q "line *$off:.*\[used" <<<"$info" && return 0
    hw_sleep 0.05
  done
  fail "gpiomon did not take the line"
}

# edges 100 ms apart: every one arrives, in order (falling = 0, rising = 1)
monitor --num-events=4
press btn-mute 100
hw_sleep 0.1
press btn-mute 100
wait "$mon" || fail "gpiomon did not see 4 edges (saw: $(tr '\n' ' ' <"$R/edges.txt"))"
edges=$(tr '\n' ' ' <"$R/edges.txt")
[ "$edges" = "0 1 0 1 " ] || fail "edges were '$edges', wanted 0 1 0 1"
echo "two 100 ms presses: edges $edges"

# bounce: 4 transitions ~1 ms apart, then settle pressed (5 edges). irq_sim coalesces edges that
# come faster than its irq_work runs (as slow interrupt handling would on hardware), so under a
# loaded TCG host some may merge: require that edges arrive and the last one is the settle.
monitor
t0=$EPOCHREALTIME
bounce btn-mute 4
t1=$EPOCHREALTIME
hw_sleep 0.5
kill "$mon" 2>/dev/null || true
wait "$mon" || true
edges=$(tr '\n' ' ' <"$R/edges.txt")
n=$(wc -w <<<"$edges")
echo "bounce btn-mute 4: $n of 5 edges ($edges) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }') ms"
[ "$n" -ge 1 ] || fail "no edge seen for the bounce"
[ "${edges: -2:1}" = 0 ] || fail "the last edge of the bounce should be falling (pressed)"
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

# shellcheck shell=bash
# hw-tests/lib.sh — helpers for guest-side (or real-board) hardware tests. Source it from bash:
#     . "$ROOMBOX_HW_LIB"            # inside run-in-guest.sh; or: . hw-tests/lib.sh
#
# Buttons are active-low: pressed = line low, released = line high.
#   press NAME [MS]       press button NAME (btn-join, btn-mute, btn-camera); with MS, hold it MS
#                         milliseconds and release it
#   release NAME          release button NAME
#   bounce NAME N         a bouncy press: N transitions about 1 ms apart, alternating
#                         press/release and starting with a press, then the line settles
#                         pressed (N+1 edges when N is even, N when odd). Call release after.
#   button NAME           print what the agent reads on button NAME's line: 1 released, 0 pressed
#                         (sim mode only: uses gpioget, which must not race the agent's request)
#   led NAME              print the level an LED line is driven to (1 on, 0 off); for gpio-sim a
#                         line nobody drives reads its pull (LEDs: pulled down, so 0)
#   wait_led NAME VALUE TIMEOUT_S
#                         wait until `led NAME` prints VALUE; returns 1 after TIMEOUT_S (may be
#                         fractional) with a message on stderr
#   camera_unplug         remove the camera: unbind the vivid platform device (sim) or the USB
#                         camera (real, ROOMBOX_HW_CAMERA_USB); waits until the node is gone
#   camera_replug         bind it again; waits until $ROOMBOX_HW_VIDEO is back
#   hw_line_var NAME      print the variable prefix for a line, e.g. ROOMBOX_HW_GPIO_BTN_JOIN
#   hw_sim                true unless ROOMBOX_HW_MODE=real
#   hw_agent_chip         the agent's gpiochip name (from ROOMBOX_HW_GPIOCHIP[_NAME])
#   hw_sleep SECONDS      sleep without starting a process
#   hw_cleanup            real mode: stop every gpioset this shell left holding a harness pin
#                         (tests do `trap hw_cleanup EXIT`); a no-op under gpio-sim
#
# Modes (ROOMBOX_HW_MODE):
#   sim   (set by run-in-guest.sh) drives gpio-sim through sysfs: ROOMBOX_HW_GPIO_<LINE>_PULL is
#         written (pull-up = released, pull-down = pressed) and ROOMBOX_HW_GPIO_<LINE>_VALUE read.
#   real  a board wired to a loopback harness: each button input of the agent is wired to a
#         harness output pin that these helpers drive with gpioset, each LED output of the agent
#         to a harness input pin they read with gpioget (libgpiod v1 or v2 tools). Set the
#         agent's side as run-in-guest.sh would (ROOMBOX_HW_GPIOCHIP, ROOMBOX_HW_GPIO_<LINE>_OFFSET
#         for each line, ROOMBOX_HW_VIDEO, ROOMBOX_HW_MIC, ROOMBOX_HW_MIC_FEED, ...) and:
#           ROOMBOX_HW_HARNESS_CHIP       chip of the harness pins (default $ROOMBOX_HW_GPIOCHIP,
#                                         else gpiochip0)
#           ROOMBOX_HW_HARNESS_<LINE>     harness pin offset wired to LINE, e.g.
#                                         ROOMBOX_HW_HARNESS_BTN_JOIN=20 ROOMBOX_HW_HARNESS_LED_RED=21
#           ROOMBOX_HW_HARNESS_RELEASE    drive (default: hold the pin high when released) or
#                                         float (let the agent's pull-up win)
#           ROOMBOX_HW_HARNESS_BIAS       bias for reading LED pins: as-is (default), pull-down,
#                                         pull-up, disable
#           ROOMBOX_HW_CAMERA_USB         USB device id of the camera (e.g. 1-1.3) for
#                                         camera_unplug/replug; ROOMBOX_HW_VIDEO its node
#           ROOMBOX_HW_STATE              dir for the gpioset holder pids (default /tmp/roombox-hw-state)
#         Real-mode bounces are as fast as starting gpioset allows (several ms), not 1 ms.

: "${ROOMBOX_HW_MODE:=sim}"
: "${ROOMBOX_HW_VIDEO:=/dev/video0}"
: "${ROOMBOX_HW_BUTTONS:=btn-join btn-mute btn-camera}"
: "${ROOMBOX_HW_LEDS:=led-red led-green led-blue}"

hw_sim() { [ "$ROOMBOX_HW_MODE" != real ]; } # true under gpio-sim/vivid/snd-aloop

hw_agent_chip() { # the chip name of the agent's own lines, e.g. gpiochip0
	local c=${ROOMBOX_HW_GPIOCHIP_NAME:-${ROOMBOX_HW_GPIOCHIP:-gpiochip0}}
	printf '%s\n' "${c#/dev/}"
}

_hw_err() { printf 'lib.sh: %s\n' "$*" >&2; }

# hw_sleep SECONDS: sleep without starting a process (an exec costs ~0.1 s under TCG, a fork
# ~10 ms): read with a timeout from a pipe that this shell holds both ends of.
if [ -z "${_HW_SLEEP_FD:-}" ] || [ ! -e "/proc/$$/fd/$_HW_SLEEP_FD" ]; then
	exec {_HW_SLEEP_FD}<> <(:)
fi
hw_sleep() { read -rt "$1" -u "$_HW_SLEEP_FD" || true; }

hw_line_var() {
	local v=${1^^}
	printf 'ROOMBOX_HW_GPIO_%s\n' "${v//-/_}"
}

# _hw_lookup NAME SUFFIX: set REPLY to $ROOMBOX_HW_GPIO_<NAME>_<SUFFIX> (no subshell: the bounce
# loop must stay near 1 ms per edge)
_hw_lookup() {
	local v=${1^^}
	v=ROOMBOX_HW_GPIO_${v//-/_}_$2
	REPLY=${!v:-}
	if [ -z "$REPLY" ]; then
		_hw_err "unknown line '$1' (no \$$v): lines are ${ROOMBOX_HW_BUTTONS:-?} ${ROOMBOX_HW_LEDS:-?}"
		return 1
	fi
}

# _hw_secs MS: set REPLY to MS milliseconds as seconds (for read -t)
_hw_secs() { REPLY=$(($1 / 1000)).$(printf '%03d' $(($1 % 1000))); }

# _hw_deadline SECONDS: set REPLY to now + SECONDS (may be fractional) in microseconds
_hw_deadline() {
	local int=${1%%.*} frac=""
	[[ $1 == *.* ]] && frac=${1#*.}
	frac=${frac}000000
	frac=${frac:0:6}
	REPLY=$((${EPOCHREALTIME/./} + ${int:-0} * 1000000 + 10#$frac))
}

# ------------------------------------------------------------------ real-mode plumbing
_hw_gpiod_v2() {
	if [ -z "${_HW_GPIOD_V2:-}" ]; then
		local v
		v=$(gpioset --version 2>/dev/null || true)
		if [[ $v == *" v2."* ]]; then _HW_GPIOD_V2=1; else _HW_GPIOD_V2=0; fi
	fi
	[ "$_HW_GPIOD_V2" = 1 ]
}
_hw_chip() {
	local c=${ROOMBOX_HW_HARNESS_CHIP:-${ROOMBOX_HW_GPIOCHIP:-gpiochip0}}
	printf '%s\n' "${c#/dev/}"
}
_hw_pin() {
	local v=${1^^} n
	n=ROOMBOX_HW_HARNESS_${v//-/_}
	if [ -z "${!n:-}" ]; then
		_hw_err "real mode: set $n to the harness pin wired to $1"
		return 1
	fi
	printf '%s\n' "${!n}"
}
_hw_state() {
	local d=${ROOMBOX_HW_STATE:-/tmp/roombox-hw-state}
	mkdir -p "$d"
	printf '%s\n' "$d"
}
_hw_unhold() { # NAME: stop the gpioset holding the harness pin, if any
	local f pid
	f=$(_hw_state)/$1.pid
	[ -f "$f" ] || return 0
	read -r pid <"$f" || true
	rm -f "$f"
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 200; i++)); do # not our child: wait until it is gone
		kill -0 "$pid" 2>/dev/null || return 0
		hw_sleep 0.01
	done
}

# _hw_wait_output CHIP PIN: wait until gpioinfo shows PIN requested as an output (gpioset has
# started and the level is on the pin: starting gpioset takes ~5 ms on a Pi, ~0.2 s under TCG)
_hw_wait_output() {
	local i info l
	for ((i = 0; i < 300; i++)); do
		info=$(gpioinfo "$1" 2>/dev/null) || info=""
		while IFS= read -r l; do
			if [[ $l =~ line\ +$2: ]]; then
				[[ $l == *output* && ($l == *"[used"* || $l == *consumer=*) ]] && return 0
				break
			fi
		done <<<"$info"
		hw_sleep 0.01
	done
	_hw_err "gpioset did not take $1 line $2"
	return 1
}
hw_cleanup() {
	local f
	[ -d "${ROOMBOX_HW_STATE:-/tmp/roombox-hw-state}" ] || return 0
	for f in "${ROOMBOX_HW_STATE:-/tmp/roombox-hw-state}"/*.pid; do
		[ -e "$f" ] || continue
		f=${f##*/}
		_hw_unhold "${f%.pid}"
	done
}
_hw_hold() { # NAME VALUE: drive the harness pin and keep it driven
	local pin chip
	pin=$(_hw_pin "$1") || return 1
	chip=$(_hw_chip)
	_hw_unhold "$1"
	if _hw_gpiod_v2; then
		gpioset -c "$chip" "$pin=$2" &
	else
		gpioset --mode=signal "$chip" "$pin=$2" &
	fi
	echo $! >"$(_hw_state)/$1.pid"
	_hw_wait_output "$chip" "$pin"
}
_hw_drive() { # NAME LEVEL(0|1)
	if [ "$ROOMBOX_HW_MODE" = real ]; then
		if [ "$2" = 1 ] && [ "${ROOMBOX_HW_HARNESS_RELEASE:-drive}" = float ]; then
			_hw_unhold "$1"
		else
			_hw_hold "$1" "$2"
		fi
	else
		_hw_lookup "$1" PULL || return 1
		if [ "$2" = 1 ]; then echo pull-up >"$REPLY"; else echo pull-down >"$REPLY"; fi
	fi
}

# ------------------------------------------------------------------ buttons
press() { # NAME [MS]
	_hw_drive "$1" 0 || return 1
	if [ -n "${2:-}" ]; then
		_hw_secs "$2"
		hw_sleep "$REPLY"
		release "$1"
	fi
}

release() { # NAME
	_hw_drive "$1" 1
}

bounce() { # NAME N
	local i n=${2:?bounce NAME N} pull
	if [ "$ROOMBOX_HW_MODE" = real ]; then
		for ((i = 1; i <= n; i++)); do
			_hw_drive "$1" $(((i + 1) % 2)) || return 1 # odd i: press (0), even: release (1)
		done
		_hw_drive "$1" 0
		return
	fi
	_hw_lookup "$1" PULL || return 1
	pull=$REPLY
	for ((i = 1; i <= n; i++)); do
		if ((i % 2)); then echo pull-down >"$pull"; else echo pull-up >"$pull"; fi
		hw_sleep 0.001
	done
	echo pull-down >"$pull"
}

button() { # NAME: what the agent's side reads on the line (gpioget on $ROOMBOX_HW_GPIOCHIP)
	_hw_lookup "$1" OFFSET || return 1
	if _hw_gpiod_v2; then
		gpioget -c "$(hw_agent_chip)" --numeric "$REPLY"
	else
		gpioget "$(hw_agent_chip)" "$REPLY"
	fi
}

# ------------------------------------------------------------------ LEDs
led() { # NAME
	if [ "$ROOMBOX_HW_MODE" = real ]; then
		local pin chip bias=${ROOMBOX_HW_HARNESS_BIAS:-as-is}
		pin=$(_hw_pin "$1") || return 1
		chip=$(_hw_chip)
		if _hw_gpiod_v2; then
			gpioget -c "$chip" --numeric -b "$bias" "$pin"
		else
			gpioget -B "$bias" "$chip" "$pin"
		fi
	else
		local v
		_hw_lookup "$1" VALUE || return 1
		read -r v <"$REPLY" || return 1
		printf '%s\n' "$v"
	fi
}

wait_led() { # NAME VALUE TIMEOUT_S
	local name=$1 want=$2 t=${3:?wait_led NAME VALUE TIMEOUT_S} v="" deadline
	_hw_deadline "$t"
	deadline=$REPLY
	while :; do
		v=$(led "$name") || return 1
		[ "$v" = "$want" ] && return 0
		((${EPOCHREALTIME/./} >= deadline)) && break
		hw_sleep 0.01
	done
	_hw_err "wait_led $name: still $v after ${t}s (wanted $want)"
	return 1
}

# ------------------------------------------------------------------ camera hot-plug
_hw_wait_path() { # PATH present|absent TIMEOUT_S
	local deadline
	_hw_deadline "$3"
	deadline=$REPLY
	while :; do
		if [ "$2" = present ]; then [ -e "$1" ] && return 0; else [ -e "$1" ] || return 0; fi
		((${EPOCHREALTIME/./} >= deadline)) && return 1
		hw_sleep 0.02
	done
}

_hw_camera_sysfs() { # prints "driver-dir device-id"
	if [ "$ROOMBOX_HW_MODE" = real ]; then
		[ -n "${ROOMBOX_HW_CAMERA_USB:-}" ] || {
			_hw_err "real mode: set ROOMBOX_HW_CAMERA_USB (e.g. 1-1.3, see /sys/bus/usb/devices)"
			return 1
		}
		printf '%s %s\n' /sys/bus/usb/drivers/usb "$ROOMBOX_HW_CAMERA_USB"
	else
		printf '%s %s\n' /sys/bus/platform/drivers/vivid "${ROOMBOX_HW_VIVID_DEVICE:-vivid.0}"
	fi
}

camera_unplug() {
	local drv dev
	read -r drv dev < <(_hw_camera_sysfs) || return 1
	echo "$dev" >"$drv/unbind" || { _hw_err "camera_unplug: unbind $dev failed"; return 1; }
	_hw_wait_path "$ROOMBOX_HW_VIDEO" absent 10 ||
		{ _hw_err "camera_unplug: $ROOMBOX_HW_VIDEO still there"; return 1; }
}

camera_replug() {
	local drv dev
	read -r drv dev < <(_hw_camera_sysfs) || return 1
	echo "$dev" >"$drv/bind" || { _hw_err "camera_replug: bind $dev failed"; return 1; }
	_hw_wait_path "$ROOMBOX_HW_VIDEO" present 10 ||
		{ _hw_err "camera_replug: $ROOMBOX_HW_VIDEO did not come back"; return 1; }
}

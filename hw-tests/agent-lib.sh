# shellcheck shell=bash
# hw-tests/agent-lib.sh — run the roombox agent in the rig (or on a real board). Source it after
# lib.sh:    . "$ROOMBOX_HW_LIB"; . "$ROOMBOX_HW_DIR/agent-lib.sh"
#
#   agent_config FILE          write a config for this rig: the V4L2 camera at 320x180, the ALSA
#                              mic ($ROOMBOX_HW_MIC, S16LE 48 kHz stereo), gpiocdev buttons and
#                              LEDs on $ROOMBOX_HW_GPIOCHIP by offset, recordings (mkv) under
#                              $AGENT_DIR/recordings. The join button's short press is
#                              start-recording and its long press (1 s) stop-recording: no room
#                              server runs here. The camera button's short press is
#                              `identify` (1 s), one event per press, so presses can be counted.
#                              Idle LEDs are off, so every lit LED means something.
#   agent_start FILE           start `roombox run --config FILE` (AGENT_PID, AGENT_LOG) and
#                              `roombox events` into $AGENT_EVENTS; wait for the control socket
#   agent_state                print the agent's state as JSON
#   agent_wait JQ TIMEOUT_S    wait until `jq -e JQ` holds on the state
#   agent_events_count TEXT    print how many event lines contain TEXT
#   agent_wait_events TEXT N TIMEOUT_S
#                              wait until at least N event lines contain TEXT
#   agent_stop                 SIGTERM the agent (recordings are finalised) and wait for it
#   agent_fail MESSAGE         print MESSAGE, the agent log's tail, and exit 1
#
# ROOMBOX_BIN (default $CARGO_TARGET_DIR/debug/roombox) is the binary; AGENT_DIR (default
# $ROOMBOX_HW_RESULTS/agent) holds its config, log, events and recordings.

: "${ROOMBOX_BIN:=${CARGO_TARGET_DIR:-target}/debug/roombox}"
: "${AGENT_DIR:=${ROOMBOX_HW_RESULTS:-/tmp}/agent}"
AGENT_LOG=$AGENT_DIR/agent.log
AGENT_EVENTS=$AGENT_DIR/events.jsonl
# A Unix socket path must stay short; the guest's /tmp is a RAM overlay.
AGENT_SOCK=/tmp/roombox-rig-$$.sock
AGENT_PID=""
_AGENT_EVENTS_PID=""

agent_config() {
	local f=$1
	mkdir -p "$AGENT_DIR/recordings" "$AGENT_DIR/state"
	cat >"$f" <<EOF
[device]
id = "rig"
name = "rig box"
state_dir = "$AGENT_DIR/state"

[control]
socket = "$AGENT_SOCK"

[media.video]
source = "v4l2"
device = "${ROOMBOX_HW_VIDEO:-/dev/video0}"
width = ${ROOMBOX_HW_CAMERA_WIDTH:-320}
height = ${ROOMBOX_HW_CAMERA_HEIGHT:-180}
fps = 10
bitrate_kbps = 300
min_bitrate_kbps = 100
max_bitrate_kbps = 1000
encoder = "x264enc"
keyframe_interval = "1s"

[media.audio]
source = "alsa"
device = "${ROOMBOX_HW_MIC:-hw:Loopback,1,0}"
rate = 48000
channels = 2

[media.restart]
initial = "500ms"
max = "2s"

[recording]
dir = "$AGENT_DIR/recordings"
format = "mkv"
segment = "5m"
min_free_mb = 64
stop_free_mb = 16

[controls]
backend = "gpiocdev"
chip = "${ROOMBOX_HW_GPIOCHIP:-/dev/gpiochip0}"
debounce = "20ms"
long_press = "1s"

[controls.retry]
initial = "200ms"
max = "2s"

[controls.buttons.join]
line = "$ROOMBOX_HW_GPIO_BTN_JOIN_OFFSET"
short = { command = "start-recording", target = "local" }
long = { command = "stop-recording", target = "local" }

[controls.buttons.mute]
line = "$ROOMBOX_HW_GPIO_BTN_MUTE_OFFSET"

[controls.buttons.camera]
line = "$ROOMBOX_HW_GPIO_BTN_CAMERA_OFFSET"
short = { command = "identify", seconds = 1 }

[controls.leds.red]
line = "$ROOMBOX_HW_GPIO_LED_RED_OFFSET"
[controls.leds.green]
line = "$ROOMBOX_HW_GPIO_LED_GREEN_OFFSET"
[controls.leds.blue]
line = "$ROOMBOX_HW_GPIO_LED_BLUE_OFFSET"

[controls.leds.looks]
idle = { color = "off", pattern = "off" }
EOF
}

agent_fail() {
	printf 'FAIL: %s\n' "$*" >&2
	if [ -f "$AGENT_LOG" ]; then
		printf -- '--- agent log (tail) ---\n' >&2
		tail -n 40 "$AGENT_LOG" >&2 || true
	fi
	exit 1
}

agent_start() {
	[ -x "$ROOMBOX_BIN" ] || agent_fail "no roombox binary at $ROOMBOX_BIN (cargo build first)"
	rm -f "$AGENT_SOCK"
	: >"$AGENT_EVENTS"
	RUST_LOG=${RUST_LOG:-info} "$ROOMBOX_BIN" run --config "$1" --live false >"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
	local deadline
	_hw_deadline 60
	deadline=$REPLY
	until [ -S "$AGENT_SOCK" ]; do
		kill -0 "$AGENT_PID" 2>/dev/null || agent_fail "the agent exited at start"
		((${EPOCHREALTIME/./} < deadline)) || agent_fail "no control socket after 60 s"
		hw_sleep 0.1
	done
	"$ROOMBOX_BIN" events --socket "$AGENT_SOCK" >"$AGENT_EVENTS" 2>/dev/null &
	_AGENT_EVENTS_PID=$!
}

agent_state() {
	"$ROOMBOX_BIN" status --socket "$AGENT_SOCK" --output json
}

agent_wait() { # JQ TIMEOUT_S
	local deadline
	_hw_deadline "$2"
	deadline=$REPLY
	while :; do
		kill -0 "$AGENT_PID" 2>/dev/null || agent_fail "the agent died waiting for $1"
		agent_state 2>/dev/null | jq -e "$1" >/dev/null 2>&1 && return 0
		((${EPOCHREALTIME/./} < deadline)) || break
		hw_sleep 0.2
	done
	agent_state >"$AGENT_DIR/state-at-failure.json" 2>&1 || true
	agent_fail "state never matched \`$1\` within $2 s (see state-at-failure.json)"
}

agent_events_count() {
	local n=0 l
	while IFS= read -r l; do
		[[ $l == *"$1"* ]] && n=$((n + 1))
	done <"$AGENT_EVENTS"
	printf '%s\n' "$n"
}

agent_wait_events() { # TEXT N TIMEOUT_S
	local deadline n
	_hw_deadline "$3"
	deadline=$REPLY
	while :; do
		n=$(agent_events_count "$1")
		((n >= $2)) && return 0
		((${EPOCHREALTIME/./} < deadline)) || break
		hw_sleep 0.2
	done
	agent_fail "saw $n events with $1 within $3 s; wanted $2"
}

agent_stop() {
	[ -n "$AGENT_PID" ] || return 0
	kill -TERM "$AGENT_PID" 2>/dev/null || true
	wait "$AGENT_PID" 2>/dev/null || true
	AGENT_PID=""
	if [ -n "$_AGENT_EVENTS_PID" ]; then
		kill "$_AGENT_EVENTS_PID" 2>/dev/null || true
		wait "$_AGENT_EVENTS_PID" 2>/dev/null || true
		_AGENT_EVENTS_PID=""
	fi
	rm -f "$AGENT_SOCK"
}

#!/usr/bin/env bash
# Fleet demo: a local mosquitto on loopback, one `roombox run` box connected to it, and fleet
# commands sent to it with `roombox fleet`. Everything runs in a temporary directory and is
# stopped (by pid) on exit.
#
#   scripts/mosquitto-demo.sh                    # ping, identify, list, a group command
#   scripts/mosquitto-demo.sh send demo-box get-state   # any `roombox fleet` arguments instead
#
# ROOMBOX=<path> picks the binary (default: the debug build in $CARGO_TARGET_DIR, by default the
# ~/.cache/roombox-target that scripts/demo.sh and scripts/test.sh share).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
ROOMBOX="${ROOMBOX:-$CARGO_TARGET_DIR/debug/roombox}"
[[ -x "$ROOMBOX" ]] || cargo build --quiet --bin roombox
command -v mosquitto >/dev/null || { echo "mosquitto is missing: run scripts/setup.sh" >&2; exit 1; }

dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence true
persistence_location $dir/
user root
log_dest file $dir/mosquitto.log
CONF
mosquitto -c "$dir/mosquitto.conf" 2>>"$dir/mosquitto.err" & pids+=($!)

cat > "$dir/roombox.toml" <<CONF
[device]
id = "demo-box"
name = "Demo room"
state_dir = "$dir/state"

[media.video]
source = "${DEMO_VIDEO_SOURCE:-none}"

[media.audio]
source = "${DEMO_AUDIO_SOURCE:-none}"

[fleet]
broker = "mqtt://127.0.0.1:$port"
groups = ["demo"]
CONF
"$ROOMBOX" run --live false --config "$dir/roombox.toml" >"$dir/roombox.log" 2>&1 & pids+=($!)

fleet() { "$ROOMBOX" fleet --broker "mqtt://127.0.0.1:$port" "$@"; }
# Wait until the box answers.
for _ in $(seq 1 100); do
  fleet send demo-box ping --timeout 300ms >/dev/null 2>&1 && break
  sleep 0.1
done

if (($#)); then
  fleet "$@"
else
  echo "\$ roombox fleet send demo-box ping"
  fleet send demo-box ping
  echo "\$ roombox fleet send demo-box identify '{\"seconds\":3}'"
  fleet send demo-box identify '{"seconds":3}'
  echo "\$ roombox fleet send demo-box set-bitrate '{\"kbps\":5}'     # refused: out of range"
  fleet send demo-box set-bitrate '{"kbps":5}' || true
  echo "\$ roombox fleet send group/demo get-state --timeout 1s | cut -c1-160"
  fleet send group/demo get-state --timeout 1s | cut -c1-160
  echo "\$ roombox fleet list"
  fleet list
fi

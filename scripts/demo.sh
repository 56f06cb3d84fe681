#!/usr/bin/env bash
# README command 1: set up this machine, build roombox and run it on its embedded default —
# synthetic camera and mic, recording to ./demo-out — beside a local mosquitto and a local Janus,
# showing live what it does: the box joins a demo room, and one fleet command works. A person on
# this machine can join the room from a browser to see and hear the box. Ctrl-C stops everything
# (the recording is finalised).
#
#   scripts/demo.sh                 # until Ctrl-C
#   DEMO_SECONDS=30 scripts/demo.sh # stop by itself
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The same target directory as scripts/test.sh, so the demo and the tests compile once between them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
cargo build --bin roombox
ROOMBOX="$CARGO_TARGET_DIR/debug/roombox"

out="$PWD/demo-out"
mkdir -p "$out"
touch "$out/.run-start"
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# A broker of the demo's own, on loopback, on a free port.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$out/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence true
persistence_location $out/
user root
log_dest file $out/mosquitto.log
CONF
# Its own startup lines (run as root here, it warns about that) go to its log, not the demo's
# screen, as Janus's and nginx's do.
mosquitto -c "$out/mosquitto.conf" 2>>"$out/mosquitto.stderr.log" & pids+=($!)

# A Janus VideoRoom of the demo's own (signalling on loopback) and its demo web page.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ws_port="$(free_port)"
http_port="$(free_port)"
WS_PORT=$ws_port HTTP_PORT=$http_port ROOM=1234 bash scripts/janus-demo.sh "$out/janus" \
  >"$out/janus-demo.log" 2>&1 & pids+=($!)

# An RTMP ingest of the demo's own (nginx-rtmp on loopback) for the simulcast and the fallback.
rtmp_port="$(free_port)"
box_http_port="$(free_port)"
mkdir -p "$out/nginx/logs"
cat > "$out/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
error_log $out/nginx/logs/error.log;
pid $out/nginx/nginx.pid;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$rtmp_port; application live { live on; drop_idle_publisher 5s; } } }
CONF
nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" & pids+=($!)

# The embedded default (synthetic sources, every other value at its default), plus the few lines
# a demo needs: where to keep files, record from the start, and the local broker.
cat > "$out/roombox.toml" <<CONF
[device]
id = "demo-box"
name = "Demo room"
state_dir = "$out"

[recording]
autostart = true
min_free_mb = 0
stop_free_mb = 0

[fleet]
broker = "mqtt://127.0.0.1:$port"
groups = ["demo"]

[controls]
backend = "simulated"
panel_input = "-"

[controls.buttons.join]
line = "btn-join"

[controls.buttons.mute]
line = "btn-mute"

[controls.buttons.camera]
line = "btn-camera"

[room]
backend = "janus"
url = "ws://127.0.0.1:$ws_port"
room_id = "1234"
auto_join = true

[http]
port = $box_http_port

[hls]
autostart = true

[[livestream.outputs]]
name = "simulcast"
url = "rtmp://127.0.0.1:$rtmp_port/live"
stream_key = "demo-simulcast"

[[livestream.outputs]]
name = "fallback"
url = "rtmp://127.0.0.1:$rtmp_port/live"
stream_key = "demo-fallback"

[livestream.fallback]
output = "fallback"
after = "5s"
CONF

# Let the broker and Janus come up first, so the box's first join does not race them (it would
# recover by itself, with an error on the screen first).
for p in "$ws_port" "$port"; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
    sleep 0.1
  done
done

echo "== roombox check"
"$ROOMBOX" check --config "$out/roombox.toml" || true
echo
echo "== roombox run (live view; recordings go to $out/recordings)"
"$ROOMBOX" run --live true --config "$out/roombox.toml" 2>"$out/roombox.log" & pids+=($!)
agent=$!

fleet() { "$ROOMBOX" fleet --broker "mqtt://127.0.0.1:$port" "$@"; }
(
  for _ in $(seq 1 100); do
    fleet send demo-box ping --timeout 300ms >/dev/null 2>&1 && break
    sleep 0.2
  done
  sleep 3
  echo "== fleet: identify demo-box for 5 s, then the fleet list"
  fleet send demo-box identify '{"seconds":5}' || true
  fleet list || true
  echo "== fleet: start the RTMP simulcast (the configured output; its key never prints)"
  fleet send demo-box start-livestream || true
  echo "== watch the simulcast:  ffplay rtmp://127.0.0.1:$rtmp_port/live/demo-simulcast"
  echo "== watch the box's HLS:  ffplay http://127.0.0.1:$box_http_port/hls/index.m3u8"
  echo "== the room console (a browser on this machine):  http://127.0.0.1:$box_http_port/"
  echo "==   and the viewers' page with its chat:          http://127.0.0.1:$box_http_port/watch"
  echo "== stop Janus (kill its pid) and after 5 s the box streams to"
  echo "==      rtmp://127.0.0.1:$rtmp_port/live/demo-fallback on its own, until the room is back"
  echo "== join the room from a browser on this machine to see and hear the box:"
  echo "==      http://localhost:$http_port/videoroomtest.html?room=1234"
  echo "== buttons: type m then Enter to press mute (j join/leave, c camera; capitals hold)"
  echo "== try: $ROOMBOX fleet --broker mqtt://127.0.0.1:$port send demo-box disable-mic"
  echo "==      $ROOMBOX status --config $out/roombox.toml"
) &
pids+=($!)

if [[ -n "${DEMO_SECONDS:-}" ]]; then
  sleep "$DEMO_SECONDS"
  kill -INT "$agent" 2>/dev/null || true
fi
wait "$agent" || true
# Only this run's: demo-out keeps the recordings of earlier runs.
echo "== segments this run wrote (in $out/recordings):"
find "$out/recordings" -maxdepth 1 -type f -newer "$out/.run-start" -printf '%10s bytes  %f\n' 2>/dev/null | sort -k3 || true

#!/usr/bin/env bash
# Starts a local Janus (VideoRoom + WebSockets only) and the Janus VideoRoom demo page, for the
# roombox demo: the box joins room $ROOM, and a person on this machine joins it from a browser.
#
#   scripts/janus-demo.sh [DIR]        (Ctrl-C stops both)
#
# Environment: WS_PORT (8188), HTTP_PORT (8000), ROOM (1234), RTP_PORTS (20000-20999).
# Janus listens for signalling on 127.0.0.1 only; media uses this machine's other interfaces
# (Janus never gathers ICE candidates on loopback), so the browser must run on this machine.
set -euo pipefail

DIR=${1:-${TMPDIR:-/tmp}/roombox-janus-demo}
WS_PORT=${WS_PORT:-8188}
HTTP_PORT=${HTTP_PORT:-8000}
ROOM=${ROOM:-1234}
RTP_PORTS=${RTP_PORTS:-20000-20999}

command -v janus >/dev/null || { echo "janus is not installed; run scripts/setup.sh" >&2; exit 1; }
LIB=$(dirname "$(ls -d /usr/lib/*/janus/plugins/libjanus_videoroom.so /usr/lib/janus/plugins/libjanus_videoroom.so 2>/dev/null | head -1)")/..
[ -e "$LIB/plugins/libjanus_videoroom.so" ] || { echo "Janus's VideoRoom plugin was not found" >&2; exit 1; }
DEMOS=/usr/share/janus/demos
[ -d "$DEMOS" ] || { echo "janus-demos is not installed; run scripts/setup.sh" >&2; exit 1; }

mkdir -p "$DIR/plugins" "$DIR/transports" "$DIR/none" "$DIR/rec"
ln -sf "$LIB/plugins/libjanus_videoroom.so" "$DIR/plugins/"
ln -sf "$LIB/transports/libjanus_websockets.so" "$DIR/transports/"

cat > "$DIR/janus.jcfg" <<CFG
general: {
	configs_folder = "$DIR"
	plugins_folder = "$DIR/plugins"
	transports_folder = "$DIR/transports"
	events_folder = "$DIR/none"
	loggers_folder = "$DIR/none"
	debug_level = 4
	session_timeout = 60
}
media: {
	rtp_port_range = "$RTP_PORTS"
}
nat: {
	ice_ignore_list = "vmnet,docker,br-,veth"
}
CFG
cat > "$DIR/janus.transport.websockets.jcfg" <<CFG
general: {
	json = "plain"
	ws = true
	ws_port = $WS_PORT
	ws_ip = "127.0.0.1"
	wss = false
}
admin: {
	admin_ws = false
}
CFG
cat > "$DIR/janus.plugin.videoroom.jcfg" <<CFG
general: {
}
room-$ROOM: {
	description = "roombox demo"
	publishers = 6
	bitrate = 0
	fir_freq = 10
	audiocodec = "opus"
	videocodec = "h264"
	h264_profile = "42e01f"
	audiolevel_event = true
	audio_active_packets = 50
	audio_level_average = 40
	notify_joining = true
	rec_dir = "$DIR/rec"
}
CFG

# The demo pages, pointed at this Janus over WebSockets.
rm -rf "$DIR/www" && cp -r "$DEMOS" "$DIR/www"
cat > "$DIR/www/settings.js" <<JS
var server = "ws://" + window.location.hostname + ":$WS_PORT";
var iceServers = null;
JS

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

janus -C "$DIR/janus.jcfg" -F "$DIR" -L "$DIR/janus.log" -N >/dev/null 2>&1 &
pids+=($!)
python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$DIR/www" >"$DIR/http.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$WS_PORT") 2>/dev/null && break
  sleep 0.1
done

cat <<MSG
Janus is up: ws://127.0.0.1:$WS_PORT (log: $DIR/janus.log, cloud recordings: $DIR/rec)

Join the box with this in its configuration (or a config.d/ drop-in):

  [room]
  backend = "janus"
  url = "ws://127.0.0.1:$WS_PORT"
  room_id = "$ROOM"
  auto_join = true

Then join from a browser on this machine:

  http://localhost:$HTTP_PORT/videoroomtest.html?room=$ROOM

Ctrl-C stops Janus and the web server.
MSG
wait

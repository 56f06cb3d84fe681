#!/usr/bin/env bash
# The roombox agent in the rig, buttons and LEDs on gpio-sim through gpiocdev, the vivid camera
# and the snd-aloop mic (a 1 kHz tone played into it):
#   - the agent negotiates caps with the real V4L2 driver and reaches PLAYING, frames flowing;
#   - a join press starts the local recording (no room server here: the rig config maps join's
#     short press to start-recording) and the in-call LED (blue) lights;
#   - a mute press lights the red LED alone (muted beats everything);
#   - a long join press stops the recording;
#   - the recording holds the tone from real ALSA capture before the mute, and silence after.
# Needs a built agent: cargo build (ROOMBOX_BIN or $CARGO_TARGET_DIR/debug/roombox).
set -euo pipefail
. "$ROOMBOX_HW_LIB"
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/60-agent-buttons
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"

feeder=""
cleanup() {
	agent_stop
	[ -n "$feeder" ] && kill "$feeder" 2>/dev/null || true
	hw_cleanup
}
trap cleanup EXIT

cfg=$AGENT_DIR/roombox.toml
agent_config "$cfg"

# The tone the "room" makes, at the format the rig's sound tests use.
gst-launch-1.0 -q audiotestsrc is-live=true freq=1000 volume=0.5 \
	! audio/x-raw,format=S16LE,rate=48000,channels=2 \
	! alsasink device="${ROOMBOX_HW_MIC_FEED:-hw:Loopback,0,0}" >"$AGENT_DIR/feeder.log" 2>&1 &
feeder=$!

agent_start "$cfg"
agent_wait '.media.state == "PLAYING" and .localParticipant.micOn' 90
agent_wait '.media.fps > 0' 30
echo "ok - V4L2 caps negotiated with vivid at 320x180@10 and ALSA capture from ${ROOMBOX_HW_MIC:-hw:Loopback,1,0}: PLAYING, frames encoded"
wait_led led-red 0 5 || agent_fail "red lit while the mic is live"

press btn-join 300
agent_wait '.recording.state == "STARTED"' 90
wait_led led-blue 1 10 || agent_fail "the in-call LED did not light while recording"
echo "ok - a join press started the local recording and lit the blue LED"
hw_sleep 4 # tone into the recording

press btn-mute 300
wait_led led-red 1 10 || agent_fail "mute did not light the red LED"
agent_wait '.localParticipant.micOn == false' 10
[ "$(led led-blue)" = 0 ] || agent_fail "blue still lit while muted: red must show alone"
[ "$(led led-green)" = 0 ] || agent_fail "green lit while muted"
echo "ok - a mute press muted the mic and lit the red LED alone"
hw_sleep 4 # silence into the recording

press btn-join 1800 # held past long_press (1 s)
agent_wait '.recording.state == "STOPPED" and .recording.segmentsClosed >= 1' 60
echo "ok - a long join press stopped the recording"

press btn-mute 300
wait_led led-red 0 10 || agent_fail "unmute did not turn the red LED off"
agent_wait '.localParticipant.micOn' 10
echo "ok - a second mute press unmuted; red off"

seg=$(agent_state | jq -r '.recording.lastSegment // empty')
[ -n "$seg" ] && [ -s "$seg" ] || agent_fail "no closed segment ($seg)"
# Levels of the recorded audio, one per 200 ms, first channel, dBFS.
gst-launch-1.0 -m filesrc location="$seg" ! matroskademux name=d d.audio_0 ! opusdec \
	! audioconvert ! level interval=200000000 ! fakesink sync=false 2>/dev/null |
	sed -nE 's/.*rms=\([A-Za-z]+\)[<{] *([^,>} ]+).*/\1/p' >"$AGENT_DIR/levels.txt"
n=$(wc -l <"$AGENT_DIR/levels.txt")
((n >= 20)) || agent_fail "only $n level readings from $seg"
read -r loud quiet < <(awk '
	{ v = ($1 ~ /inf/) ? -1000 : $1 + 0; a[NR] = v; if (NR == 1 || v > max) max = v }
	END { q = -1000; for (i = NR - 4; i <= NR; i++) if (a[i] > q) q = a[i]; print max, q }' \
	"$AGENT_DIR/levels.txt")
echo "recording: loudest ${loud} dBFS; last second at most ${quiet} dBFS"
awk -v l="$loud" 'BEGIN { exit !(l > -20) }' || agent_fail "no tone in the recording (max ${loud} dBFS)"
awk -v q="$quiet" 'BEGIN { exit !(q < -60) }' || agent_fail "not silent after mute (${quiet} dBFS)"
echo "ok - the recording holds the captured tone before the mute and silence after it"
kill -0 "$AGENT_PID" || agent_fail "the agent died"

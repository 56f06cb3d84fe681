#!/usr/bin/env bash
# The share's HDMI grabber (a second vivid device) with `[media.share] auto = true`: the share
# starts by itself once the grabber delivers frames, stops (stream-disabled, kind share) when the
# grabber is unplugged while the camera goes on, and starts again when it is plugged back.
set -euo pipefail
. "$ROOMBOX_HW_LIB"
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/64-agent-share-auto
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"
trap 'agent_stop; hw_cleanup' EXIT

grabber=${ROOMBOX_HW_GRABBER:-}
[ -n "$grabber" ] && [ -e "$grabber" ] || agent_fail "no grabber device (ROOMBOX_HW_GRABBER): vivid needs n_devs=2"
gdev=${ROOMBOX_HW_GRABBER_DEVICE:-vivid.1}
cfg=$AGENT_DIR/roombox.toml
agent_config "$cfg"
cat >>"$cfg" <<CFG

[media.share]
source = "v4l2"
device = "$grabber"
width = 320
height = 180
fps = 5
bitrate_kbps = 300
auto = true
CFG
agent_start "$cfg"
agent_wait '.media.state == "PLAYING"' 90
agent_wait '.media.share == "on"' 60
agent_wait_events '"kind":"share"' 1 30
echo "ok - the grabber delivers frames: the share started by itself"

echo "$gdev" >/sys/bus/platform/drivers/vivid/unbind || agent_fail "unbind $gdev"
agent_wait '.media.share == "off"' 30
agent_wait '.media.state == "PLAYING"' 10
echo "ok - the grabber unplugged: the share stopped, the camera plays on"
grep -q '"event":"stream-disabled".*"kind":"share"' "$AGENT_EVENTS" ||
	agent_fail "no stream-disabled (kind share) event"

echo "$gdev" >/sys/bus/platform/drivers/vivid/bind || agent_fail "bind $gdev"
for _ in $(seq 1 100); do [ -e "$grabber" ] && break; hw_sleep 0.1; done
[ -e "$grabber" ] || agent_fail "the grabber's node did not come back"
agent_wait '.media.share == "on"' 60
echo "ok - the grabber back: the share started again"

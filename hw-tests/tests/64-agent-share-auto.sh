#!/usr/bin/env bash
# The share's HDMI grabber (the second vivid instance) with `[media.share] auto = true`: the
# share starts by itself once the grabber delivers frames, and when the grabber is unplugged
# (vivid's `disconnect` control: its node goes away as a USB device's does) the share stops
# (stream-disabled, kind share) while the camera plays on. (Plugging it back needs vivid
# reloaded, which would take the camera too: the agent's rules for a returning signal are
# unit-tested in src/agent/state/share.rs.)
set -euo pipefail
. "$ROOMBOX_HW_LIB"
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/64-agent-share-auto
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"
trap 'agent_stop; hw_cleanup' EXIT

grabber=${ROOMBOX_HW_GRABBER:-}
[ -n "$grabber" ] && [ -e "$grabber" ] || agent_fail "no grabber device (ROOMBOX_HW_GRABBER): vivid needs n_devs=2"
# The share takes a grabber by a stable link, as an installation should (the rig's --udev gives
# it a by-id link, guest/stage2.sh). udev makes links asynchronously, and
# 62-agent-camera-hotplug has just unbound and bound vivid again (both its devices).
link=""
for _ in $(seq 1 100); do
	for l in /dev/v4l/by-id/* /dev/v4l/by-path/*; do
		[ -e "$l" ] && [ "$(readlink -f "$l")" = "$(readlink -f "$grabber")" ] && link=$l && break
	done
	[ -n "$link" ] && break
	command -v udevadm >/dev/null && udevadm settle -t 1 2>/dev/null || true
	sleep 0.1
done
[ -n "$link" ] || agent_fail "no stable link to $grabber: $(ls -l /dev/v4l/by-path/ /dev/v4l/by-id/ 2>&1 | tr '\n' ' ')"
cfg=$AGENT_DIR/roombox.toml
agent_config "$cfg"
cat >>"$cfg" <<CFG

[media.share]
source = "v4l2"
device = "$link"
width = 320
height = 240
fps = 5
bitrate_kbps = 300
auto = true
CFG
agent_start "$cfg"
agent_wait '.media.state == "PLAYING"' 90
agent_wait '.media.share == "on"' 60
agent_wait_events '"kind":"share"' 1 30
echo "ok - the grabber delivers frames: the share started by itself"

v4l2-ctl -d "$grabber" -c disconnect=1 || agent_fail "vivid's disconnect control on $grabber"
agent_wait '.media.share == "off"' 30
agent_wait '.media.state == "PLAYING"' 10
grep -q '"event":"stream-disabled".*"kind":"share"' "$AGENT_EVENTS" ||
	agent_fail "no stream-disabled (kind share) event"
echo "ok - the grabber unplugged: the share stopped, the camera plays on"

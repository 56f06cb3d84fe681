#!/usr/bin/env bash
# The camera unbound and bound again while the agent runs: the media engine restarts capture by
# itself (no agent restart), the LEDs flash red (error) while it is gone, and the agent holds as
# many file descriptors after the replug as before the unplug (none kept on the vanished node).
set -euo pipefail
. "$ROOMBOX_HW_LIB"
AGENT_DIR=${ROOMBOX_HW_RESULTS:-/tmp}/62-agent-camera-hotplug
. "${BASH_SOURCE[0]%/*}/../agent-lib.sh"
trap 'agent_stop; hw_cleanup' EXIT

# Name the camera the way an installation should: by udev's stable link, which follows the
# camera to whatever node it comes back as (needs the rig's --udev; ROOMBOX_HW_UDEV=1).
# (The rig's vivid has both its nodes on one platform device, so their by-path links collide;
# guest/stage2.sh gives each a by-id link instead.)
link=/dev/v4l/by-id/rig-vivid-camera-video-index0
[ -e "$link" ] || agent_fail "no $link: run the rig with ROOMBOX_HW_UDEV=1"
cfg=$AGENT_DIR/roombox.toml
ROOMBOX_HW_VIDEO=$link agent_config "$cfg"
agent_start "$cfg"
agent_wait '.media.state == "PLAYING" and .localParticipant.micOn' 90
pid=$AGENT_PID

# The agent's open file descriptors: the count, and the device nodes among them.
fd_count() { ls /proc/"$pid"/fd | wc -l; }
fd_devices() { local f; for f in /proc/"$pid"/fd/*; do readlink "$f"; done 2>/dev/null | grep '^/dev/video' | sort | tr '\n' ' '; }
# Settled in PLAYING (the first seconds open and close helper fds), then counted.
hw_sleep 3
fds_before=$(fd_count)
echo "fds before the unplug: $fds_before (video: $(fd_devices))"
ls -l /proc/"$pid"/fd >"$AGENT_DIR/fds-before.txt" 2>&1 || true

camera_unplug
agent_wait '.media.state != "PLAYING"' 30
wait_led led-red 1 15 || agent_fail "no error shown on the red LED while the camera is gone"
echo "ok - camera gone: media left PLAYING and the red LED flashes"
hw_sleep 2
# The camera may come back under another node (a vanished node that is still held keeps its
# minor number); the stable link follows it either way.
camera_replug || true
for _ in $(seq 1 100); do [ -e "$link" ] && break; hw_sleep 0.1; done
[ -e "$link" ] || agent_fail "udev did not recreate $link"
echo "ok - camera back as $(readlink -f "$link")"
agent_wait '.media.state == "PLAYING" and .media.restarts >= 1 and .health.ok' 90
kill -0 "$pid" 2>/dev/null || agent_fail "the agent process is gone"
[ "$AGENT_PID" = "$pid" ] || agent_fail "the agent was restarted"
wait_led led-red 0 10 || agent_fail "red still lit after recovery"
echo "ok - camera back: capture recovered in the same agent process, LEDs calm"
hw_sleep 3
fds_after=$(fd_count)
echo "fds after the replug: $fds_after (video: $(fd_devices))"
ls -l /proc/"$pid"/fd >"$AGENT_DIR/fds-after.txt" 2>&1 || true
[ "$fds_after" = "$fds_before" ] ||
	agent_fail "the agent holds $fds_after fds after the replug, $fds_before before (see fds-after.txt)"
echo "ok - no file descriptor kept: $fds_after after the replug, as before the unplug"

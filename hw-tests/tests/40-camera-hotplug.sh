#!/usr/bin/env bash
# vivid camera unplug/replug (lib.sh camera_unplug / camera_replug: unbind and bind the vivid
# platform device). Proves: a streaming capture ends with an error when the camera goes away
# (it does not hang), the node disappears, capture fails while unplugged, and after the replug
# the node is back and captures 320x180 frames again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "${ROOMBOX_HW_LIB:-$(dirname "$0")/../lib.sh}"

dev=$ROOMBOX_HW_VIDEO
fail() { echo "FAIL: $*"; exit 1; }
capture() { # NUM_BUFFERS
  gst-launch-1.0 -q v4l2src device="$dev" num-buffers="$1" \
    ! video/x-raw,width=320,height=180 ! fakesink </dev/null >/dev/null 2>&1
}

capture 10 || fail "capture before unplug"

gst-launch-1.0 v4l2src device="$dev" ! video/x-raw,width=320,height=180 ! fakesink \
  </dev/null >"${ROOMBOX_HW_RESULTS:-/tmp}/stream-during-unplug.log" 2>&1 &
streamer=$!
hw_sleep 2
kill -0 "$streamer" 2>/dev/null || fail "the streaming capture did not start"
t0=$EPOCHREALTIME
camera_unplug
echo "unplugged in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
[ ! -e "$dev" ] || fail "$dev still exists after camera_unplug"
for _ in $(seq 100); do kill -0 "$streamer" 2>/dev/null || break; hw_sleep 0.1; done
if kill -0 "$streamer" 2>/dev/null; then
  kill "$streamer"
  fail "the streaming capture kept running after the unplug"
fi
st=0
wait "$streamer" || st=$?
echo "streaming capture ended with status $st: $(grep -m1 -i 'error' "${ROOMBOX_HW_RESULTS:-/tmp}/stream-during-unplug.log" || true)"
[ "$st" != 0 ] || fail "the streaming capture ended cleanly instead of with an error"

if capture 5; then fail "capture succeeded while unplugged"; fi

camera_replug
[ -c "$dev" ] || fail "$dev is not back after camera_replug"
formats=$(v4l2-ctl -d "$dev" --list-formats-ext) || fail "v4l2-ctl after replug"
grep -q 'Size: Discrete 320x180' <<<"$formats" || fail "$dev lists no 320x180 after replug"
capture 30 || fail "capture after replug"
echo "PASS (unplug, replug, capture again)"

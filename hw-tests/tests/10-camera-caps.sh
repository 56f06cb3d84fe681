#!/usr/bin/env bash
# Camera: real V4L2 format enumeration and caps negotiation (vivid, or a board's camera).
# Proves: v4l2-ctl lists a discrete WxH size (320x180 unless ROOMBOX_HW_CAMERA_WIDTH/HEIGHT say
# otherwise), v4l2src negotiates WxH with the driver and delivers 30 frames to a sink; on vivid
# also YUYV, and every frame is complete (W*H*2 bytes).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "${ROOMBOX_HW_LIB:-$(dirname "$0")/../lib.sh}"

dev=$ROOMBOX_HW_VIDEO
W=${ROOMBOX_HW_CAMERA_WIDTH:-320}
H=${ROOMBOX_HW_CAMERA_HEIGHT:-180}
formats=$(v4l2-ctl -d "$dev" --list-formats-ext)
head -n 8 <<<"$formats"
if hw_sim; then
  grep -q "'YUYV'" <<<"$formats" || { echo "FAIL: $dev lists no YUYV format"; exit 1; }
fi
grep -q "Size: Discrete ${W}x${H}" <<<"$formats" || { echo "FAIL: $dev lists no ${W}x${H} size"; exit 1; }

out=$(gst-launch-1.0 -v v4l2src device="$dev" num-buffers=30 \
  ! "video/x-raw,width=$W,height=$H" ! fakesink silent=false 2>&1 </dev/null) ||
  st=$?
printf '%s\n' "$out" >"${ROOMBOX_HW_RESULTS:-/tmp}/camera-caps.gst.log"
[ "${st:-0}" = 0 ] ||
  { printf '%s\n' "$out" | tail -20; echo "FAIL: gst-launch v4l2src failed"; exit 1; }
# the caps v4l2src settled on with the driver (VIDIOC_S_FMT), as gst-launch -v reports them
caps=$(grep -m1 -o 'v4l2src0.GstPad:src: caps = .*' <<<"$out" || true)
caps=${caps#*caps = }
[[ $caps == *"width=(int)320,"* && $caps == *"height=(int)180,"* ]] || { printf '%s\n' "$out" | tail -20; echo "FAIL: caps were not negotiated at 320x180"; exit 1; }
frames=$(grep -c 'chain.*(115200 bytes' <<<"$out" || true)
echo "negotiated: $caps; frames of 115200 bytes: $frames"
[ "$frames" -eq 30 ] || { echo "FAIL: expected 30 frames, got $frames"; exit 1; }
echo "PASS"

#!/usr/bin/env bash
# vivid camera: real V4L2 format enumeration and caps negotiation.
# Proves: v4l2-ctl lists YUYV with a discrete 320x180 size, and v4l2src negotiates 320x180 and
# delivers 30 full frames (320*180*2 = 115200 bytes each) to a sink.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "${ROOMBOX_HW_LIB:-$(dirname "$0")/../lib.sh}"

dev=$ROOMBOX_HW_VIDEO
formats=$(v4l2-ctl -d "$dev" --list-formats-ext)
head -n 8 <<<"$formats"
grep -q "'YUYV'" <<<"$formats" || { echo "FAIL: $dev lists no YUYV format"; exit 1; }
grep -q 'Size: Discrete 320x180' <<<"$formats" || { echo "FAIL: $dev lists no 320x180 size"; exit 1; }

out=$(gst-launch-1.0 -v v4l2src device="$dev" num-buffers=30 \
  ! video/x-raw,width=320,height=180 ! fakesink silent=false 2>&1 </dev/null) ||
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

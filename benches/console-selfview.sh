#!/usr/bin/env bash
# Self-view for the console: which costs the box less CPU, a low-rate JPEG snapshot from the raw
# video, or HLS (which the console would play through hls.js)? Runs the box's capture + encode
# (1280x720@30 I420, as the box pins it, x264 as the box configures it) in gst-launch three ways, each for $SECONDS_EACH
# seconds after a warm-up, and prints a markdown table of CPU (percent of one core) with the
# plain capture + encode as the baseline of the same run:
#   base: capture + encode only (keyframe every 2 s, as the box's default)
#   jpeg: base + a tee of the raw video, 1 frame/s, scaled to 320x180, jpegenc
#   hls:  base with a keyframe every 1 s (HLS asks for one per segment) + hlssink2 1 s segments
set -euo pipefail
SECONDS_EACH=${SECONDS_EACH:-20}
ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tck=$(getconf CLK_TCK)
src="videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1"
enc="x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 threads=2"
declare -A pipe
# Every variant tees the raw video into a queued encoder, as the box's capture does, so they
# differ only in what is added.
pipe[base]="$src ! tee name=t t. ! queue ! $enc key-int-max=60 ! fakesink sync=false"
pipe[jpeg]="$src ! tee name=t t. ! queue ! $enc key-int-max=60 ! fakesink sync=false \
  t. ! queue leaky=downstream max-size-buffers=2 ! videorate drop-only=true ! video/x-raw,framerate=1/1 \
  ! videoscale ! video/x-raw,width=320,height=180 ! jpegenc quality=70 ! fakesink sync=false"
pipe[hls]="$src ! tee name=t t. ! queue ! $enc key-int-max=30 ! h264parse ! hlssink2 target-duration=1 max-files=8 \
  location=$tmp/seg%05d.ts playlist-location=$tmp/index.m3u8"
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A total
for r in $(seq "$ROUNDS"); do
  for k in base jpeg hls; do
    # shellcheck disable=SC2086
    gst-launch-1.0 -q ${pipe[$k]} >/dev/null 2>&1 &
    pid=$!
    sleep 3
    t0=$(ticks $pid)
    sleep "$SECONDS_EACH"
    t1=$(ticks $pid)
    kill $pid; wait $pid 2>/dev/null || true
    cpu=$(awk -v a="$t0" -v b="$t1" -v s="$SECONDS_EACH" -v h="$tck" 'BEGIN{printf "%.1f", 100*(b-a)/h/s}')
    total[$k]=$(awk -v x="${total[$k]:-0}" -v y="$cpu" 'BEGIN{print x+y}')
    echo "round $r $k ${cpu}%" >&2
  done
done
avg() { awk -v x="${total[$1]}" -v n="$ROUNDS" 'BEGIN{printf "%.1f", x/n}'; }
b=$(avg base); j=$(avg jpeg); h=$(avg hls)
echo "| self-view source | CPU, % of a core (mean of $ROUNDS × ${SECONDS_EACH} s) | added over capture + encode |"
echo "|---|---|---|"
echo "| capture + encode alone (baseline) | $b | — |"
echo "| + JPEG snapshot, 1 frame/s at 320x180 from the raw video | $j | $(awk -v a="$j" -v b="$b" 'BEGIN{printf "%+.1f", a-b}') |"
echo "| + HLS, 1 s segments (keyframe every second) | $h | $(awk -v a="$h" -v b="$b" 'BEGIN{printf "%+.1f", a-b}') |"

#!/usr/bin/env bash
# Self-view for the console: which costs the box less CPU, a low-rate JPEG snapshot from the raw
# video, or HLS (which the console plays through hls.js)? Each added part is measured against
# the pipeline it would be added to, in gst-launch, alternating, $ROUNDS rounds of $SECONDS_EACH
# seconds after a 3 s warm-up; medians. The camera is 1280x720@30 I420 (as the box pins it):
#   raw       the camera alone
#   raw+jpeg  + 1 frame/s, scaled to 320x180, jpegenc (what a snapshot branch would add)
#   enc       the camera and the box's x264 (ultrafast/zerolatency, 2500 kbit/s, keyframe every 2 s)
#   enc+hls   the same with a keyframe every 1 s (HLS asks for one per segment) and hlssink2
# The JPEG branch is measured without the encoder so x264's own spread (a point or two of a core
# between runs on a shared machine) does not hide it. CPU is user+system over wall time.
set -euo pipefail
SECONDS_EACH=${SECONDS_EACH:-20}
ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tck=$(getconf CLK_TCK)
src="videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1"
enc="x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 threads=2"
jpeg="queue leaky=downstream max-size-buffers=2 ! videorate drop-only=true ! video/x-raw,framerate=1/1 \
  ! videoscale ! video/x-raw,width=320,height=180 ! jpegenc quality=70 ! fakesink sync=false"
declare -A pipe
pipe[raw]="$src ! tee name=t t. ! queue ! fakesink sync=false"
pipe[rawjpeg]="$src ! tee name=t t. ! queue ! fakesink sync=false t. ! $jpeg"
pipe[enc]="$src ! queue ! $enc key-int-max=60 ! h264parse ! fakesink sync=false"
pipe[enchls]="$src ! queue ! $enc key-int-max=30 ! h264parse ! hlssink2 target-duration=1 max-files=8 \
  location=$tmp/seg%05d.ts playlist-location=$tmp/index.m3u8"
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A runs
for r in $(seq "$ROUNDS"); do
  for k in raw rawjpeg enc enchls; do
    # shellcheck disable=SC2086
    gst-launch-1.0 -q ${pipe[$k]} >/dev/null 2>&1 &
    pid=$!
    sleep 3
    t0=$(ticks $pid)
    sleep "$SECONDS_EACH"
    t1=$(ticks $pid)
    kill $pid; wait $pid 2>/dev/null || true
    cpu=$(awk -v a="$t0" -v b="$t1" -v s="$SECONDS_EACH" -v h="$tck" 'BEGIN{printf "%.2f", 100*(b-a)/h/s}')
    runs[$k]="${runs[$k]:-} $cpu"
    echo "round $r $k ${cpu}%" >&2
  done
done
med() { tr ' ' '\n' <<<"${runs[$1]}" | grep . | sort -g | awk '{a[NR]=$1} END{printf "%.1f", (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
raw=$(med raw); rj=$(med rawjpeg); e=$(med enc); eh=$(med enchls)
echo "| pipeline | CPU, % of a core (median of $ROUNDS × ${SECONDS_EACH} s) | the self-view part adds |"
echo "|---|---|---|"
echo "| camera alone | $raw | — |"
echo "| camera + JPEG snapshot branch (1 frame/s, 320x180) | $rj | **$(awk -v a="$rj" -v b="$raw" 'BEGIN{printf "%+.1f", a-b}')** |"
echo "| camera + x264 (keyframe every 2 s) | $e | — |"
echo "| camera + x264 with a keyframe every 1 s + hlssink2 | $eh | **$(awk -v a="$eh" -v b="$e" 'BEGIN{printf "%+.1f", a-b}')** |"
echo
echo "Runs (%): raw [${runs[raw]# }], raw+jpeg [${runs[rawjpeg]# }], enc [${runs[enc]# }], enc+hls [${runs[enchls]# }]."

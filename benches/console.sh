#!/usr/bin/env bash
# Console and viewers' page benchmarks (issue 11): each prints a markdown section on stdout.
#   bench_console          page load to interactive, tap to the new state shown beside the control
#                          socket, the box's CPU/RSS with HTTP off, idle and 10 consoles open
#   console-selfview.sh    self-view: a JPEG snapshot branch against HLS, CPU in gst-launch
# Needs tests/browser/setup.sh (Chromium, playwright-core). ROOMBOX_BENCH_SECONDS (CPU window,
# default 20) and ROOMBOX_BENCH_ROUNDS (default 2) tune the first; SECONDS_EACH and ROUNDS the
# second.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/browser/setup.sh >/dev/null
cargo test --release --quiet --test console --no-run 2>/dev/null
RUST_LOG=off cargo test --release --quiet --test console -- --ignored bench_console --exact --nocapture 2>/dev/null \
  | awk '/^## /{p=1} /^ok$|^\.$|^test result|^FAILED|^failures/{p=0} p' || echo "<!-- bench_console failed -->"
echo
echo "## Console self-view: JPEG snapshot or HLS (issue 11)"
echo
echo "Each self-view source against the pipeline it would be added to, in gst-launch-1.0 (1280x720@30"
echo "I420 camera, the box's x264 settings), alternating; CPU is user+system time over wall time (100 % ="
echo "one core). \`benches/console-selfview.sh\`."
echo
bash benches/console-selfview.sh 2>/dev/null || echo "<!-- console-selfview failed -->"

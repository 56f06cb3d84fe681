#!/usr/bin/env bash
# Live output benchmarks (issue 9): each prints a markdown section on stdout. Needs nginx with
# libnginx-mod-rtmp, and for the fallback root (a network namespace) and Janus.
#   bench_fanout_cpu      CPU per step (capture, recording, 2x RTMP, HLS) vs gst-launch's tee graph
#   bench_fallback_switch room lost (after `after`) to the fallback output publishing, repeated
#   bench_output_latency  capture to a player's presented frame, over RTMP and over the box's HLS
# ROOMBOX_BENCH_SECONDS (CPU window, default 10), ROOMBOX_BENCH_ROUNDS (CPU rounds, default 3) and
# ROOMBOX_BENCH_REPS (fallback repetitions, default 6) tune them. RUST_LOG=off keeps the in-process
# box's logs out of the sections.
set -euo pipefail
cd "$(dirname "$0")/.."
# livestream needs the `test-util` feature (the capture's frame stamp, for bench_output_latency).
cargo test --release --quiet --features test-util --test livestream --no-run 2>/dev/null
for b in bench_fanout_cpu bench_fallback_switch bench_output_latency; do
  RUST_LOG=off cargo test --release --quiet --features test-util --test livestream -- --ignored "$b" --exact --nocapture 2>/dev/null \
    | awk '/^## /{p=1} /^ok$|^\.$|^test result|^FAILED|^failures/{p=0} p' || echo "<!-- $b failed -->"
  echo
done

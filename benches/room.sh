#!/usr/bin/env bash
# Room benchmarks: each prints a markdown section on stdout. Needs root (a network namespace per
# run), Janus, and for the CPU comparison python3 with aiortc (`pip install aiortc websockets`).
#   bench_room_join       join command to the first decoded frame of the box's video
#   bench_glass_to_glass  1280x720@30 capture to decoded frame at a subscriber, through Janus
#   bench_publish_cpu     CPU of the box vs an aiortc publisher of the same 720p30 + audio
#   bench_button_join     simulated join button press to the meeting-joined event
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --quiet --test room --no-run 2>/dev/null
for b in bench_room_join bench_glass_to_glass bench_publish_cpu bench_button_join; do
  cargo test --release --quiet --test room -- --ignored "$b" --exact --nocapture 2>/dev/null \
    | awk '/^## /{p=1} /^ok$|^\.$|^test result|^FAILED|^failures/{p=0} p' || echo "<!-- $b failed -->"
done

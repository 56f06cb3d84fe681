#!/usr/bin/env bash
# Room benchmarks: each prints a markdown section on stdout. Needs root (a network namespace per
# run), Janus, and for the CPU comparison python3 with aiortc (`pip install aiortc websockets`).
#   bench_room_join       join command to the first decoded frame of the box's video
#   bench_glass_to_glass  1280x720@30 capture to decoded frame at a subscriber, through Janus
#   bench_glass_to_glass_browser  the same to headless Chromium's screen, beside webrtcbin over
#                         the same frames (needs tests/browser/setup.sh; run here if missing)
#   bench_glass_to_glass_browser_whip  the same, published over WHIP through simple-whip-server
#   bench_publish_cpu     CPU of the box vs an aiortc publisher of the same 720p30 + audio
#   bench_button_join     simulated join button press to the meeting-joined event
#   bench_bitrate_ramp    frames a subscriber decodes each second while the bitrate moves (quality)
#   bench_whip_join       join command to CONNECTED over WHIP (simple-whip-server) beside Janus
#   bench_call_memory     the box's RSS in a call, showing remote video and not (quality); set
#                         ROOMBOX_BASE_BIN to an earlier build's binary to measure it beside
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d tests/browser/node_modules/playwright-core ]] || bash tests/browser/setup.sh >&2
# room and room_browser need the `test-util` feature (the capture's frame stamp); quality gets it
# too, so the three share one build of the box.
cargo test --release --quiet --features test-util --test room --test room_browser --test quality --test whip --no-run 2>/dev/null
for tb in room:bench_room_join room:bench_glass_to_glass room_browser:bench_glass_to_glass_browser room_browser:bench_glass_to_glass_browser_whip \
  room:bench_publish_cpu \
  room:bench_button_join whip:bench_whip_join quality:bench_bitrate_ramp quality:bench_call_memory; do
  t=${tb%%:*} b=${tb#*:}
  cargo test --release --quiet --features test-util --test "$t" -- --ignored "$b" --exact --nocapture 2>/dev/null \
    | awk '/^## /{p=1} /^ok$|^\.$|^test result|^FAILED|^failures/{p=0} p' || echo "<!-- $b failed -->"
done

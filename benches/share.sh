#!/usr/bin/env bash
# Content share benchmarks (issue 18), each printing a markdown section on stdout:
#   examples/bench_share   CPU of a 1080p5 share beside the 720p30 camera, and of the pip program
#   room_share:bench_share_start_to_chromium  start-share to the first share frame decoded in
#                          headless Chromium subscribed in Janus (needs root for its network
#                          namespace, and tests/browser/setup.sh)
# Release build. Uses $CARGO_TARGET_DIR like cargo does.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d tests/browser/node_modules/playwright-core ]] || bash tests/browser/setup.sh >&2
cargo build --quiet --release --bin roombox --example bench_share
rel="${CARGO_TARGET_DIR:-target}/release"
"$rel/examples/bench_share" --roombox "$rel/roombox" "$@"
cargo test --release --quiet --features test-util --test room_share -- --ignored bench_share_start_to_chromium --exact --nocapture 2>/dev/null \
  | grep -v $'\e\\[' | awk '/^## /{p=1} /^ok$|^\.$|^test result|^FAILED|^failures/{p=0} p' || echo "<!-- bench_share_start_to_chromium failed -->"

#!/usr/bin/env bash
# Room benchmarks: prints a markdown section on stdout. Needs root (a network namespace per run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --quiet --test room -- --ignored bench_room_join --nocapture 2>/dev/null \
  | sed -n '/^## Room join/,/^| [0-9]/p'

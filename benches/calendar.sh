#!/usr/bin/env bash
# Calendar benchmark: a busy room's year parsed and expanded, beside the box's own two-day poll
# (examples/bench_calendar.rs). Prints a markdown section on stdout. Release build: the targets
# in BENCHMARKS.md are for it. Uses $CARGO_TARGET_DIR like cargo does.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --example bench_calendar
exec "${CARGO_TARGET_DIR:-target}/release/examples/bench_calendar" "$@"

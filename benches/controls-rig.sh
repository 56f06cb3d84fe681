#!/usr/bin/env bash
# Button edge to LED change in the QEMU rig; prints a markdown section for BENCHMARKS.md.
#   benches/controls-rig.sh            (after hw-tests/setup.sh and cargo build)
# ROUNDS (default 30) presses per row. The host-side figure is `cargo run --example
# bench_controls`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rig=${ROOMBOX_HW_RIG:-$root/hw-tests/run-in-guest.sh}
[ -x "$rig" ] || { echo "controls-rig: no rig at $rig (set ROOMBOX_HW_RIG)" >&2; exit 1; }
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
cd "$root"
"$rig" --quiet --timeout 900 --results "$results" --env "ROUNDS=${ROUNDS:-30}" \
	-- bash benches/controls-rig-guest.sh >&2
cat "$results/controls-rig.md"

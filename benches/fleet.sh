#!/usr/bin/env bash
# Fleet benchmark: command round trip vs the broker's own path, and 1,000 simulated boxes on one
# mosquitto. Prints a markdown section on stdout. Arguments go to the example
# (--boxes N, --pings N); --cluster first runs the cluster comparison instead. Uses $CARGO_TARGET_DIR like cargo does.
set -euo pipefail
cd "$(dirname "$0")/.."
# One socket per box here and one per box in the broker, plus files: raise the open-file limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
# The simulated boxes are a test fixture: the example needs the `test-util` feature.
cargo build --quiet --features test-util --example bench_fleet --example bench_fleet_cluster ${CARGO_PROFILE_FLAG:-}
target="${CARGO_TARGET_DIR:-target}"
profile=debug
[[ "${CARGO_PROFILE_FLAG:-}" == *release* ]] && profile=release
# --cluster: the same simulated fleet on one mosquitto and on a two-node ejabberd cluster.
if [[ "${1:-}" == --cluster ]]; then
  shift
  exec "$target/$profile/examples/bench_fleet_cluster" "$@"
fi
exec "$target/$profile/examples/bench_fleet" "$@"

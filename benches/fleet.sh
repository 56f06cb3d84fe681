#!/usr/bin/env bash
# Fleet benchmark: command round trip vs the broker's own path, and 1,000 simulated boxes on one
# mosquitto. Prints a markdown section on stdout. Arguments go to the example
# (--boxes N, --pings N); --cluster first runs the cluster comparison instead. Uses $CARGO_TARGET_DIR like cargo does.
# --rollout runs the staged-rollout bench (examples/bench_rollout.rs: 100 simulated boxes, 10 %
# then 100 %, two bad ones stopping it) and writes its section into BENCHMARKS.md, replacing the
# previous one and keeping every other section; --rollout --print only prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
# One socket per box here and one per box in the broker, plus files: raise the open-file limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
# The simulated boxes are a test fixture: the example needs the `test-util` feature.
cargo build --quiet --features test-util --example bench_fleet --example bench_fleet_cluster --example bench_rollout ${CARGO_PROFILE_FLAG:-}
target="${CARGO_TARGET_DIR:-target}"
profile=debug
[[ "${CARGO_PROFILE_FLAG:-}" == *release* ]] && profile=release
# --cluster: the same simulated fleet on one mosquitto and on a two-node ejabberd cluster.
if [[ "${1:-}" == --cluster ]]; then
  shift
  exec "$target/$profile/examples/bench_fleet_cluster" "$@"
fi
if [[ "${1:-}" == --rollout ]]; then
  shift
  print=0
  if [[ "${1:-}" == --print ]]; then
    print=1
    shift
  fi
  section="$(mktemp)"
  trap 'rm -f "$section"' EXIT
  "$target/$profile/examples/bench_rollout" "$@" > "$section"
  if [[ $print == 1 ]]; then
    cat "$section"
    exit 0
  fi
  # Replace the section (from its heading to the next one) or, the first time, put it after the
  # cluster's section.
  python3 - "$section" <<'PY'
import sys
new = open(sys.argv[1]).read().rstrip("\n") + "\n"
lines = open("BENCHMARKS.md").read().split("\n")
head = "## Staged rollout:"
start = next((i for i, l in enumerate(lines) if l.startswith(head)), None)
if start is None:
    after = next((i for i, l in enumerate(lines) if l.startswith("## Fleet beyond one broker")), None)
    start = len(lines) if after is None else next(
        (i for i in range(after + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    end = start
else:
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
out = lines[:start] + new.split("\n") + lines[end:]
open("BENCHMARKS.md", "w").write("\n".join(out))
PY
  echo "wrote the staged-rollout section of BENCHMARKS.md"
  exit 0
fi
exec "$target/$profile/examples/bench_fleet" "$@"

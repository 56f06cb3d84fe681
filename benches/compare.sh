#!/usr/bin/env bash
# Compares two release builds of roombox on the figures a restructuring must leave alone: the
# binary's size, recording (examples/bench_media, against gst-launch in the same run), the room
# join and glass-to-glass latency (tests/room.rs's benches, Janus in a network namespace). The two
# builds run alternately, A B A B, so a machine that drifts moves both. Prints a markdown section.
#
#   benches/compare.sh A_DIR B_DIR [LABEL_A LABEL_B]
#
# Each DIR holds `roombox`, `bench_media` and `room` (the release test binary of tests/room.rs,
# built with `--features test-util`, or without it before that feature existed). Needs root (the
# network namespaces) and Janus. Its last run is kept in docs/compare.md, which scripts/bench.sh
# copies into BENCHMARKS.md.
set -euo pipefail
a="$1" b="$2" la="${3:-A}" lb="${4:-B}"
for d in "$a" "$b"; do
  for f in roombox bench_media room; do
    [[ -x "$d/$f" ]] || { echo "compare: $d/$f is missing" >&2; exit 2; }
  done
done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# One bench of one build; its markdown goes to $out/NAME-LABEL-ROUND.
run() {
  local name="$1" dir="$2" label="$3" round="$4"
  case "$name" in
    record) "$dir/bench_media" --roombox "$dir/roombox" --rounds 1 --seconds 15 ;;
    join) "$dir/room" --ignored bench_room_join --exact --nocapture --test-threads=1 ;;
    g2g) "$dir/room" --ignored bench_glass_to_glass --exact --nocapture --test-threads=1 ;;
  esac >"$out/$name-$label-$round" 2>/dev/null || echo "<!-- $name $label round $round failed -->" >>"$out/$name-$label-$round"
}
rounds="${ROUNDS:-3}"
for round in $(seq "$rounds"); do
  for name in record join g2g; do
    run "$name" "$a" A "$round"
    run "$name" "$b" B "$round"
  done
done

# The figure of a row: the cell after the row's name in the bench's own table.
cell() { # FILE ROW-PREFIX COLUMN; an empty prefix: the table's first data row
  awk -F'|' -v row="$2" -v col="$3" '
    row == "" && seen { gsub(/[ *]/, "", $col); print $col; exit }
    row == "" && /^\|---/ { seen = 1 }
    row != "" && index($2, row) == 2 { gsub(/[ *]/, "", $col); print $col; exit }' "$1"
}
row() { # LABEL FILE-PREFIX ROW COLUMN: the median of the rounds, each round in brackets
  local va=() vb=() r
  for r in $(seq "$rounds"); do
    va+=("$(cell "$out/$2-A-$r" "$3" "$4")")
    vb+=("$(cell "$out/$2-B-$r" "$3" "$4")")
  done
  python3 - "$1" "${#va[@]}" "${va[@]}" "${vb[@]}" <<'PY'
import re, statistics, sys
label, n = sys.argv[1], int(sys.argv[2])
num = lambda x: float(re.sub(r"[^0-9.]", "", x)) if re.sub(r"[^0-9.]", "", x) else None
a = [num(x) for x in sys.argv[3:3 + n]]
b = [num(x) for x in sys.argv[3 + n:3 + 2 * n]]
fmt = lambda v: "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")
def cell(v):
    got = [x for x in v if x is not None]
    if not got:
        return "-", None
    m = statistics.median(got)
    return f"{fmt(m)} ({', '.join(fmt(x) for x in v)})", m
ca, ma = cell(a)
cb, mb = cell(b)
ratio = f"{mb / ma:.2f}" if ma and mb is not None else "-"
print(f"| {label} | {ca} | {cb} | {ratio} |")
PY
}
size_a=$(stat -c %s "$a/roombox") size_b=$(stat -c %s "$b/roombox")
echo "## Before and after: $la against $lb"
echo
echo "Both release builds on this machine in one run, alternating A B A B, $rounds rounds of each"
echo "bench: the median of the rounds, and each round in brackets. Recording CPU is the agent's"
echo "against gst-launch's in the same round (a ratio of ratios); the latencies are each round's"
echo "median (the join over 7 joins, glass-to-glass over 15 s of frames)."
echo
echo "| figure | $la | $lb | $lb / $la |"
echo "|---|---|---|---|"
python3 -c "import sys; a,b=map(int,sys.argv[1:]); print(f'| release binary, bytes | {a} | {b} | {b/a:.3f} |')" "$size_a" "$size_b"
row "recording: CPU against gst-launch (ratio)" record "CPU, median" 5
row "recording: peak RSS (MiB)" record "peak RSS" 4
row "recording: start to READY=1 (ms)" record "start to READY=1" 4
row "room join: to CONNECTED (ms)" join "CONNECTED" 3
row "room join: to the first remote-decoded frame (ms)" join "first remote-decoded frame" 3
row "glass to glass: median (ms)" g2g "" 2
echo
if grep -l -- '<!--' "$out"/* >/dev/null 2>&1; then
  echo "Runs that failed:"
  cat "$out"/* | grep -- '<!--' || true
fi

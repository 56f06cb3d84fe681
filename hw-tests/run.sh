#!/usr/bin/env bash
# hw-tests/run.sh — run the rig's device tests (hw-tests/tests/*.sh) in one guest boot.
#
# Usage:
#   hw-tests/run.sh [--timeout S] [--results DIR] [PATTERN...]
#       boots the QEMU guest once (hw-tests/run-in-guest.sh) and runs every test whose file
#       name contains one of the PATTERNs (all tests without one)
#   hw-tests/run.sh --here [--results DIR] [PATTERN...]
#       runs the tests on this machine directly, e.g. on a Raspberry Pi or Jetson wired to a
#       loopback harness (set ROOMBOX_HW_MODE=real and the variables README.md lists)
#
# Each test runs with bash under a per-test limit (ROOMBOX_HW_TEST_TIMEOUT, default 180 s); its
# output goes to RESULTS/<test>.log and is shown when it fails. The last line printed is exactly
# "N passed, N failed". Exit status 0 only when every test passed.
# --timeout bounds the whole guest run (default 900 s). --results keeps the logs in DIR
# (default: a temp dir, kept and named when something failed).
set -euo pipefail

HW_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

select_tests() { # PATTERN... -> test paths, one a line
  local t p
  for t in "$HW_DIR"/tests/*.sh; do
    [ -e "$t" ] || continue
    if (($# == 0)); then echo "$t"; continue; fi
    for p in "$@"; do
      if [[ ${t##*/} == *"$p"* ]]; then echo "$t"; break; fi
    done
  done
}

# ------------------------------------------------------------------ runner (guest or --here)
run_tests() { # RESULTS PATTERN...
  local results=$1 t name log st t0 dt passed=0 failed=0 limit=${ROOMBOX_HW_TEST_TIMEOUT:-180}
  shift
  mkdir -p "$results"
  rm -f "$results/summary"
  mapfile -t tests < <(select_tests "$@")
  ((${#tests[@]})) || { echo "run.sh: no test matches: $*" >&2; echo 1 0 >"$results/summary"; return 1; }
  for t in "${tests[@]}"; do
    name=${t##*/}
    name=${name%.sh}
    log=$results/$name.log
    t0=$EPOCHREALTIME
    st=0
    (cd "$HW_DIR" && timeout -k 5 "$limit" bash "$t") </dev/null >"$log" 2>&1 || st=$?
    dt=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    if [ "$st" = 0 ]; then
      passed=$((passed + 1))
      echo "ok   $name (${dt} s)"
    else
      failed=$((failed + 1))
      [ "$st" = 124 ] && echo "(timed out after $limit s)" >>"$log"
      echo "FAIL $name (${dt} s, exit $st), last lines of $log:"
      tail -n 25 "$log" | sed 's/^/    /'
    fi
  done
  echo "$failed $passed" >"$results/summary"
  ((failed == 0))
}

if [ "${1:-}" = --in-guest ]; then # run-in-guest.sh calls us this way
  shift
  run_tests "$ROOMBOX_HW_RESULTS" "$@"
  exit
fi

# ------------------------------------------------------------------ host side
timeout_s=900
results=""
here=0
while (($#)); do
  case $1 in
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --results) results=${2:?}; shift 2 ;;
    --here) here=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done

auto=0
if [ -z "$results" ]; then
  results=$(mktemp -d "${TMPDIR:-/tmp}/roombox-hw-tests.XXXXXX")
  auto=1
fi
mkdir -p "$results"
results=$(realpath "$results")
rm -f "$results/summary"
ntests=$(select_tests "$@" | wc -l)

t0=$(date +%s)
rc=0
if ((here)); then
  export ROOMBOX_HW_RESULTS=$results ROOMBOX_HW_DIR=$HW_DIR ROOMBOX_HW_LIB=$HW_DIR/lib.sh
  run_tests "$results" "$@" || rc=$?
else
  "$HW_DIR/run-in-guest.sh" --timeout "$timeout_s" --results "$results" -- \
    bash "$HW_DIR/run.sh" --in-guest "$@" || rc=$?
fi

if [ -s "$results/summary" ]; then
  read -r failed passed <"$results/summary"
else
  passed=0
  failed=$((ntests > 0 ? ntests : 1)) # the guest died before reporting: count every test failed
fi
echo "run.sh: $((passed + failed)) tests in $(($(date +%s) - t0)) s; logs in $results" >&2
if ((auto)) && [ "$rc" = 0 ] && [ "$failed" = 0 ]; then
  rm -rf "$results"
fi
echo "$passed passed, $failed failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ]

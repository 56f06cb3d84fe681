#!/usr/bin/env bash
# The soak (issue 13), by its own command, outside the test suite: the release binary in a call
# with a publishing peer, recording, with the fleet on, for ROOMBOX_SOAK_SECS (default 1800 s).
# Samples RSS, fds and threads every 10 s and writes docs/soak.{csv,svg,md}; scripts/bench.sh puts
# docs/soak.md into BENCHMARKS.md. Needs what scripts/setup.sh installs (janus, mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
export ROOMBOX_SOAK_OUT="${ROOMBOX_SOAK_OUT:-$PWD/docs}"
mkdir -p "$ROOMBOX_SOAK_OUT"
# ROOMBOX_SOAK_PROFILE=dev runs the debug build (no release build needed; the figures say which).
profile=()
[[ "${ROOMBOX_SOAK_PROFILE:-release}" == release ]] && profile=(--release)
cargo test "${profile[@]}" --test soak -- --ignored soak_call --exact --nocapture
echo "wrote $ROOMBOX_SOAK_OUT/soak.svg, soak.csv and soak.md"

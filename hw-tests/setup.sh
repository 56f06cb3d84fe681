#!/usr/bin/env bash
# hw-tests/setup.sh — prepare the roombox hardware rig (a real Linux kernel under QEMU with
# virtual devices: vivid camera, snd-aloop sound card, gpio-sim buttons/LEDs).
#
# Usage:  hw-tests/setup.sh            (idempotent; a second run takes a few seconds)
#
# What it does, each step skipped when already done:
#   1. apt-installs the host tools the rig uses (QEMU, busybox-static, cpio, GStreamer tools,
#      v4l-utils, alsa-utils, gpiod, ...).
#   2. Pins a Debian kernel: the newest linux-image-6.1.*-amd64 whose matching linux-headers
#      package is served at the same version (and linux-source-6.1 at that version when it is
#      served). The pick is recorded in $CACHE/kernel.env and reused on later runs; set
#      ROOMBOX_HW_REPICK=1 to pick again, or ROOMBOX_HW_KVER=6.1.0-NN-amd64 to force one.
#   3. apt-get downloads that kernel image and unpacks it with dpkg -x into the cache (it is
#      never installed on the host), and extracts an uncompressed vmlinux from its vmlinuz.
#   4. Builds gpio-sim.ko and irq_sim.ko out of tree (Debian ships neither) from
#      linux-source-6.1 against the matching linux-headers, and runs depmod over the tree.
#   5. Builds the busybox initramfs (hw-tests/guest/init + the virtio/9p/overlay modules).
#   6. Builds a GStreamer plugin registry for the guest so it does not rescan plugins at boot.
#
# Environment:
#   ROOMBOX_HW_CACHE   cache dir for everything large (default /var/cache/roombox-hw). Never in git.
#   ROOMBOX_HW_KVER    force a kernel ABI, e.g. 6.1.0-56-amd64.
#   ROOMBOX_HW_REPICK  1 = ignore the recorded pick and choose the newest again.
set -euo pipefail

HW_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ROOMBOX_HW_CACHE:-/var/cache/roombox-hw}
export DEBIAN_FRONTEND=noninteractive

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

t0=$(date +%s)
$SUDO mkdir -p "$CACHE"
[ -w "$CACHE" ] || $SUDO chown "$(id -u):$(id -g)" "$CACHE"
# one setup at a time (two runs would race on apt and the cache)
exec 9>"$CACHE/.setup.lock"
flock 9

# ---------------------------------------------------------------- 1. host packages
HOST_PKGS=(
  qemu-system-x86 busybox-static cpio kmod xz-utils time coreutils
  build-essential
  gpiod v4l-utils alsa-utils udev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-alsa
)

APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
}

installed() { # PKG[=VERSION]
  local name=${1%%=*} want="" got
  [[ $1 == *=* ]] && want=${1#*=}
  got=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null) || return 1
  [[ $got == "install ok installed "* ]] || return 1
  [ -z "$want" ] || [ "${got##* }" = "$want" ]
}

apt_install() { # PKG[=VERSION]...
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  apt_update
  log "apt-get install ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_install "${HOST_PKGS[@]}"

# ---------------------------------------------------------------- 2. pin the kernel
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }

source_has_version() { # VERSION: is linux-source-6.1 served at exactly this version?
  apt-cache madison linux-source-6.1 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
    grep -qxF "$1"
}

pick_kernel() {
  apt_update
  local abis abi hv iv fallback=""
  if [ -n "${ROOMBOX_HW_KVER:-}" ]; then
    abis=${ROOMBOX_HW_KVER%-amd64}
    abis=${abis#linux-image-}
  else
    # every ABI for which Debian serves headers of the plain -amd64 flavour, newest first
    abis=$(apt-cache search --names-only '^linux-headers-6\.1\.[0-9]+-[0-9]+-amd64$' |
      sed -n 's/^linux-headers-\(6\.1\.[0-9]*-[0-9]*\)-amd64 .*/\1/p' | sort -V -r)
  fi
  for abi in $abis; do
    hv=$(candidate "linux-headers-$abi-amd64")
    iv=$(candidate "linux-image-$abi-amd64")
    if [ -z "$hv" ] || [ "$hv" = "(none)" ] || [ "$hv" != "$iv" ]; then continue; fi
    if source_has_version "$hv"; then
      printf '%s %s %s\n' "$abi-amd64" "$hv" "$hv"
      return 0
    fi
    [ -n "$fallback" ] || fallback="$abi-amd64 $hv"
  done
  # Image and headers agree but linux-source-6.1 is not served at that exact version: the
  # gpio-sim/irq_sim sources barely change within 6.1, so take the newest source.
  if [ -n "$fallback" ]; then
    local sv
    sv=$(candidate linux-source-6.1)
    [ -n "$sv" ] && [ "$sv" != "(none)" ] || return 1
    log "warning: linux-source-6.1 is not served at ${fallback#* }; using $sv for gpio-sim"
    printf '%s %s\n' "$fallback" "$sv"
    return 0
  fi
  return 1
}

KENV=$CACHE/kernel.env
if [ -f "$KENV" ] && [ "${ROOMBOX_HW_REPICK:-0}" != 1 ] &&
  { [ -z "${ROOMBOX_HW_KVER:-}" ] || grep -qxF "KVER=${ROOMBOX_HW_KVER}" "$KENV"; }; then
  # shellcheck source=/dev/null
  . "$KENV"
  log "kernel $KVER ($KPKGVER) as recorded in $KENV"
else
  read -r KVER KPKGVER KSRCVER < <(pick_kernel) ||
    die "no linux-image-6.1.*-amd64 with matching linux-headers is served by apt"
  log "picked kernel $KVER (package $KPKGVER, linux-source-6.1 $KSRCVER)"
fi

install_kernel_pkgs() {
  apt_install "linux-headers-$KVER=$KPKGVER" "linux-source-6.1=$KSRCVER"
}
if ! install_kernel_pkgs; then
  # a recorded pick can vanish from the archive: pick again once
  log "recorded kernel packages are no longer installable; picking again"
  APT_UPDATED=0
  read -r KVER KPKGVER KSRCVER < <(pick_kernel) || die "cannot pick a kernel"
  install_kernel_pkgs
fi
cat >"$KENV.tmp" <<EOF
# picked by hw-tests/setup.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)
KVER=$KVER
KPKGVER=$KPKGVER
KSRCVER=$KSRCVER
EOF
if ! cmp -s <(grep -v '^#' "$KENV.tmp") <(grep -v '^#' "$KENV" 2>/dev/null); then
  mv "$KENV.tmp" "$KENV"
else
  rm -f "$KENV.tmp"
fi

# ---------------------------------------------------------------- 3. kernel image
KROOT=$CACHE/kernel/$KVER
MODDIR=$KROOT/lib/modules/$KVER
if [ ! -f "$KROOT/.unpacked-$KPKGVER" ]; then
  mkdir -p "$CACHE/dl"
  deb=$CACHE/dl/linux-image-${KVER}_${KPKGVER}_amd64.deb
  if [ ! -s "$deb" ]; then
    log "apt-get download linux-image-$KVER=$KPKGVER"
    rm -f "$CACHE/dl/linux-image-${KVER}_"*.deb
    # apt's sandbox user cannot write into a root-owned cache: download as root quietly
    (
      cd "$CACHE/dl"
      apt-get download -q "linux-image-$KVER=$KPKGVER" 2>&1 | { grep -v 'unsandboxed' >&2 || true; }
    )
    [ -s "$deb" ] || die "download of linux-image-$KVER failed"
  fi
  log "unpacking $(basename "$deb")"
  rm -rf "$KROOT"
  mkdir -p "$KROOT"
  dpkg -x "$deb" "$KROOT"
  touch "$KROOT/.unpacked-$KPKGVER"
  rm -f "$CACHE/vmlinux-$KVER" "$CACHE/build-$KVER/.built"
fi

VMLINUZ=$KROOT/boot/vmlinuz-$KVER
VMLINUX=$CACHE/vmlinux-$KVER
if [ ! -s "$VMLINUX" ]; then
  # Debian's amd64 kernels are xz-compressed bzImages; the payload is an ELF with a PVH entry
  # note, which QEMU boots directly (a few seconds faster under TCG than decompressing).
  off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$VMLINUZ" | head -1 | cut -d: -f1 || true)
  if [ -n "$off" ]; then
    tail -c +$((off + 1)) "$VMLINUZ" | xz -dc >"$VMLINUX.tmp" 2>/dev/null || true
  fi
  if [ -s "$VMLINUX.tmp" ] && [ "$(head -c 4 "$VMLINUX.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
    mv "$VMLINUX.tmp" "$VMLINUX"
    log "extracted uncompressed vmlinux"
  else
    rm -f "$VMLINUX.tmp"
    log "could not extract vmlinux; the rig will boot vmlinuz"
  fi
fi

# ---------------------------------------------------------------- 4. gpio-sim + irq_sim
BUILD=$CACHE/build-$KVER
KHDR=/usr/src/linux-headers-$KVER
[ -d "$KHDR" ] || die "$KHDR missing"
if [ ! -f "$BUILD/.built" ] || [ ! -f "$MODDIR/extra/gpio-sim.ko" ]; then
  SRC=$CACHE/src-$KSRCVER
  files=(drivers/gpio/gpio-sim.c drivers/gpio/gpiolib.h kernel/irq/irq_sim.c)
  if [ ! -f "$SRC/.extracted" ]; then
    log "extracting ${files[*]} from linux-source-6.1"
    rm -rf "$SRC"
    mkdir -p "$SRC"
    tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$SRC" --strip-components=1 \
      "${files[@]/#/linux-source-6.1/}"
    touch "$SRC/.extracted"
  fi
  rm -rf "$BUILD"
  mkdir -p "$BUILD"
  cp "$SRC/drivers/gpio/gpio-sim.c" "$SRC/drivers/gpio/gpiolib.h" "$BUILD/"
  # irq_to_desc() is not exported to modules; generic_handle_irq() does the same dispatch
  # (the domain maps every irq to handle_simple_irq).
  sed 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' \
    "$SRC/kernel/irq/irq_sim.c" >"$BUILD/irq_sim.c"
  grep -q 'generic_handle_irq(irqnum);' "$BUILD/irq_sim.c" ||
    die "irq_sim.c changed upstream: the irq_to_desc patch no longer applies"
  cat >>"$BUILD/irq_sim.c" <<'EOF'

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Interrupt simulator, built out of tree by roombox hw-tests");
EOF
  echo 'obj-m := irq_sim.o gpio-sim.o' >"$BUILD/Kbuild"
  log "building gpio-sim.ko and irq_sim.ko against $KHDR"
  make -s -C "$KHDR" M="$BUILD" -j"$(nproc)" modules >"$BUILD/build.log" 2>&1 ||
    { cat "$BUILD/build.log" >&2; die "out-of-tree module build failed"; }
  mkdir -p "$MODDIR/extra"
  cp "$BUILD/irq_sim.ko" "$BUILD/gpio-sim.ko" "$MODDIR/extra/"
  depmod -b "$KROOT" "$KVER"
  touch "$BUILD/.built"
fi
[ -f "$MODDIR/modules.dep" ] || depmod -b "$KROOT" "$KVER"

# ---------------------------------------------------------------- 5. initramfs
INITRD=$CACHE/initramfs-$KVER.cpio.gz
# what init needs to build the root, loaded in order
INIT_MODS=(virtio_pci 9pnet_virtio 9p overlay)
# the virtual devices: one group per device, init loads the groups in parallel (from RAM: faster
# than modprobe over 9p under TCG). "module params..." per entry.
DEV_camera=("vivid n_devs=2 node_types=0x1,0x1")
DEV_sound=("snd-aloop")
DEV_gpio=("gpio-sim")
stamp=$( {
  cat "$HW_DIR/guest/init"
  echo "$KVER $KPKGVER ${INIT_MODS[*]} ${DEV_camera[*]} ${DEV_sound[*]} ${DEV_gpio[*]}"
  sha256sum /bin/busybox "$MODDIR/extra/"*.ko
} | sha256sum | cut -d' ' -f1)
if [ ! -s "$INITRD" ] || [ "$(cat "$INITRD.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building initramfs"
  declare -A seen=()
  order=()
  add_mod() { # NAME or relative path: dependencies first
    local rel=$1 line dep
    if [[ $rel != */* ]]; then
      line=$(grep -E "/${rel//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -1) ||
        die "module $rel not in $MODDIR/modules.dep"
      rel=${line%%:*}
    fi
    [ -z "${seen[$rel]:-}" ] || return 0
    seen[$rel]=1
    line=$(awk -F: -v m="$rel" '$1 == m { print; exit }' "$MODDIR/modules.dep")
    for dep in ${line#*:}; do add_mod "$dep"; done
    order+=("$rel")
  }
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,dev,proc,sys,mods,share,lower,rw,newroot}
  cp /bin/busybox "$stage/bin/busybox"
  install -m 0755 "$HW_DIR/guest/init" "$stage/init"
  mknod "$stage/dev/console" c 5 1
  emit_group() { # FILE "module params"...: the modules with their dependencies, in load order
    local file=$1 entry rel
    shift
    order=()
    for entry in "$@"; do
      add_mod "${entry%% *}"
      # the last one added is the module itself: it carries the parameters
      [[ $entry == *" "* ]] && order[-1]="${order[-1]} ${entry#* }"
    done
    : >"$file"
    for rel in "${order[@]}"; do
      cp "$MODDIR/${rel%% *}" "$stage/mods/"
      echo "${rel##*/}" >>"$file"
    done
  }
  emit_group "$stage/mods/order" "${INIT_MODS[@]}"
  emit_group "$stage/mods/dev-camera" "${DEV_camera[@]}"
  emit_group "$stage/mods/dev-sound" "${DEV_sound[@]}"
  emit_group "$stage/mods/dev-gpio" "${DEV_gpio[@]}"
  (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  echo "$stamp" >"$INITRD.stamp"
  rm -rf "$stage"
  trap - EXIT
fi

# ---------------------------------------------------------------- 6. GStreamer registry
# The guest sees the host's plugins through 9p; a registry built here spares it a plugin scan
# (many seconds under TCG). gst only rewrites it when plugins changed.
GST_REG=$CACHE/gst-registry.x86_64.bin
GST_REGISTRY=$GST_REG GST_REGISTRY_FORK=no gst-inspect-1.0 >/dev/null 2>&1 || true

# ---------------------------------------------------------------- 7. the booted box's root
# A minimal Debian 12 with systemd, for hw-tests/box/run.sh (the package installed and run under
# its unit). Rebuilt only when its package list changes.
ROOMBOX_HW_CACHE=$CACHE bash "$HW_DIR/box/setup.sh"

# ---------------------------------------------------------------- record
cat >"$CACHE/rig.env.tmp" <<EOF
# written by hw-tests/setup.sh; read by hw-tests/run-in-guest.sh
KVER=$KVER
KPKGVER=$KPKGVER
KERNEL=$([ -s "$VMLINUX" ] && echo "$VMLINUX" || echo "$VMLINUZ")
INITRD=$INITRD
INITRD_STAMP=$stamp
MODDIR=$KROOT/lib/modules
GST_REGISTRY=$GST_REG
INIT_SHA=$(sha256sum "$HW_DIR/guest/init" | cut -d' ' -f1)
EOF
mv "$CACHE/rig.env.tmp" "$CACHE/rig.env"
log "ready in $(($(date +%s) - t0)) s: kernel $KVER ($KPKGVER), cache $CACHE"

#!/usr/bin/env bash
# hw-tests/run-in-guest.sh — run one command inside a QEMU guest with a real Debian 6.1 kernel and
# virtual devices (vivid camera, snd-aloop sound card, gpio-sim buttons and LEDs).
#
# Usage:
#   hw-tests/run-in-guest.sh [OPTIONS] -- CMD [ARG...]
# Options:
#   --timeout S      kill QEMU after S seconds (default $ROOMBOX_HW_TIMEOUT or 600); exit 124
#   --results DIR    host dir shared writable into the guest at the same path, exported to CMD as
#                    ROOMBOX_HW_RESULTS (default: a fresh temp dir, deleted after a success
#                    unless --keep; kept and printed after a failure). The rig's own files go in
#                    DIR/.rbx/ (console.log, setup.log, dmesg.log, hw.env, rc).
#   --share DIR      another host dir, writable in the guest at the same path (repeatable)
#   --env NAME=VAL   set a variable for CMD (repeatable)
#   --udev           start systemd-udevd in the guest before CMD (about 1-3 s more): gives udev
#                    events and /dev/v4l/by-* links to code that monitors udev; without it only
#                    kernel uevents (netlink "kernel" source) exist. Also ROOMBOX_HW_UDEV=1.
#   --quiet          do not stream the guest console; print it only when CMD fails
#   --keep           keep the temp results dir after a success
#   --boot ROOT      boot ROOT (a Debian root directory, hw-tests/box/) with its own systemd as
#                    PID 1 instead of chrooting into the host's /: the guest is a board, and CMD
#                    runs as root from a unit once the system is up (`systemctl is-system-running
#                    --wait` tells it when). Only the results dir and --share dirs are seen from
#                    the host; RESULTS must not be under /tmp (the box's tmpfiles empty it at
#                    boot). No hw.env or rig variables: CMD finds the devices as a board does.
#
# Prerequisite: hw-tests/setup.sh (run-in-guest.sh tells you when it is needed).
#
# Inside the guest the whole host filesystem is visible read-only at the same paths, under a
# tmpfs overlay (writes succeed but vanish at power-off); CMD runs as root in the caller's current
# directory, so `target/debug/roombox`, `$CARGO_TARGET_DIR/debug/roombox` and repo scripts work.
# No network device exists in the guest.
#
# CMD's environment: PATH, HOME, USER, LANG, LC_*, TZ, TERM, RUST_*, CARGO_*, ROOMBOX_*, GST_DEBUG*
# and G_MESSAGES_DEBUG pass through from the caller, then --env, then the rig's variables:
#   ROOMBOX_HW_GUEST=1  ROOMBOX_HW_MODE=sim
#   ROOMBOX_HW_DIR, ROOMBOX_HW_LIB           this hw-tests dir and its lib.sh (source it for helpers)
#   ROOMBOX_HW_RESULTS                       the writable results dir (same path on the host)
#   ROOMBOX_HW_VIDEO=/dev/video0             vivid capture node; ROOMBOX_HW_VIVID_DEVICE=vivid.0
#   ROOMBOX_HW_ALSA_CARD=Loopback
#   ROOMBOX_HW_MIC=hw:Loopback,1,0           the agent captures its microphone here ...
#   ROOMBOX_HW_MIC_FEED=hw:Loopback,0,0      ... what a test plays here
#   ROOMBOX_HW_SPEAKER=hw:Loopback,0,1       the agent plays its loudspeaker here ...
#   ROOMBOX_HW_SPEAKER_TAP=hw:Loopback,1,1   ... and a test captures it here
#   ROOMBOX_HW_GPIOCHIP=/dev/gpiochipN       ROOMBOX_HW_GPIOCHIP_NAME=gpiochipN
#   ROOMBOX_HW_GPIO_SIM_DIR=/sys/devices/platform/gpio-sim.0/gpiochipN
#   ROOMBOX_HW_BUTTONS="btn-join btn-mute btn-camera"   ROOMBOX_HW_LEDS="led-red led-green led-blue"
#   ROOMBOX_HW_GPIO_<LINE>_OFFSET / _PULL / _VALUE   per line, LINE = BTN_JOIN ... LED_BLUE:
#                                            the line offset, and its gpio-sim sysfs pull and value
#   GST_REGISTRY                             a prebuilt plugin registry (saves a rescan)
#
# Exit status: CMD's; 124 on timeout; 125 when the guest failed before or around CMD.
# On stderr a last line gives boot-to-command time, wall time and QEMU's peak RSS.
set -euo pipefail

HW_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ROOMBOX_HW_CACHE:-/var/cache/roombox-hw}

die() { printf 'run-in-guest: %s\n' "$*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2; }

timeout_s=${ROOMBOX_HW_TIMEOUT:-600}
results=""
quiet=0
keep=0
udev=${ROOMBOX_HW_UDEV:-0}
boot_root=""
shares=()
envs=()
while (($#)); do
  case $1 in
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --results) results=${2:?}; shift 2 ;;
    --share) shares+=("${2:?}"); shift 2 ;;
    --env) [[ ${2:?} == [A-Za-z_]*=* ]] || die "--env wants NAME=VALUE"; envs+=("$2"); shift 2 ;;
    --quiet) quiet=1; shift ;;
    --udev) udev=1; shift ;;
    --keep) keep=1; shift ;;
    --boot) boot_root=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    *) die "unknown option $1 (put the command after --)" ;;
  esac
done
(($#)) || usage
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"

[ -f "$CACHE/rig.env" ] || die "the rig is not set up: run hw-tests/setup.sh"
# shellcheck source=/dev/null
. "$CACHE/rig.env"
[ "$(sha256sum "$HW_DIR/guest/init" | cut -d' ' -f1)" = "${INIT_SHA:-}" ] ||
  die "hw-tests/guest/init changed since the initramfs was built: run hw-tests/setup.sh"
if [ ! -s "$KERNEL" ] || [ ! -s "$INITRD" ]; then
  die "kernel or initramfs missing: run hw-tests/setup.sh"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run hw-tests/setup.sh"
if [ "$udev" = 1 ] && [ ! -x /lib/systemd/systemd-udevd ]; then
  die "--udev needs systemd-udevd on the host (package udev): run hw-tests/setup.sh"
fi

check_path() { # a host path the guest mounts at the same place
  case $1 in
    *\'* | *$'\n'*) die "path with a quote or newline is not supported: $1" ;;
    / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | /run | /run/*)
      die "cannot share $1: the guest mounts its own there" ;;
  esac
}

auto_results=0
if [ -z "$results" ]; then
  results=$(mktemp -d "${TMPDIR:-/tmp}/roombox-hw.XXXXXX")
  auto_results=1
fi
mkdir -p "$results"
results=$(realpath "$results")
check_path "$results"
if [ -n "$boot_root" ]; then
  [ -x "$boot_root/lib/systemd/systemd" ] || die "--boot $boot_root: no /lib/systemd/systemd in it"
  boot_root=$(realpath "$boot_root")
  case $results/ in
    /tmp/* | /var/tmp/*) die "--boot: the results dir must not be under /tmp (the box empties it)" ;;
  esac
fi
C=$results/.rbx
mkdir -p "$C"
rm -f "$C"/{rc,stage2-rc,started,init-error,setup.log,dmesg.log,console.log,hw.env,qemu.*}

real_shares=()
for s in "${shares[@]}"; do
  mkdir -p "$s"
  s=$(realpath "$s")
  check_path "$s"
  real_shares+=("$s")
done

{
  echo "# written by hw-tests/run-in-guest.sh, read by guest/init (busybox sh)"
  echo "RBX_SHARE='$results'"
  echo "RBX_MODDIR='$MODDIR'"
  echo "RBX_STAGE2='$HW_DIR/guest/stage2.sh'"
  echo "RBX_DEBUG=${ROOMBOX_HW_DEBUG:-0}"
  echo "RBX_UDEV=$udev"
  echo "RBX_BOOT=$([ -n "$boot_root" ] && echo 1 || echo 0)"
  echo "RBX_NSHARES=${#real_shares[@]}"
  for i in "${!real_shares[@]}"; do echo "RBX_SHARE_$((i + 1))='${real_shares[$i]}'"; done
} >"$C/boot.conf"

cwd=$(pwd -P)
if [ -n "$boot_root" ]; then
  {
    echo "# written by hw-tests/run-in-guest.sh, run by the booted box's rbx-command.service"
    echo "export ROOMBOX_HW_GUEST=1 ROOMBOX_HW_MODE=boot"
    printf 'export ROOMBOX_HW_RESULTS=%q\n' "$results"
    for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
    printf 'cd -- %q || exit 126\n' "$results"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
  } >"$C/cmd.sh"
else
{
  echo "# written by hw-tests/run-in-guest.sh, run by guest/stage2.sh"
  while IFS= read -r name; do
    if [[ $name =~ ^(PATH|HOME|USER|LANG|LC_[A-Z_]+|TZ|TERM|RUST_[A-Z0-9_]+|CARGO_[A-Z0-9_]+|ROOMBOX_[A-Z0-9_]+|GST_DEBUG[A-Z_]*|G_MESSAGES_DEBUG)$ ]]; then
      printf 'export %s=%q\n' "$name" "${!name}"
    fi
  done < <(compgen -e)
  printf 'export GST_REGISTRY=%q\n' "$GST_REGISTRY"
  for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
  printf '. %q\n' "$C/hw.env"
  printf 'cd -- %q || exit 126\n' "$cwd"
  printf 'exec'
  printf ' %q' "$@"
  printf '\n'
} >"$C/cmd.sh"
fi

# Hardware KVM where there is some; TCG under PVM (stock kernels hang there) or without KVM.
# shellcheck disable=SC2054 # commas are QEMU's
accel=(-accel tcg,thread=multi -cpu max)
case ${ROOMBOX_HW_ACCEL:-auto} in
  kvm) accel=(-accel kvm -cpu host) ;;
  tcg) ;;
  auto)
    if [ ! -e /sys/module/kvm_pvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
      { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
      accel=(-accel kvm -cpu host)
    fi
    ;;
esac

# shellcheck disable=SC2054 # commas are QEMU's
qemu=(
  qemu-system-x86_64 -nodefaults -no-user-config -machine pc "${accel[@]}"
  -smp 2 -m 1G -display none -monitor none -serial stdio -nic none -no-reboot
  -kernel "$KERNEL" -initrd "$INITRD"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init mitigations=off i8042.noaux i8042.nokbd"
  -fsdev "local,id=hostroot,path=${boot_root:-/},security_model=none,readonly=on,multidevs=remap"
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
  -fsdev "local,id=rbxshare,path=$results,security_model=none,multidevs=remap"
  -device virtio-9p-pci,fsdev=rbxshare,mount_tag=rbxshare
)
for i in "${!real_shares[@]}"; do
  qemu+=(-fsdev "local,id=rbxrw$((i + 1)),path=${real_shares[$i]},security_model=none,multidevs=remap"
    -device "virtio-9p-pci,fsdev=rbxrw$((i + 1)),mount_tag=rbxrw$((i + 1))")
done
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f %M -o "$C/qemu.maxrss")

start=$(date +%s.%N)
set +e
if ((quiet)); then
  "${timer[@]}" timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>"$C/qemu.stderr" |
    sed -u -e 's/\r$//' -e '/^\[ *[0-9.]*\] reboot: Power down$/d' >"$C/console.log"
else
  "${timer[@]}" timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>"$C/qemu.stderr" |
    sed -u -e 's/\r$//' -e '/^\[ *[0-9.]*\] reboot: Power down$/d' | tee "$C/console.log"
fi
qst=${PIPESTATUS[0]}
set -e
end=$(date +%s.%N)

rc=125
why=""
if [ "$qst" = 124 ] || [ "$qst" = 137 ]; then
  rc=124
  why="timed out after ${timeout_s} s"
elif [ -s "$C/rc" ]; then
  rc=$(cat "$C/rc")
  [ "$rc" = 0 ] || why="command exited $rc"
elif [ -s "$C/init-error" ]; then
  why="guest init failed: $(cat "$C/init-error")"
elif [ "$qst" != 0 ]; then
  why="qemu exited $qst"
else
  why="guest stopped without an exit code"
fi

boot="?"
[ -e "$C/started" ] && boot=$(awk -v a="$start" -v b="$(stat -c %.3Y "$C/started")" \
  'BEGIN { printf "%.1f", b - a }')
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
rss="?"
if [ -s "$C/qemu.maxrss" ]; then
  kb=$(tail -1 "$C/qemu.maxrss")
  [[ $kb =~ ^[0-9]+$ ]] && rss="$((kb / 1024)) MiB"
fi

if [ "$rc" != 0 ]; then
  {
    echo "run-in-guest: FAILED: $why"
    if ((quiet)) && [ -s "$C/console.log" ]; then
      echo "----- guest console ($C/console.log)"
      cat "$C/console.log"
    fi
    # the setup log matters only when the guest never got to run CMD
    logs=(init-error qemu.stderr)
    [ -e "$C/started" ] || logs=(init-error setup.log qemu.stderr)
    for f in "${logs[@]}"; do
      [ -s "$C/$f" ] || continue
      echo "----- $f (last 30 lines of $C/$f)"
      tail -n 30 "$C/$f"
    done
    if [ -s "$C/dmesg.log" ]; then
      echo "----- guest kernel log (last 25 lines of $C/dmesg.log)"
      tail -n 25 "$C/dmesg.log"
    fi
    echo "----- results kept in $results"
  } >&2
  auto_results=0
fi
echo "run-in-guest: exit $rc; boot-to-command ${boot} s; wall ${wall} s; QEMU peak RSS ${rss}" >&2
if ((auto_results)) && ((!keep)); then
  rm -rf "$results"
fi
exit "$rc"

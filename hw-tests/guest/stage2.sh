#!/usr/bin/env bash
# Guest-side second stage of the hw-tests rig. guest/init runs it with the host's bash, chrooted
# into the guest root (host / read-only under a tmpfs overlay). Read live from the host through
# 9p, so edits take effect on the next boot without re-running setup.sh.
#
# It loads the virtual devices, writes their locations to $RBX_SHARE/.rbx/hw.env, runs the
# command that run-in-guest.sh wrote to $RBX_SHARE/.rbx/cmd.sh (output on the console), and
# writes the command's exit code to $RBX_SHARE/.rbx/rc. Its own log is .rbx/setup.log.
#
# Devices it makes:
#   vivid       two capture nodes (n_devs=2 node_types=0x1,0x1) on platform device vivid.0:
#               the camera (the first) and the share's HDMI grabber (the second)
#   snd-aloop   card "Loopback": what is played into hw:Loopback,0,N is captured at hw:Loopback,1,N
#   gpio-sim    one chip, lines 0-5 named btn-join btn-mute btn-camera (inputs, pulled up =
#               released, active-low) and led-red led-green led-blue (outputs, pulled down)
set -euo pipefail

C=$RBX_SHARE/.rbx
HW_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec 3>/dev/console 4>/dev/console
exec >>"$C/setup.log" 2>&1
PS4='+ stage2 ${EPOCHREALTIME}: '
set -x

fail() {
	set +x
	echo "stage2: $*" | tee -a "$C/setup.log" >&4
	dmesg >"$C/dmesg.log" 2>&1
	echo 125 >"$C/rc"
	exit 125
}
trap 'fail "stage2.sh line $LINENO: command failed"' ERR

# Under TCG every exec of a dynamic binary costs ~0.1 s: use bash builtins where it matters.
nap() { read -rt "$1" <> <(:) || true; }
wait_for() { # PATH TIMEOUT_S
	local i
	for ((i = 0; i < $2 * 50; i++)); do
		[ -e "$1" ] && return 0
		nap 0.02
	done
	return 1
}
read -r up _ </proc/uptime
echo "stage2: start at guest uptime $up s"

BUTTONS=(btn-join btn-mute btn-camera)
LEDS=(led-red led-green led-blue)
LINES=("${BUTTONS[@]}" "${LEDS[@]}")

# guest/init loaded the drivers from the initramfs (module parameters: setup.sh DEV_*)
for g in /run/rbx/dev-*; do
	[ -e "$g" ] || continue
	read -r msg <"$g"
	fail "guest init: $msg"
done
for m in vivid snd_aloop gpio_sim; do
	[ -d "/sys/module/$m" ] || fail "module $m is not loaded"
done

# ------------------------------------------------------------------ GPIO
[ -d /sys/kernel/config/gpio-sim ] || mount -t configfs configfs /sys/kernel/config ||
	fail "mount configfs"
G=/sys/kernel/config/gpio-sim/roombox
mkdir "$G" "$G/bank0" || fail "gpio-sim configfs"
echo "${#LINES[@]}" >"$G/bank0/num_lines"
echo roombox-sim >"$G/bank0/label"
lines=()
for i in "${!LINES[@]}"; do lines+=("$G/bank0/line$i"); done
mkdir "${lines[@]}" || fail "gpio-sim lines"
for i in "${!LINES[@]}"; do
	echo "${LINES[$i]}" >"$G/bank0/line$i/name"
done
echo 1 >"$G/live" || fail "gpio-sim live"
read -r chip <"$G/bank0/chip_name"
read -r simdev <"$G/dev_name"
simdir=/sys/devices/platform/$simdev/$chip
wait_for "/dev/$chip" 5 || fail "no /dev/$chip"
for i in "${!BUTTONS[@]}"; do
	echo pull-up >"$simdir/sim_gpio$i/pull" # released: active-low buttons idle high
done

# ------------------------------------------------------------------ camera
# vivid is one platform device (vivid.0) holding both instances: the camera's node first, the
# grabber's second.
vnode="" gnode=""
for ((i = 0; i < 250; i++)); do
	nodes=()
	for f in /sys/bus/platform/devices/vivid.0/video4linux/video*; do
		[ -e "$f" ] && nodes+=("${f##*/}")
	done
	if ((${#nodes[@]} >= 2)); then
		mapfile -t nodes < <(printf '%s\n' "${nodes[@]}" | sort -V)
		vnode=${nodes[0]} gnode=${nodes[1]}
		[ -e "/dev/$vnode" ] && [ -e "/dev/$gnode" ] && break
	fi
	nap 0.02
done
if [ -z "$vnode" ] || [ ! -e "/dev/$vnode" ]; then fail "vivid made no video node"; fi
[ -n "$gnode" ] && [ -e "/dev/$gnode" ] || fail "vivid made no second video node (the grabber)"

# ------------------------------------------------------------------ sound
wait_for /proc/asound/Loopback 5 || fail "no Loopback sound card"

# ------------------------------------------------------------------ udev (optional)
RBX_UDEV=0
# shellcheck source=/dev/null
. "$C/boot.conf"
if [ "$RBX_UDEV" = 1 ]; then
	# Both vivid instances hang off the one platform device, so udev gives them the same
	# by-path link (platform-vivid.0-video-index0) and it points at whichever was added last.
	# Real cameras and grabbers sit on USB ports of their own; here each gets a by-id link by
	# its instance name, as a USB device's serial would give it, and keeps it across a rebind.
	mkdir -p /run/udev/rules.d
	cat >/run/udev/rules.d/70-rig-vivid.rules <<'RULES'
SUBSYSTEM=="video4linux", ATTR{name}=="vivid-000-vid-cap", SYMLINK+="v4l/by-id/rig-vivid-camera-video-index0"
SUBSYSTEM=="video4linux", ATTR{name}=="vivid-001-vid-cap", SYMLINK+="v4l/by-id/rig-vivid-grabber-video-index0"
RULES
	/lib/systemd/systemd-udevd --daemon --resolve-names=never || fail "systemd-udevd"
	# only the rig's devices: replaying every device's rules costs 10+ s under TCG
	udevadm trigger --action=add --subsystem-match=video4linux --subsystem-match=media \
		--subsystem-match=sound --subsystem-match=gpio || fail "udevadm trigger"
	udevadm settle --timeout=30 || fail "udevadm settle"
fi

# ------------------------------------------------------------------ environment for the command
{
	echo "# written by hw-tests/guest/stage2.sh"
	printf 'export %s=%q\n' \
		ROOMBOX_HW_GUEST 1 \
		ROOMBOX_HW_MODE sim \
		ROOMBOX_HW_DIR "$HW_DIR" \
		ROOMBOX_HW_LIB "$HW_DIR/lib.sh" \
		ROOMBOX_HW_RESULTS "$RBX_SHARE" \
		ROOMBOX_HW_VIDEO "/dev/$vnode" \
		ROOMBOX_HW_VIVID_DEVICE vivid.0 \
		ROOMBOX_HW_GRABBER "/dev/$gnode" \
		ROOMBOX_HW_ALSA_CARD Loopback \
		ROOMBOX_HW_MIC hw:Loopback,1,0 \
		ROOMBOX_HW_MIC_FEED hw:Loopback,0,0 \
		ROOMBOX_HW_SPEAKER hw:Loopback,0,1 \
		ROOMBOX_HW_SPEAKER_TAP hw:Loopback,1,1 \
		ROOMBOX_HW_GPIOCHIP "/dev/$chip" \
		ROOMBOX_HW_GPIOCHIP_NAME "$chip" \
		ROOMBOX_HW_GPIO_SIM_DIR "$simdir" \
		ROOMBOX_HW_BUTTONS "${BUTTONS[*]}" \
		ROOMBOX_HW_LEDS "${LEDS[*]}"
	for i in "${!LINES[@]}"; do
		v=${LINES[$i]^^}
		v=ROOMBOX_HW_GPIO_${v//-/_}
		printf 'export %s=%q\n' \
			"${v}_OFFSET" "$i" \
			"${v}_PULL" "$simdir/sim_gpio$i/pull" \
			"${v}_VALUE" "$simdir/sim_gpio$i/value"
	done
} >"$C/hw.env"

set +x
read -r up _ </proc/uptime
echo "stage2: devices ready at guest uptime $up s"
: >"$C/started"
# run the command: base env + what run-in-guest.sh passed + hw.env (sourced by cmd.sh)
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 \
	/bin/bash "$C/cmd.sh" </dev/null >&3 2>&4 && rc=0 || rc=$?
dmesg >"$C/dmesg.log" 2>&1
echo "$rc" >"$C/rc"
sync
exit "$rc"

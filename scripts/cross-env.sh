# Sourced, not run: the environment that cross-builds roombox for arm64 (aarch64-unknown-linux-gnu)
# on Debian with multiarch — the arm64 -dev packages under /usr/lib/aarch64-linux-gnu and Debian's
# gcc-aarch64-linux-gnu. `scripts/package.sh arm64` and the arm64 test step source it.
# Debian's cross linker finds the multiarch libraries by itself; pkg-config must be the target's.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Debian's wrapper reads only the arm64 .pc files (/usr/lib/aarch64-linux-gnu/pkgconfig).
export PKG_CONFIG_aarch64_unknown_linux_gnu=aarch64-linux-gnu-pkg-config
export PKG_CONFIG_ALLOW_CROSS=1
# libgstreamer-plugins-{base,bad}1.0-dev:arm64 cannot be installed beside the amd64 ones (not
# Multi-Arch: same), so scripts/setup.sh --packaging unpacks them here; their .pc files come first.
export ROOMBOX_ARM64_DEV="${ROOMBOX_ARM64_DEV:-$HOME/.cache/roombox-arm64-dev}"
# (system-deps, under gstreamer-sys, reads the plain PKG_CONFIG_PATH, not the per-target one; no
# host-side build script looks for these libraries.)
export PKG_CONFIG_PATH="$ROOMBOX_ARM64_DEV/usr/lib/aarch64-linux-gnu/pkgconfig"
# binfmt_misc is not mounted here, so cargo run/test name qemu explicitly. No -L: multiarch's
# libc6:arm64 (a dependency of the arm64 -dev packages) provides /lib/ld-linux-aarch64.so.1. With
# `-L /usr/aarch64-linux-gnu` the loader comes from libc6-arm64-cross (2.36-8cross1) while libc.so.6
# comes from libc6:arm64 (2.36-9+deb12u14): a single-threaded program runs, but the first
# pthread_create spins forever (measured with a 5-line C program and with roombox's tokio runtime).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
# GStreamer scans its plugins in a child, gst-plugin-scanner: an arm64 binary, which the kernel
# cannot exec without binfmt_misc, and gst_init then waits for it forever. Scan in-process instead.
export GST_REGISTRY_FORK=no

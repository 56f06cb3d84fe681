# Sourced, not run: the environment that cross-builds roombox for arm64 (aarch64-unknown-linux-gnu)
# on Debian: the arm64 runtime libraries through multiarch, the arm64 -dev packages unpacked into a
# sysroot of the project's own, and Debian's gcc-aarch64-linux-gnu. `scripts/package.sh arm64` and
# scripts/test-arm64.sh source it; `scripts/setup.sh --packaging` installs and unpacks what it needs.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# whisper.cpp (whisper-rs-sys) is C++ built with cmake: the cmake crate passes these compilers on
# and sets CMAKE_SYSTEM_NAME/PROCESSOR itself when the target is not the host. bindgen parses its
# header for aarch64 against the cross libc's headers (libc6-dev-arm64-cross).
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu"
# pkg-config reads the arm64 sysroot that `scripts/setup.sh --packaging` unpacks (the -dev
# packages are never installed for arm64), and prefixes the -L/-I paths it prints with it. The
# plain variables, not the per-target ones: system-deps, under gstreamer-sys, reads those, and no
# host-side build script asks pkg-config for anything.
export ROOMBOX_ARM64_SYSROOT="${ROOMBOX_ARM64_SYSROOT:-$HOME/.cache/roombox-arm64-sysroot}"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR="$ROOMBOX_ARM64_SYSROOT"
export PKG_CONFIG_LIBDIR="$ROOMBOX_ARM64_SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$ROOMBOX_ARM64_SYSROOT/usr/share/pkgconfig"
unset PKG_CONFIG_PATH
# binfmt_misc is not mounted here, so cargo run/test name qemu explicitly. No -L: multiarch's
# libc6:arm64 (a dependency of the arm64 runtime libraries) provides /lib/ld-linux-aarch64.so.1. With
# `-L /usr/aarch64-linux-gnu` the loader comes from libc6-arm64-cross (2.36-8cross1) while libc.so.6
# comes from libc6:arm64 (2.36-9+deb12u14): a single-threaded program runs, but the first
# pthread_create spins forever (measured with a 5-line C program and with roombox's tokio runtime).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
# GStreamer scans its plugins in a child, gst-plugin-scanner: an arm64 binary, which the kernel
# cannot exec without binfmt_misc, and gst_init then waits for it forever. Scan in-process instead.
export GST_REGISTRY_FORK=no

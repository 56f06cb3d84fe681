SUMMARY = "roombox meeting-room box agent"
DESCRIPTION = "Captures camera and microphone, encodes once, joins WebRTC rooms as the local \
participant, records, takes GPIO buttons, drives LEDs and reports to a fleet over MQTT."
SECTION = "multimedia"

# The repository has no LICENSE file yet: the checksum covers the `license = "Apache-2.0"`
# line of Cargo.toml (yocto/check-layer.sh re-checks it against the repository).
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=7;endline=7;md5=2507bd5f0713f05419cd2f22fa06fe62"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# --- Sources --------------------------------------------------------------------------------
# By default the recipe builds the roombox repository this layer is part of (ROOMBOX_REPO_DIR,
# set in conf/layer.conf to the directory two levels above the layer), branch main, at its
# newest commit. For a release, pin SRCREV (and point ROOMBOX_GIT_URI at your server) in
# local.conf or a bbappend:
#     ROOMBOX_GIT_URI = "git://git.example.com/roombox.git;protocol=ssh;user=git"
#     SRCREV:pn-roombox = "<commit>"
# For day-to-day work on a checkout, externalsrc skips the fetch (see yocto/README.md).
PV = "0.1.0+git"
ROOMBOX_GIT_URI ?= "git://${ROOMBOX_REPO_DIR};protocol=file"
ROOMBOX_GIT_BRANCH ?= "main"
SRC_URI = " \
    ${ROOMBOX_GIT_URI};branch=${ROOMBOX_GIT_BRANCH};destsuffix=git \
    file://60-roombox-gpio.rules \
    file://61-roombox-rpi.rules \
    file://roombox-rpi.conf \
    file://roombox-tegra.conf \
"
SRCREV ?= "${AUTOREV}"

# scarthgap unpacks into WORKDIR; styhead and later into UNPACKDIR (which they define).
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/git"

# Every crate of Cargo.lock as a crate:// SRC_URI with its checksum, so do_fetch gets them
# and cargo builds offline (--frozen). Generated, never edited by hand:
#     bitbake -c update_crates roombox        (writes it next to this recipe)
# or, without BitBake, from the repository root:
#     python3 yocto/gen-crates-inc.py
# Regenerate it whenever Cargo.lock changes; yocto/check-layer.sh fails while it is stale.
require ${BPN}-crates.inc

# --- Build ----------------------------------------------------------------------------------
# pkg-config finds these for the -sys crates: gstreamer-{,base,app,video,audio,pbutils}-sys
# (GStreamer >= 1.22, feature v1_22) and alsa-sys. gstreamer-webrtc/-sdp are dev-dependencies
# only, so plugins-bad is a runtime dependency, not a build one. libsystemd is not linked
# (sd-notify and tracing-journald speak the sockets themselves); nor are libudev or OpenSSL.
DEPENDS += "alsa-lib gstreamer1.0 gstreamer1.0-plugins-base"

# The v4l crate's v4l2-sys-mit runs bindgen in its build script: libclang on the build host,
# reading the target's <linux/videodev2.h>. bindgen passes --target from cargo's TARGET itself.
# clang-native comes from oe-core (walnascar and later) or meta-clang (scarthgap, styhead).
DEPENDS += "clang-native"
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${STAGING_DIR_TARGET}"

# whisper-rs-sys (on-device transcription) builds the vendored whisper.cpp with cmake; the
# repository's .cargo/config.toml sets GGML_NATIVE=OFF, so it never tunes for the build host.
DEPENDS += "cmake-native"

# aws-lc-sys 0.47 (rustls through rumqttc and webrtc) builds with its cc builder here: it has
# pregenerated "universal" bindings (no bindgen) and needs neither cmake nor nasm on Linux.
# Only AWS_LC_SYS_CMAKE_BUILDER=1 or its `bindgen`/`fips` features would make it want
# cmake-native (and clang). ring needs the C compiler only.

# Cargo features. `rpi` (rppal: /dev/gpiomem register access and PWM) is on by default on
# Raspberry Pi machines (meta-raspberrypi's `rpi` override). Change with e.g.
#     PACKAGECONFIG:pn-roombox = ""
ROOMBOX_MACHINE_PACKAGECONFIG = ""
ROOMBOX_MACHINE_PACKAGECONFIG:rpi = "rpi"
PACKAGECONFIG ??= "${ROOMBOX_MACHINE_PACKAGECONFIG}"
PACKAGECONFIG[rpi] = ",,"
# Given to cargo directly: not every release's cargo class passes PACKAGECONFIG_CONFARGS on.
CARGO_BUILD_FLAGS:append = "${@bb.utils.contains('PACKAGECONFIG', 'rpi', ' --features rpi', '', d)}"

# Cargo.toml's release profile strips debug info; leave that to OE, which splits it into
# roombox-dbg and strips the binary it packages.
export CARGO_PROFILE_RELEASE_STRIP = "none"

# What is built and installed differs per machine (features, drop-ins, udev rules).
PACKAGE_ARCH = "${MACHINE_ARCH}"

# Its locked crates declare rust-version 1.92 (gstreamer-rs 0.25, glib 0.22). An older rustc
# stops on edition 2024 manifests or the v4 lockfile with messages that do not say this.
# yocto/check-layer.sh keeps this number equal to the highest rust-version in Cargo.lock.
ROOMBOX_MIN_RUST ?= "1.92"
do_configure:prepend() {
    have=$(rustc --version | awk '{print $2}')
    lowest=$(printf '%s\n%s\n' "${ROOMBOX_MIN_RUST}" "$have" | sort -V | head -n 1)
    if [ "$lowest" != "${ROOMBOX_MIN_RUST}" ]; then
        bbfatal "roombox needs rustc ${ROOMBOX_MIN_RUST} or newer (the rust-version its locked crates declare); this build's rustc is $have. See 'Rust version' in yocto/README.md."
    fi
}

# --- User ------------------------------------------------------------------------------------
# The unit runs as roombox:roombox with the supplementary groups video, audio, render and gpio.
# They are made at rootfs time, so files can be owned by them and read-only root filesystems
# work; the sysusers.d file is installed too and finds them present.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio; --system render"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/roombox --no-create-home \
    --shell ${base_sbindir}/nologin --user-group --groups video,audio,render,gpio roombox"

# --- Install ---------------------------------------------------------------------------------
do_install:append() {
    # The unit and the sysusers.d file are taken from the repository, not copied into the layer.
    install -D -m 0644 ${S}/systemd/roombox.service ${D}${systemd_system_unitdir}/roombox.service
    install -D -m 0644 ${S}/systemd/roombox.sysusers ${D}${nonarch_libdir}/sysusers.d/roombox.conf
    # The root installer of signed updates (`roombox update-apply`): started when the agent
    # leaves a request, and at every boot. On an A/B image it installs RAUC bundles
    # (`[update] method = "rauc"`; see yocto/README.md, "Updates with RAUC").
    install -D -m 0644 ${S}/systemd/roombox-update.path ${D}${systemd_system_unitdir}/roombox-update.path
    install -D -m 0644 ${S}/systemd/roombox-update.service ${D}${systemd_system_unitdir}/roombox-update.service

    # /etc/roombox/roombox.toml: every field at its default. Sites add drop-ins in config.d/
    # (see yocto/README.md); the agent itself writes config.d/90-fleet.toml on `set-config`,
    # hence a directory the roombox group may write.
    install -d -m 0755 ${D}${sysconfdir}/roombox
    install -m 0644 ${S}/config/roombox.toml ${D}${sysconfdir}/roombox/roombox.toml
    install -d -m 0770 ${D}${sysconfdir}/roombox/config.d
    chown root:roombox ${D}${sysconfdir}/roombox/config.d

    # The board examples (and the reference file) for people to copy from.
    install -d ${D}${datadir}/roombox/examples
    for f in ${S}/config/*.toml; do
        install -m 0644 "$f" ${D}${datadir}/roombox/examples/
    done

    # roombox.service's Documentation= points here.
    if [ -f ${S}/README.md ]; then
        install -D -m 0644 ${S}/README.md ${D}${docdir}/roombox/README.md
    fi

    install -D -m 0644 ${UNPACKDIR}/60-roombox-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/60-roombox-gpio.rules
}

do_install:append:rpi() {
    install -D -m 0644 ${UNPACKDIR}/roombox-rpi.conf ${D}${systemd_system_unitdir}/roombox.service.d/50-rpi.conf
    install -D -m 0644 ${UNPACKDIR}/61-roombox-rpi.rules ${D}${nonarch_base_libdir}/udev/rules.d/61-roombox-rpi.rules
}

do_install:append:tegra() {
    install -D -m 0644 ${UNPACKDIR}/roombox-tegra.conf ${D}${systemd_system_unitdir}/roombox.service.d/50-tegra.conf
}

FILES:${PN} += "${nonarch_libdir}/sysusers.d \
    ${systemd_system_unitdir}/roombox.service.d \
"
CONFFILES:${PN} = "${sysconfdir}/roombox/roombox.toml"

SYSTEMD_SERVICE:${PN} = "roombox.service roombox-update.path roombox-update.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The GStreamer elements the agent builds its pipelines from: capture, encoding and recording
# (src/media), and playing rooms' remote participants (src/room/playback.rs). Hardware
# encoders, x264, the libav AAC encoder and H.264 decoder, and echo cancellation are in
# packagegroup-roombox, by machine. yocto/check-layer.sh fails when the source starts using an
# element whose package is not listed.
RDEPENDS:${PN} = " \
    gstreamer1.0 \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audiomixer \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-compositor \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-pango \
    gstreamer1.0-plugins-base-playback \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-videorate \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-base-volume \
    gstreamer1.0-plugins-good-audioparsers \
    gstreamer1.0-plugins-good-autodetect \
    gstreamer1.0-plugins-good-flv \
    gstreamer1.0-plugins-good-isomp4 \
    gstreamer1.0-plugins-good-level \
    gstreamer1.0-plugins-good-matroska \
    gstreamer1.0-plugins-good-multifile \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-bad-audiobuffersplit \
    gstreamer1.0-plugins-bad-kms \
    gstreamer1.0-plugins-bad-opusparse \
    gstreamer1.0-plugins-bad-rtmp2 \
    gstreamer1.0-plugins-bad-videoparsersbad \
"
# rtmps:// outputs: rtmp2sink's TLS goes through GIO, which needs glib-networking.
RRECOMMENDS:${PN} = "glib-networking"

python () {
    # The Opus and KMS plugins above exist only with conf/include/roombox.inc; say so now
    # rather than fail at do_rootfs of an image.
    if d.getVar('ROOMBOX_INC_USED') != '1':
        raise bb.parse.SkipRecipe("add 'require conf/include/roombox.inc' to conf/local.conf "
                                  "(see yocto/README.md in the roombox repository)")
    # The unit is a systemd service and nothing else starts the agent.
    if not bb.utils.contains('DISTRO_FEATURES', 'systemd', True, False, d):
        raise bb.parse.SkipRecipe("roombox runs as a systemd service: DISTRO_FEATURES needs "
                                  "'systemd' (see yocto/README.md)")
}

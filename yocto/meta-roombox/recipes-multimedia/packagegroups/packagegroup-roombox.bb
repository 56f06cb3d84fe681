SUMMARY = "roombox with the codecs and board plugins it uses on this machine"
DESCRIPTION = "roombox itself pulls in the GStreamer elements every box uses. This adds the \
H.264 encoders (hardware per board, x264 as the fallback), the AAC encoder for MP4 recordings, \
echo cancellation and the board's camera sources."
LICENSE = "MIT"

# The list depends on MACHINE overrides, so this is not an allarch packagegroup.
# (Set before `inherit packagegroup`, which would otherwise make it "all".)
PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

# x264enc is the only H.264 encoder on a Raspberry Pi 5 and a Jetson Orin Nano, and the fallback
# on every board. gstreamer1.0-libav has avenc_aac, the AAC encoder for MP4 recordings, and
# avdec_h264, which decodes the video of a room's remote participants. Both carry
# LICENSE_FLAGS = "commercial" (see yocto/README.md). Set ROOMBOX_COMMERCIAL_CODECS = "0" to
# leave them out: boxes then need a hardware encoder, recording.format = "mkv", and show no
# remote video.
ROOMBOX_COMMERCIAL_CODECS ?= "1"

def roombox_layer(d, collection, packages):
    """`packages` when the layer `collection` is in the build, else nothing."""
    return packages if collection in (d.getVar('BBFILE_COLLECTIONS') or '').split() else ''

RDEPENDS:${PN} = " \
    roombox \
    ${@oe.utils.conditional('ROOMBOX_COMMERCIAL_CODECS', '1', 'gstreamer1.0-plugins-ugly-x264 gstreamer1.0-libav', '', d)} \
    ${@roombox_layer(d, 'multimedia-layer', 'gstreamer1.0-plugins-bad-webrtcdsp')} \
"

# Raspberry Pi 4: v4l2h264enc (the bcm2835-codec encoder, /dev/video11) is in the
# video4linux2 plugin, which roombox already depends on for v4l2src; named here to keep the
# board's encoder visible. CSI cameras go through libcamera (meta-multimedia).
RDEPENDS:${PN}:append:raspberrypi4 = " gstreamer1.0-plugins-good-video4linux2"
RDEPENDS:${PN}:append:rpi = " ${@roombox_layer(d, 'multimedia-layer', 'libcamera-gst')}"

# NVIDIA Jetson (meta-tegra): nvv4l2h264enc, nvarguscamerasrc with its daemon, and nvvidconv
# to bring NVMM camera buffers into system memory.
RDEPENDS:${PN}:append:tegra = " \
    gstreamer1.0-plugins-nvvideo4linux2 \
    gstreamer1.0-plugins-nvarguscamerasrc \
    gstreamer1.0-plugins-nvvidconv \
    tegra-argus-daemon \
"

require recipes-core/images/core-image-minimal.bb

# After the require: core-image-minimal sets its own SUMMARY and DESCRIPTION.
SUMMARY = "A small image that boots into roombox"
DESCRIPTION = "core-image-minimal with roombox, its codecs and board plugins \
(packagegroup-roombox) and the tools to look at cameras, sound cards and GPIO lines."

# alsa-utils (arecord, aplay, alsamixer) is in oe-core; v4l-utils (v4l2-ctl) and libgpiod-tools
# (gpioinfo, gpioget, gpioset) are in meta-oe and are left out when it is not in the build.
IMAGE_INSTALL:append = " \
    packagegroup-roombox \
    roombox \
    alsa-utils \
    ${@'v4l-utils libgpiod-tools' if 'openembedded-layer' in (d.getVar('BBFILE_COLLECTIONS') or '').split() else ''} \
"

# The init system is a distro choice, so it is not forced here: set it in local.conf or your
# distro (see yocto/README.md). Without systemd the agent would never start; say so early.
python () {
    if not bb.utils.contains('DISTRO_FEATURES', 'systemd', True, False, d):
        raise bb.parse.SkipRecipe("roombox-image needs systemd as init: add "
                                  "DISTRO_FEATURES:append = \" systemd usrmerge\" and "
                                  "VIRTUAL-RUNTIME_init_manager = \"systemd\" to local.conf")
}

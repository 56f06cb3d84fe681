# RAUC's platform configuration for a roombox A/B image, for meta-rauc's rauc-conf recipe
# (scarthgap and later; before scarthgap the same lines go into a rauc_%.bbappend). It installs
# system.conf and the keyring into /etc/rauc/. It needs meta-rauc in bblayers.conf (BitBake stops
# on a bbappend whose recipe no layer has): without RAUC, delete recipes-core/rauc/, and
# 20-update-rauc.toml and the rauc RDEPENDS from the roombox bbappend. The roombox side is
# recipes-multimedia/roombox/files/20-update-rauc.toml; yocto/README.md, "Updates with RAUC".

FILESEXTRAPATHS:prepend := "${THISDIR}/files:"

SRC_URI:append = " \
    file://system.conf \
    file://bundle-ca.pem \
"

# The CA that signs the fleet's bundles (`rauc bundle --cert ... --key ...`): a bundle it did not
# sign is refused by `rauc info` before anything is written to a slot.
RAUC_KEYRING_FILE = "bundle-ca.pem"

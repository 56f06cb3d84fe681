# Site settings for roombox, as config.d drop-ins beside the stock /etc/roombox/roombox.toml
# (which stays untouched, so package upgrades never conflict with local edits). The agent reads
# config.d/*.toml in name order after the main file; keep 90-fleet.toml free for `set-config`.

FILESEXTRAPATHS:prepend := "${THISDIR}/files:"

SRC_URI:append = " \
    file://10-site.toml \
    file://20-update-rauc.toml \
    file://fleet-ca.pem \
"

# Updates over RAUC (A/B slots): the installer calls the rauc command line.
RDEPENDS:${PN}:append = " rauc"

# The client certificate and key are per box: do not bake them into an image that many boxes
# share. Provision them at first boot (or per box at the factory) into /etc/roombox/tls/,
# root:roombox 0640, the paths 10-site.toml names.

do_install:append() {
    install -m 0640 ${UNPACKDIR}/10-site.toml ${D}${sysconfdir}/roombox/config.d/10-site.toml
    chown root:roombox ${D}${sysconfdir}/roombox/config.d/10-site.toml
    install -m 0640 ${UNPACKDIR}/20-update-rauc.toml ${D}${sysconfdir}/roombox/config.d/20-update-rauc.toml
    chown root:roombox ${D}${sysconfdir}/roombox/config.d/20-update-rauc.toml

    install -d -m 0750 ${D}${sysconfdir}/roombox/tls
    chown root:roombox ${D}${sysconfdir}/roombox/tls
    install -m 0644 ${UNPACKDIR}/fleet-ca.pem ${D}${sysconfdir}/roombox/tls/ca.pem
}

CONFFILES:${PN}:append = " ${sysconfdir}/roombox/config.d/10-site.toml ${sysconfdir}/roombox/config.d/20-update-rauc.toml"

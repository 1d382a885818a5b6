# The kiosk's RAUC configuration: an A/B system.conf for the board, and the fleet operator's
# bundle CA as /etc/rauc/keyring.pem.
#
# system.conf is looked up through FILESOVERRIDES, so one file serves a family of boards:
#   files/x86-64/           UEFI PCs and qemux86-64   (bootloader=efi)
#   files/rpi/              Raspberry Pi 4 and 5      (bootloader=uboot)
#   files/imx-generic-bsp/  NXP i.MX boards           (bootloader=uboot)
# Its compatible= is filled in from TELEKIOSK_RAUC_COMPATIBLE (the distro's), the string that
# bundles carry too.
FILESEXTRAPATHS:prepend:telekiosk := "${THISDIR}/files:"

# The keyring is the CA that signs update bundles, NOT the fleet's configuration-signing key. It
# is the operator's and is kept out of this repository: TELEKIOSK_RAUC_KEYRING_DIR names the
# directory on the build host that holds keyring.pem (the distro skips this recipe until it is
# set).
RAUC_KEYRING_FILE:telekiosk = "keyring.pem"
FILESEXTRAPATHS:prepend:telekiosk := "${@(d.getVar('TELEKIOSK_RAUC_KEYRING_DIR') or '') + ':'}"

do_install:append:telekiosk() {
    sed -i -e 's/@TELEKIOSK_RAUC_COMPATIBLE@/${TELEKIOSK_RAUC_COMPATIBLE}/' ${D}${sysconfdir}/rauc/system.conf
    if ! grep -qx 'compatible=${TELEKIOSK_RAUC_COMPATIBLE}' ${D}${sysconfdir}/rauc/system.conf; then
        bbfatal "no telekiosk system.conf for MACHINE ${MACHINE}: add one under files/<override>/ beside rauc-conf.bbappend"
    fi
}

# nooelint: oelint.var.suggestedvar.BUGTRACKER, oelint.var.suggestedvar.CVE_PRODUCT, oelint.var.suggestedvar.SECTION
# (An image has no upstream, no CVE product and no package section: its packages have them.)
SUMMARY = "telekiosk appliance image"
DESCRIPTION = "The kiosk appliance's root file system: telekiosk under systemd on a read-only \
               root, its GStreamer plugins, the TPM software stack, fonts and the RAUC update \
               client. No login of any kind: no getty on the panel or the serial port, no ssh."
LICENSE = "MIT"

inherit core-image

# Only the read-only root: no ssh server, no debug-tweaks, no package management. Set outright,
# so this also drops what EXTRA_IMAGE_FEATURES in a local.conf would add (bitbake.conf appends it
# before the recipe is read): a production image cannot pick up debug-tweaks by accident.
IMAGE_FEATURES = "read-only-rootfs"

# packagegroup-core-boot: base files, systemd, udev, the kernel and the machine's essentials.
# telekiosk pulls in its plugins, TSS libraries, fonts and time zones (RDEPENDS). rauc-conf is
# named, not left to rauc's recommendation, so a build without the operator's keyring stops
# with rauc-conf's reason instead of yielding an image that accepts no update.
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    rauc \
    rauc-conf \
    telekiosk \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"
# RAUC's efi boot backend switches boot entries with efibootmgr.
IMAGE_INSTALL:append:x86-64 = " efibootmgr"

IMAGE_LINGUAS = ""

# The GStreamer plugin sets recommend their -meta packages (every plugin of the set); the kiosk
# asks for the plugins it uses by name.
BAD_RECOMMENDATIONS += "\
    gstreamer1.0-plugins-bad-meta \
    gstreamer1.0-plugins-base-meta \
    gstreamer1.0-plugins-good-meta \
    gstreamer1.0-plugins-ugly-meta \
"

# The root file system as a plain ext4 image too: the RAUC bundle's rootfs slot image.
IMAGE_FSTYPES:append = " ext4"

# No login prompt anywhere: systemd brings getty@ (panel) and serial-getty@ (console) and
# enables them; masking them here keeps the serial port for the kiosk's status lines only.
ROOTFS_POSTPROCESS_COMMAND += "telekiosk_mask_gettys"
telekiosk_mask_gettys[doc] = "Masks every getty unit in the root file system"
telekiosk_mask_gettys() {
    install -d ${IMAGE_ROOTFS}${sysconfdir}/systemd/system
    for unit in getty.target getty@.service serial-getty@.service autovt@.service \
                console-getty.service container-getty@.service; do
        ln -sf /dev/null ${IMAGE_ROOTFS}${sysconfdir}/systemd/system/$unit
    done
}

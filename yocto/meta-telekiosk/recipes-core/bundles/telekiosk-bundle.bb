# nooelint: oelint.file.underscores, oelint.var.mandatoryvar.SRC_URI, oelint.var.bbclassextend, oelint.var.suggestedvar.BUGTRACKER, oelint.var.suggestedvar.CVE_PRODUCT, oelint.var.suggestedvar.SECTION
# (Like an image, a bundle has no version of its own in its name (RAUC_BUNDLE_VERSION is the
# distro's), nothing to fetch (the class takes the image from DEPLOY_DIR_IMAGE), no native
# variant, no upstream, no CVE product and no package section.)
SUMMARY = "telekiosk RAUC update bundle"
DESCRIPTION = "A signed RAUC bundle holding telekiosk-image's root file system, for the \
               inactive A/B slot of a kiosk of this MACHINE."
HOMEPAGE = "https://github.com/telekiosk/telekiosk"
LICENSE = "MIT"

inherit bundle

# Must equal the compatible in the kiosk's /etc/rauc/system.conf (rauc-conf.bbappend): both
# come from TELEKIOSK_RAUC_COMPATIBLE (conf/distro/telekiosk.conf).
RAUC_BUNDLE_COMPATIBLE = "${TELEKIOSK_RAUC_COMPATIBLE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "telekiosk ${DISTRO_VERSION} for ${MACHINE}"
# verity: the bundle's integrity is checked block by block while it installs (and it can be
# streamed over HTTPS); system.conf accepts no other format.
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "telekiosk-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# The fleet operator's bundle signing key and its certificate, which chains to the CA that
# kiosks hold as /etc/rauc/keyring.pem. Set in local.conf or exported through kas
# (yocto/kas/base.yml forwards them); the distro skips this recipe until both are set. The key
# may be a PKCS#11 URI, so it can stay in an HSM. Neither is in this repository, and this is not
# the key that signs the fleet's configuration.
RAUC_KEY_FILE = "${TELEKIOSK_RAUC_KEY_FILE}"
RAUC_CERT_FILE = "${TELEKIOSK_RAUC_CERT_FILE}"

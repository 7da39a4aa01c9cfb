# nooelint: oelint.file.underscores, oelint.var.mandatoryvar.HOMEPAGE - the name is the team plan's (version: RAUC_BUNDLE_VERSION below); rtpmgr has no public web page yet
SUMMARY = "RAUC update bundle of rtpmgr-image"
DESCRIPTION = "A signed verity bundle with the root filesystem of rtpmgr-image for the inactive A/B \
               slot. Install on the box with 'rauc install rtpmgr-bundle-<machine>.raucb'; see docs/ota.md."
LICENSE = "MIT"
# The recipe's own files are MIT: the common licence text is the reference, as for images.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

require recipes-bsp/u-boot/rtpmgr-ab-layout.inc

# bundle.bbclass is meta-rauc's: this recipe is in dynamic-layers/rauc, parsed only with meta-rauc.
# rtpmgr_version: RTPMGR_VERSION and RTPMGR_SRCREV, the commit the image's rtpmgr recipes build.
inherit bundle features_check rtpmgr_version
REQUIRED_DISTRO_FEATURES = "rauc rtpmgr-ab"

SRC_URI = "file://rtpmgr-bundle-hook.sh"

# verity: the payload is checked block by block by dm-verity (and fully before any write by the
# install-check hook below); needed for streaming and adaptive updates later.
# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_FORMAT = "verity"
# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_COMPATIBLE = "${RTPMGR_RAUC_COMPATIBLE}"
# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_DESCRIPTION = "rtpmgr appliance root filesystem"
# The version RAUC records per slot (rauc status) and shows before an install: rtpmgr's version and
# commit (e.g. 0.1.0+git1a2b3c4d5e6f), not the distro's (every poky bundle would be "5.0.x").
# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_VERSION = "${RTPMGR_VERSION}+git${@(d.getVar('RTPMGR_SRCREV') or '')[:12]}"

# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_SLOTS = "rootfs"
# nooelint: oelint.vars.mispell.unknown
RAUC_SLOT_rootfs = "rtpmgr-image"
# nooelint: oelint.vars.mispell.unknown
RAUC_SLOT_rootfs[fstype] = "ext4"

# install-check: rejects a tampered payload before RAUC writes the slot (see the script).
# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_HOOKS[file] = "rtpmgr-bundle-hook.sh"
# nooelint: oelint.vars.mispell.unknown
RAUC_BUNDLE_HOOKS[hooks] = "install-check"

# RAUC_KEY_FILE / RAUC_CERT_FILE: the signing key and certificate, outside any layer (no private key
# is committed). kas/rauc.yml points them at the development CA; docs/ota.md has the commands.

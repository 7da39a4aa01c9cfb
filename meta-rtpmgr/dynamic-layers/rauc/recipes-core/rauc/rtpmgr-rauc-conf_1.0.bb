# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "RAUC system configuration and keyring of rtpmgr set-top boxes"
DESCRIPTION = "/etc/rauc/system.conf with the A/B root filesystem slots of wic/rtpmgr-ab.wks \
               (bootloader=uboot, RAUC's data directory on /data, verity bundles only) and the keyring that \
               bundles must be signed against. Replaces meta-rauc's example rauc-conf."
LICENSE = "MIT"
# The recipe's own files are MIT: the common licence text is the reference, as for images.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

require recipes-bsp/u-boot/rtpmgr-ab-layout.inc

# A recipe of its own rather than a rauc-conf.bbappend: it replaces meta-rauc's example only
# where rtpmgr-ab.inc asks for it (PREFERRED_RPROVIDER_virtual-rauc-conf). Parsed only with
# meta-rauc in BBLAYERS (dynamic-layers/rauc); built only with this layer's A/B feature.
inherit features_check
REQUIRED_DISTRO_FEATURES = "rauc rtpmgr-ab"

# The CA certificate(s) bundles are checked against (meta-rauc's variable). No default: an image
# must not trust a key by accident. kas/rauc.yml sets the development CA, see docs/ota.md.
# nooelint: oelint.vars.mispell.unknown
RAUC_KEYRING_FILE ??= ""

SRC_URI = "\
    file://system.conf \
    ${@'file://' + d.getVar('RAUC_KEYRING_FILE') if d.getVar('RAUC_KEYRING_FILE') else ''} \
"

S = "${WORKDIR}"

# Where do_unpack puts the keyring: BitBake copies a file:// entry to the same path below WORKDIR,
# so an absolute RAUC_KEYRING_FILE (kas/rauc.yml's ${TOPDIR}/openssl-ca/dev/ca.cert.pem) lands at
# ${WORKDIR}/<that path without its leading />, a relative one at ${WORKDIR}/<relative path>.
RTPMGR_KEYRING_UNPACKED = "${WORKDIR}/${@(d.getVar('RAUC_KEYRING_FILE') or '').lstrip('/')}"

# nooelint: oelint.task.noanonpython - skipping needs the parsed value; it runs once per parse
python () {
    if not d.getVar('RAUC_KEYRING_FILE'):
        raise bb.parse.SkipRecipe("RAUC_KEYRING_FILE is not set: the CA certificate bundles are signed against (docs/ota.md)")
}

do_install() {
    install -d ${D}${sysconfdir}/rauc
    sed -e 's|@RAUC_COMPATIBLE@|${RTPMGR_RAUC_COMPATIBLE}|g' \
        -e 's|@RAUC_DATA_DIR@|${RTPMGR_RAUC_DATA_DIR}|g' \
        -e 's|@ROOTFS_A_DEV@|${RTPMGR_ROOTFS_A_DEV}|g' \
        -e 's|@ROOTFS_B_DEV@|${RTPMGR_ROOTFS_B_DEV}|g' \
        ${WORKDIR}/system.conf > ${D}${sysconfdir}/rauc/system.conf
    if grep -q '@[A-Z_]*@' ${D}${sysconfdir}/rauc/system.conf; then
        bbfatal "system.conf has a placeholder this recipe does not fill: $(grep -o '@[A-Z_]*@' ${D}${sysconfdir}/rauc/system.conf | sort -u)"
    fi
    # system.conf's [keyring] path=ca.cert.pem, whatever the file is called on the build host.
    install -m 0644 ${RTPMGR_KEYRING_UNPACKED} ${D}${sysconfdir}/rauc/ca.cert.pem
}

# Device names differ per board (rtpmgr-ab-layout.inc).
PACKAGE_ARCH = "${MACHINE_ARCH}"

# What RAUC runs on the target with this configuration: fw_printenv/fw_setenv with the boot
# partition's fw_env.config (bootloader=uboot), and the data partition set up for the status file.
RDEPENDS:${PN} += "rtpmgr-boot-script rtpmgr-data"

# rauc RRECOMMENDS virtual-rauc-conf; kas/rauc.yml prefers this provider over meta-rauc's example.
RPROVIDES:${PN} += "virtual-rauc-conf"
RCONFLICTS:${PN} += "rauc-conf"
RREPLACES:${PN} += "rauc-conf"

# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "U-Boot boot script for rtpmgr's RAUC A/B slots, and the initial boot state"
DESCRIPTION = "boot.scr selects slot A or B with RAUC's BOOT_ORDER / BOOT_x_LEFT scheme and keeps \
               that state in two copies (uboot.env, uboot-redund.env) on the FAT boot partition, so a \
               power cut during a write never loses it. Deploys boot.scr and both copies for wic's \
               bootimg-partition (IMAGE_BOOT_FILES); the package carries /etc/fw_env.config for \
               fw_printenv/fw_setenv (libubootenv), which RAUC calls."
LICENSE = "MIT"
# The recipe's own files are MIT: the common licence text is the reference, as for images.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

require rtpmgr-ab-layout.inc

# Only for A/B images (DISTRO_FEATURES "rtpmgr-ab", conf/include/rtpmgr-ab.inc).
inherit features_check
REQUIRED_DISTRO_FEATURES = "rtpmgr-ab"

# mkimage compiles the script, mkenvimage writes the two copies in the redundant format.
DEPENDS += "u-boot-tools-native"

# On a Raspberry Pi, meta-raspberrypi's U-Boot depends on u-boot-default-script and its image
# lists boot.scr: rtpmgr-ab.inc makes this recipe that provider, so only one boot.scr exists.
PROVIDES += "u-boot-default-script"

inherit deploy

SRC_URI = "\
    file://boot.cmd.in \
    file://fw_env.config \
"

S = "${WORKDIR}"

PACKAGE_ARCH = "${MACHINE_ARCH}"

# The script is architecture neutral text, but booti and the load addresses are arm64's.
# nooelint: oelint.vars.mispell.unknown
RTPMGR_UBOOT_ARCH ??= "arm64"

do_compile() {
    sed -e 's|@BOOT_PART@|${RTPMGR_BOOT_PART}|g' \
        -e 's|@ROOTFS_A_PART@|${RTPMGR_ROOTFS_A_PART}|g' \
        -e 's|@ROOTFS_B_PART@|${RTPMGR_ROOTFS_B_PART}|g' \
        -e 's|@ROOTFS_A_DEV@|${RTPMGR_ROOTFS_A_DEV}|g' \
        -e 's|@ROOTFS_B_DEV@|${RTPMGR_ROOTFS_B_DEV}|g' \
        -e 's|@SCRATCH_ADDR@|${RTPMGR_BOOT_SCRATCH_ADDR}|g' \
        -e 's|@KERNEL_IMAGE@|${KERNEL_IMAGETYPE}|g' \
        -e 's|@KERNEL_CMDLINE@|${RTPMGR_KERNEL_CMDLINE}|g' \
        ${WORKDIR}/boot.cmd.in > ${B}/boot.cmd
    if grep -q '@[A-Z_]*@' ${B}/boot.cmd; then
        bbfatal "boot.cmd.in has a placeholder this recipe does not fill: $(grep -o '@[A-Z_]*@' ${B}/boot.cmd | sort -u)"
    fi
    mkimage -A ${RTPMGR_UBOOT_ARCH} -O linux -T script -C none -n "rtpmgr A/B boot" \
        -d ${B}/boot.cmd ${B}/boot.scr

    # Both copies equal (flags 1): copy 0 is current for boot.scr and libubootenv alike.
    printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n' > ${B}/bootstate.txt
    mkenvimage -r -s 0x4000 -o ${B}/uboot.env ${B}/bootstate.txt
    cp ${B}/uboot.env ${B}/uboot-redund.env
}

do_install() {
    install -d ${D}${sysconfdir}
    install -m 0644 ${WORKDIR}/fw_env.config ${D}${sysconfdir}/fw_env.config
    # fw_env.config names the copies under /uboot: the boot partition is mounted there (fstab).
    install -d ${D}/uboot
}

do_deploy() {
    install -m 0644 ${B}/boot.scr ${B}/uboot.env ${B}/uboot-redund.env ${DEPLOYDIR}/
}
addtask deploy after do_compile before do_build

FILES:${PN} += "/uboot"
CONFFILES:${PN} = "${sysconfdir}/fw_env.config"
# RAUC's uboot backend runs fw_printenv / fw_setenv.
RDEPENDS:${PN} = "libubootenv-bin"

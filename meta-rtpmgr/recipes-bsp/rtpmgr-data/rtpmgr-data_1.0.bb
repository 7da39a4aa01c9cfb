# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "rtpmgr persistent data: configuration and logs on the data partition"
DESCRIPTION = "Keeps /etc/rtpmgr, the ring configuration (/etc/modprobe.d/rtp_mgr.conf) and \
               /var/log/rtpmgr on the data partition (/data/rtpmgr), so they survive RAUC A/B \
               updates of the root filesystem. sysvinit script and systemd unit."
LICENSE = "MIT"
# The recipe's own files are MIT: the common licence text is the reference, as for images.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

S = "${WORKDIR}"

# rtpmgr_install: the script (in ${libexecdir}/rtpmgr) and the unit, from files/install.manifest.
inherit rtpmgr_install update-rc.d systemd allarch

# The script lives in ${libexecdir}: systemd.bbclass deletes ${sysconfdir}/init.d when the distro
# has no sysvinit, and rtpmgr-data.service runs the script from there. Under sysvinit, rcS runs it
# through this link. Relative: update-rc.d checks the script inside the image root at rootfs time,
# where an absolute link would point into the build host.
do_install() {
    install -d ${D}${sysconfdir}/init.d
    ln -sr ${D}${libexecdir}/rtpmgr/rtpmgr-data ${D}${sysconfdir}/init.d/rtpmgr-data
}

# rcS: after mountall.sh (S03, mounts /data from fstab), before modutils.sh (S06) loads rtp_mgr.
INITSCRIPT_NAME = "rtpmgr-data"
INITSCRIPT_PARAMS = "start 04 S ."
SYSTEMD_SERVICE:${PN} = "rtpmgr-data.service"

FILES:${PN} += "${libexecdir}/rtpmgr"

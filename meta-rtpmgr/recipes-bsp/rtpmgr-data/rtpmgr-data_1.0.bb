# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "rtpmgr persistent data: configuration and logs on the data partition"
DESCRIPTION = "Keeps /etc/rtpmgr, the ring configuration (/etc/modprobe.d/rtp_mgr.conf) and \
               /var/log/rtpmgr on the data partition (/data/rtpmgr), so they survive RAUC A/B \
               updates of the root filesystem. sysvinit script and systemd unit."
LICENSE = "MIT"
# The recipe's own files are MIT: the common licence text is the reference, as for images.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

SRC_URI = "\
    file://rtpmgr-data.init \
    file://rtpmgr-data.service \
"

S = "${WORKDIR}"

inherit update-rc.d systemd allarch

do_install() {
    install -d ${D}${sysconfdir}/init.d ${D}${systemd_system_unitdir}
    install -m 0755 ${WORKDIR}/rtpmgr-data.init ${D}${sysconfdir}/init.d/rtpmgr-data
    install -m 0644 ${WORKDIR}/rtpmgr-data.service ${D}${systemd_system_unitdir}/rtpmgr-data.service
}

# rcS: after mountall.sh (S03, mounts /data from fstab), before modutils.sh (S06) loads rtp_mgr.
INITSCRIPT_NAME = "rtpmgr-data"
INITSCRIPT_PARAMS = "start 04 S ."
SYSTEMD_SERVICE:${PN} = "rtpmgr-data.service"

# The systemd unit runs the same script.
FILES:${PN} += "${sysconfdir}/init.d/rtpmgr-data"

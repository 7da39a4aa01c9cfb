# nooelint: oelint.var.mandatoryvar.HOMEPAGE - rtpmgr has no public web page yet; set HOMEPAGE once it has one
SUMMARY = "AppArmor profiles confining rtp_app and rtp-feeder"
DESCRIPTION = "Profiles for /usr/bin/rtp_app and /usr/bin/rtp-feeder: only the rtp_mgr ring devices, \
               shm rings, /etc/rtpmgr, UDP sockets, GStreamer's plugins, the readiness files, \
               /var/log/rtpmgr and an administrator's /tmp/rtpmgr; capabilities only for rtp_app run \
               by root (ctl, top). Installed into /etc/apparmor.d; loaded at boot by \
               apparmor.service (systemd) or this package's rtpmgr-apparmor init script \
               (sysvinit), before rtp-rx and rtp-feeder start. Built only with DISTRO_FEATURES apparmor and \
               rtpmgr-apparmor (conf/include/rtpmgr-apparmor.inc); see docs/security.md."
SECTION = "security"
LICENSE = "MIT"
# The profiles are this layer's own files (MIT): the common licence text is the reference.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit features_check allarch update-rc.d
REQUIRED_DISTRO_FEATURES = "apparmor rtpmgr-apparmor"

# rtp_app-xdp (the --xdp rules, included by usr.bin.rtp_app "if exists") is not installed: the
# layer's rtp-app recipe builds rtp_app without its "xdp" feature. A build with it installs
# rtp_app-xdp as ${sysconfdir}/apparmor.d/rtpmgr/rtp_app-xdp (the QEMU test guest does).
SRC_URI = "\
    file://usr.bin.rtp_app \
    file://usr.bin.rtp-feeder \
    file://rtpmgr-apparmor.init \
"
S = "${WORKDIR}"

do_install() {
    install -d ${D}${sysconfdir}/apparmor.d
    install -m 0644 ${S}/usr.bin.rtp_app ${S}/usr.bin.rtp-feeder ${D}${sysconfdir}/apparmor.d/
    # Under sysvinit meta-security's /etc/init.d/apparmor is rc.apparmor.functions, a function
    # library that loads nothing: this script loads the two profiles. Under systemd,
    # apparmor.service (Before=sysinit.target) loads /etc/apparmor.d before any of our services.
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -D -m 0755 ${S}/rtpmgr-apparmor.init ${D}${sysconfdir}/init.d/rtpmgr-apparmor
    fi
}

# Before rtp-rx (start 90) and rtp-feeder (start 91); after meta-security's apparmor (16).
INITSCRIPT_NAME = "rtpmgr-apparmor"
INITSCRIPT_PARAMS = "start 17 2 3 4 5 ."

# apparmor_parser (and, under systemd, apparmor.service).
RDEPENDS:${PN} = "apparmor"
